package runtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/conntrack"
)

// Connection tracking under BPF_PROG_TEST_RUN: what a replay of a
// conversation needs beyond Run. The kernel and lab backends run the
// host's own frames through the artifact's TC egress program, age the
// connection table by the time a capture spaces two frames apart, and
// read the table to compare it with the reference evaluator's
// (docs/conntrack.md "Timeouts", docs/lab.md).

// Tracks reports whether the artifact tracks connections: it holds a TC
// egress program and the connection table's two maps.
func (t *TestProgram) Tracks() bool { return t.manifest.Conntrack != nil }

// ConntrackMaps returns the connection table's maps, assured and
// unassured; nil when the artifact does not track connections.
func (t *TestProgram) ConntrackMaps() (assured, unassured *ebpf.Map) {
	c := t.manifest.Conntrack
	if c == nil {
		return nil, nil
	}
	return t.coll.Maps[c.Assured], t.coll.Maps[c.Unassured]
}

// EgressProgram returns the loaded TC egress program, for a lab to attach;
// nil when the artifact does not track connections.
func (t *TestProgram) EgressProgram() *ebpf.Program {
	if t.manifest.Egress == "" {
		return nil
	}
	return t.coll.Programs[t.manifest.Egress]
}

// TCActUnspec is what the egress program returns for every frame
// (TC_ACT_UNSPEC, which a tcx link takes for TCX_NEXT).
const TCActUnspec = -1

// RunEgress runs frame through the TC egress program once with
// BPF_PROG_TEST_RUN, as a frame the host sends, and returns the TC action
// it returned. The program counts nothing: what it did is in the
// connection table.
func (t *TestProgram) RunEgress(frame []byte) (int32, error) {
	prog := t.EgressProgram()
	if prog == nil {
		return 0, errors.New("run egress: the artifact has no egress program (its policy does not track connections)")
	}
	if len(frame) < MinTestFrame {
		return 0, errShortFrame
	}
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return 0, fmt.Errorf("test run %d-byte frame through the egress program: %w", len(frame), err)
	}
	return int32(ret), nil
}

// AgeConntrack makes every entry of the connection table older by d, as
// if d more had passed on the kernel's clock (AgeConntrack). It does
// nothing when the artifact does not track connections.
func (t *TestProgram) AgeConntrack(d time.Duration) error {
	a, u := t.ConntrackMaps()
	if a == nil {
		return nil
	}
	return AgeConntrack(d, a, u)
}

// TableFlow is one entry of a connection table's maps, live or dead.
type TableFlow struct {
	Key   conntrack.Key
	Entry conntrack.Entry
	// Assured says which map holds it: the assured one, or the
	// unassured (LRU) one.
	Assured bool
}

// ConntrackTable is what the connection table's maps held when read.
type ConntrackTable struct {
	// Now is the kernel's monotonic clock (bpf_ktime_get_ns) just after
	// the maps were read: an entry is live when Now < Expires.
	Now   uint64
	Flows []TableFlow
}

// ConntrackFlows reads every entry of both maps, assured first; empty
// when the artifact does not track connections.
func (t *TestProgram) ConntrackFlows() (ConntrackTable, error) {
	var tbl ConntrackTable
	a, u := t.ConntrackMaps()
	for _, m := range []struct {
		m       *ebpf.Map
		assured bool
	}{{a, true}, {u, false}} {
		if m.m == nil {
			continue
		}
		key, value := make([]byte, conntrack.KeySize), make([]byte, conntrack.EntrySize)
		it := m.m.Iterate()
		for it.Next(&key, &value) {
			k, err := conntrack.DecodeKey(key)
			if err != nil {
				return ConntrackTable{}, fmt.Errorf("read connection table: %w", err)
			}
			e, err := conntrack.DecodeEntry(value)
			if err != nil {
				return ConntrackTable{}, fmt.Errorf("read connection table: %w", err)
			}
			tbl.Flows = append(tbl.Flows, TableFlow{Key: k, Entry: e, Assured: m.assured})
		}
		if err := it.Err(); err != nil {
			return ConntrackTable{}, fmt.Errorf("read connection table: iterate %s: %w", m.m.String(), err)
		}
	}
	now, err := monotonicNow()
	if err != nil {
		return ConntrackTable{}, err
	}
	tbl.Now = now
	return tbl, nil
}

// monotonicNow is the clock bpf_ktime_get_ns reads.
func monotonicNow() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("read the monotonic clock: %w", err)
	}
	return uint64(ts.Nano()), nil
}

// FlushConntrack removes every entry of the connection table.
func (t *TestProgram) FlushConntrack() error {
	a, u := t.ConntrackMaps()
	for _, m := range []*ebpf.Map{a, u} {
		if m == nil {
			continue
		}
		var keys [][]byte
		key, value := make([]byte, conntrack.KeySize), make([]byte, conntrack.EntrySize)
		it := m.Iterate()
		for it.Next(&key, &value) {
			keys = append(keys, append([]byte(nil), key...))
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("flush connection table: iterate %s: %w", m.String(), err)
		}
		for _, k := range keys {
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("flush connection table: delete from %s: %w", m.String(), err)
			}
		}
	}
	return nil
}

// LoadSharingConntrack loads another artifact for BPF_PROG_TEST_RUN, as
// NewTestProgram does, with t's connection table in place of its own, as
// every program of a network namespace shares one table: its programs read
// and write the entries t's do. The artifact's tables must be laid out as
// t's (the same max_entries).
func (t *TestProgram) LoadSharingConntrack(elf []byte) (*TestProgram, error) {
	a, u := t.ConntrackMaps()
	if a == nil {
		return nil, errors.New("share a connection table: the artifact has none (its policy does not track connections)")
	}
	spec, manifest, err := artifact.Read(elf)
	if err != nil {
		return nil, err
	}
	if manifest.Conntrack == nil {
		return nil, errors.New("share a connection table: the artifact to load does not track connections")
	}
	opts := ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		manifest.Conntrack.Assured: a, manifest.Conntrack.Unassured: u,
	}}
	coll, err := ebpf.NewCollectionWithOptions(spec, opts)
	if err != nil {
		return nil, fmt.Errorf("load artifact: %w", describeLoadError(err, spec.Programs[manifest.Program]))
	}
	s := &TestProgram{coll: coll, prog: coll.Programs[manifest.Program], manifest: manifest}
	if err := s.init(); err != nil {
		coll.Close()
		return nil, err
	}
	return s, nil
}
