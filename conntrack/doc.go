// Package conntrack defines what xdpc's connection tracking means,
// independent of where it runs: which packets are tracked and how their
// flow is keyed, the states an entry goes through (netfilter's TCP state
// machine without window tracking, and simple unreplied/replied states for
// UDP, ICMP echo and other protocols), the per-state timeouts, and how a
// packet's ct_state follows from the table (LANGUAGE.md "Connection
// tracking — precise meaning"; docs/conntrack.md).
//
// The reference evaluator runs Table packet by packet; the compiler emits
// BPF that makes the same decisions from the same data (the TCP transition
// table, the timeouts, the key order); the runtime names states for `xdpc
// ct list`. The package depends on nothing but the standard library and
// package wire.
//
// Times are nanoseconds on a monotonic clock: the kernel's
// bpf_ktime_get_ns in the datapath, a capture's timestamps in the
// reference evaluator.
package conntrack
