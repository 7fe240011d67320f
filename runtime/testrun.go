package runtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/artifact"
)

// MinTestFrame is the shortest frame BPF_PROG_TEST_RUN accepts for XDP: an
// Ethernet header.
const MinTestFrame = 14

// errShortFrame is returned for frames the kernel would reject with EINVAL.
var errShortFrame = errors.New("kernel test run needs a frame of at least 14 bytes")

// ErrNoEgress is returned by TestProgram.RunEgress for an artifact
// without a TC egress program (a policy that tracks no connections).
var ErrNoEgress = errors.New("the artifact has no egress program")

// ErrNoTable is returned by TestProgram's connection table methods for an
// artifact without a connection table.
var ErrNoTable = errors.New("the artifact has no connection table")

// TestProgram is an artifact loaded into the kernel (not attached), for
// BPF_PROG_TEST_RUN: its XDP program and, when it tracks connections,
// its TC egress program, sharing the artifact's maps (one connection
// table of their own, not a namespace's).
type TestProgram struct {
	coll     *ebpf.Collection
	prog     *ebpf.Program
	egress   *ebpf.Program // nil when the artifact has none
	manifest *artifact.Manifest
	counters *counterTable // nil when the artifact has no counters
}

// Outcome is what one frame did.
type Outcome struct {
	// Action is the XDP action the program returned.
	Action artifact.Action
	// Moved lists the counter slots whose packet count changed, ascending.
	Moved []int
}

// NewTestProgram loads an artifact's maps and program into the kernel and
// fills every set's maps with the elements the manifest declares. A verifier
// rejection is returned as a wrapped *VerifierRejection naming the policy
// line it stopped at; errors.As finds the *ebpf.VerifierError behind it too.
func NewTestProgram(elf []byte) (*TestProgram, error) {
	spec, manifest, err := artifact.Read(elf)
	if err != nil {
		return nil, err
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load artifact: %w", describeLoadError(err, loadedProgram(err, spec, manifest)))
	}
	t := &TestProgram{coll: coll, prog: coll.Programs[manifest.Program], manifest: manifest}
	if manifest.Egress != "" {
		t.egress = coll.Programs[manifest.Egress]
	}
	if err := t.init(); err != nil {
		coll.Close()
		return nil, err
	}
	return t, nil
}

// init fills the sets, puts loopback in the redirect map for every target
// and prepares the counter reads.
func (t *TestProgram) init() error {
	if err := fillSets(t.coll.Maps, t.manifest.Sets); err != nil {
		return err
	}
	// A test run never sends the frame anywhere: every target is loopback,
	// so a redirect returns XDP_REDIRECT.
	lo := func(string) (int, error) { return loopbackIndex, nil }
	if err := fillRedirects(t.coll.Maps, t.manifest, lo); err != nil {
		return err
	}
	if name := t.manifest.Counters.Map; name != "" {
		c, err := newCounterTable(t.coll.Maps[name])
		if err != nil {
			return err
		}
		t.counters = c
	}
	return nil
}

// Run runs frame through the program once with BPF_PROG_TEST_RUN.
func (t *TestProgram) Run(frame []byte) (Outcome, error) {
	if len(frame) < MinTestFrame {
		return Outcome{}, errShortFrame
	}
	before, err := t.counters.read()
	if err != nil {
		return Outcome{}, err
	}
	action, err := t.prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return Outcome{}, fmt.Errorf("test run %d-byte frame: %w", len(frame), err)
	}
	after, err := t.counters.read()
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Action: artifact.Action(action), Moved: MovedSlots(before, after)}, nil
}

// RunEgress runs frame, one the host sends, through the TC egress
// program once with BPF_PROG_TEST_RUN, and returns the TC action it
// returned (TC_ACT_UNSPEC, -1, for xdpc's: the packet goes on). The
// kernel needs nothing but the frame: it builds an skb of it as if it
// left through the loopback device of the caller's namespace, Ethernet
// header first, as on an interface's egress; at least MinTestFrame bytes.
func (t *TestProgram) RunEgress(frame []byte) (int32, error) {
	if t.egress == nil {
		return 0, ErrNoEgress
	}
	if len(frame) < MinTestFrame {
		return 0, errShortFrame
	}
	ret, err := t.egress.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return 0, fmt.Errorf("test run egress %d-byte frame: %w", len(frame), err)
	}
	return int32(ret), nil
}

// conntrackMaps returns the program's connection table maps.
func (t *TestProgram) conntrackMaps() (assured, unassured *ebpf.Map, err error) {
	c := t.manifest.Conntrack
	if c == nil {
		return nil, nil, ErrNoTable
	}
	return t.coll.Maps[c.Assured], t.coll.Maps[c.Unassured], nil
}

// AgeConntrack makes every entry of the program's connection table older
// by d: d comes off each entry's expiry and creation time, in both maps.
// The kernel's clock runs in real time while a replayed capture's jumps;
// aging the table by each gap keeps the two in step (AgeConntrack).
func (t *TestProgram) AgeConntrack(d time.Duration) error {
	a, u, err := t.conntrackMaps()
	if err != nil {
		return err
	}
	return AgeConntrack(d, a, u)
}

// ConntrackFlows returns the live entries of the program's connection
// table, with the map each is in (ReadConntrack).
func (t *TestProgram) ConntrackFlows() ([]ConntrackFlow, error) {
	a, u, err := t.conntrackMaps()
	if err != nil {
		return nil, err
	}
	flows, _, err := ReadConntrack(a, u)
	return flows, err
}

// Counters returns every counter slot, summed over CPUs; nil when the
// artifact has no counters.
func (t *TestProgram) Counters() ([]Counter, error) {
	return t.counters.read()
}

// Manifest returns the artifact's manifest.
func (t *TestProgram) Manifest() *artifact.Manifest { return t.manifest }

// Program returns the loaded program, for benchmarks and other test runs.
func (t *TestProgram) Program() *ebpf.Program { return t.prog }

// Egress returns the loaded TC egress program, nil when the artifact has
// none: for AttachEgress (the lab) and other test runs.
func (t *TestProgram) Egress() *ebpf.Program { return t.egress }

// Close releases the program and its maps.
func (t *TestProgram) Close() error {
	t.coll.Close()
	return nil
}

// RedirectIn points every redirect target of the program at the interface
// of that name in the named network namespace ("" for the caller's),
// instead of loopback: for a test program attached there, whose redirects
// must really reach their targets (the lab).
func (t *TestProgram) RedirectIn(netns string) error {
	return inNetns(netns, func() error {
		return fillRedirects(t.coll.Maps, t.manifest, func(name string) (int, error) {
			return interfaceIndex(netns, name)
		})
	})
}
