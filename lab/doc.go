// Package lab replays packets through a policy and checks what happened to
// them, three ways that must agree:
//
//   - reference: the pure-Go evaluator of package policy/eval;
//   - kernel: the compiled program under BPF_PROG_TEST_RUN;
//   - lab: the compiled program attached with XDP to a veth in throwaway
//     network namespaces (a Topology), each frame injected from the peer
//     and followed to where it leaves.
//
// The kernel and lab backends read a frame's fate from the counter slots
// the program moved, by slot number in the artifact's slot table
// (artifact.CounterSlot: its kind says whether it decides, its action what
// the program returned), never by rule name.
//
// It also reads and writes captures, parses the one-line packet syntax,
// runs the golden cases of testdata/lab (Case) and holds the differential
// corpus (lab/corpus).
//
// Errors: a backend returns an error for a frame it could not run (a frame
// the kernel will not deliver, a decision that never showed); Replay turns
// it into a Verdict with Error set, never into a made-up verdict. Setup
// errors wrap the failing netlink, socket or bpf call as "verb object: %w".
// Every Topology is torn down by Close, by CloseAll on SIGINT and SIGTERM
// (TeardownOnInterrupt), and, after a SIGKILL, by CollectGarbage.
package lab
