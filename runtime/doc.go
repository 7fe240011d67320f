// Package runtime loads compiled xdpc artifacts into the kernel, attaches
// them to interfaces and operates them there; it also runs packets through
// them for tests.
//
// An artifact is the ELF object of package artifact, as the compiler
// writes it; artifact.Read turns it back into a cilium/ebpf collection
// spec and its manifest. The runtime depends on that contract only, never
// on the compiler or the policy language: map layouts, counter slots and
// set element keys are artifact's. A TestProgram is an artifact loaded but
// not attached, for BPF_PROG_TEST_RUN: it fills the maps of the policy's
// sets from the manifest, runs one frame at a time and reports the XDP
// action and the counter slots the frame moved; for a policy that tracks
// connections it runs the host's own frames through the TC egress program
// (RunEgress), ages the connection table and reads it back.
//
// Apply attaches an artifact to the interfaces its policy names through
// pinned bpf_links, replacing a previous program atomically and keeping
// counters and dynamic sets; a policy that tracks connections gets its TC
// egress program attached beside (a tcx link, or a clsact qdisc and a BPF
// filter on kernels before 6.6) and the network namespace's connection
// table in place of its own maps, kept across applies and migrated when
// its layout changes. A policy with NAT gets the namespace's NAT table
// too (pinned beside the connection table, its port-allocation seed drawn
// once), its reserved ports filled from the host's sockets (ReservedPorts),
// the sysctls the stack's forwarding needs set and recorded, and a warning
// for outside addresses the outside interface lacks; the detach of the
// last NAT interface restores the sysctls (DetachReport says so). OpenNAT
// reads the NAT table. Status, Stats, Detach, SetAdd, SetDel, SetList,
// Confirm, Keep, RollBack, PendingConfirmation, WaitConfirm,
// ListConntrack and FlushConntrack operate what is applied. Options say
// where pins and state live (docs/runtime.md describes the layout).
//
// Errors from the kernel are wrapped with the operation that failed. A
// verifier rejection stays reachable with errors.As(err, &*ebpf.VerifierError)
// so callers can print the verifier log; for compiled policies it is a
// compiler bug. An Apply that returns an error has left every interface
// with the program it had before (the one exception, a failed mode change,
// says so in its error). ErrNoInterface, ErrNotDynamic, ErrNothingPending,
// ErrPending, ErrWaiterGone, ErrLocked, ErrNoSuchSet, ErrSetFull,
// ErrBadElement (an element the policy language would refuse),
// ErrManifestFormat (state left by a newer xdpc), ErrNoConntrack (a
// namespace without a connection table), ErrNoNAT (one without a NAT
// table), ErrNoEgress and ErrNoTable (a
// TestProgram of a policy that does not track) mark errors callers may
// want to tell apart; an explicit EgressTCX on a kernel without tcx fails
// with ebpf.ErrNotSupported, naming the kernel it needs.
//
// The state a host keeps outlives the xdpc that wrote it: kept manifests
// of every format an xdpc has written are read and upgraded (upgrade.go),
// so a new xdpc keeps the counters and dynamic sets of the previous one.
package runtime
