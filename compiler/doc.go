// Package compiler turns one checked policy (package policy) into an XDP
// program: a deterministic artifact.Artifact holding cilium/ebpf asm
// instructions, the blueprints of the maps they use and a manifest that
// maps counters and sets back to the policy.
//
// Compile runs a fixed list of small passes (see compile in compile.go): the
// policy is lowered to an intermediate representation (Program, Rule, Test),
// simplified, then emitted as a parser that reads each packet once into a
// metadata area on the stack (docs/datapath.md), a classifier that tries the
// rules (a Classifier strategy; the linear one tries them in order) and a
// shared epilogue that counts the decision and returns the verdict.
//
// A policy that matches ct_state tracks connections (docs/conntrack.md):
// a tracker between the parser and the rules gives each packet its
// ct_state from the connection table, the epilogue commits what the
// policy passes or redirects, and the artifact gets a TC egress program
// (the same parser, tracker and commit, in a socket buffer's context)
// that records what the host sends. Both are emitted from package
// conntrack's data: its key order, state machine, timeouts and assured
// states (conntrack.go).
//
// A policy bound to a nat block's interface translates IPv4 (docs/nat.md,
// nat.go): the tracker also finds flows through the NAT map by their
// translated tuple, and around the commit of a passed packet the program
// decides a new flow's translation (forward, static, masquerade with
// package nat's port allocation), records it with the entry and its
// alias, rewrites the packet with incremental checksums and forwards it
// by the kernel's FIB when it can.
//
// Everything the compiled program shares with its loaders (map kinds and
// layouts, counter slots, XDP actions, set elements and their keys, the
// ELF and manifest formats) is package artifact's; the compiler makes its
// blueprints from it.
//
// The compiler never touches the kernel: the same input gives the same
// artifact on any host, and from any path: the artifact holds lines and
// columns, never the policy's file name. Errors returned by Compile are
// about policies the compiler cannot express (a rule too large to jump
// over, say) and name the file; a verifier rejection of a compiled program
// is a compiler bug, and every instruction carries a source comment
// ("12:3 rule \"ssh\": dst_port", or the parser step)
// so the verifier log points back at the cause.
package compiler
