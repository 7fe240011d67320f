package runtime

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
)

// A policy's counters live in generations of counter maps, so that an
// apply never writes counts into a map a program is counting in.
//
// The current generation is the map the policy's programs count in,
// pinned at maps/POLICY/counters. When an apply changes what the slots
// count (artifact.CounterTable.SameSlots), the new program gets a new,
// zeroed map and the current one is retired: it stays pinned, as
// counters_gN, with its slot table, while the programs that counted in it
// still run (the previous program on interfaces just replaced runs on
// other CPUs until an RCU grace period ends; interfaces left on the
// previous version run it until detached). Readers sum, by slot ID (rule
// name and kind), the base, every retired generation and the current one.
//
// Once no program that counted in a retired map is left, the next apply
// or detach folds it: its final counts are added to the base and it is
// unpinned. The base and the list of generations are one file
// (counterRecord), replaced at once, so a reader sees a generation either
// listed or in the base, never both and never neither; a reader that
// finds a listed map unpinned, or a pin holding another map than the
// record says, read in between and reads again.

// counterRecord is STATEDIR/maps/POLICY/counters.json: which maps hold the
// policy's counts and what their slots count.
type counterRecord struct {
	// Next numbers the next generation.
	Next    int               `json:"next"`
	Current counterGeneration `json:"current"`
	// Retired are generations still pinned, oldest first.
	Retired []counterGeneration `json:"retired,omitempty"`
	// Base holds the counts of the folded generations, by slot ID.
	Base []baseCount `json:"base,omitempty"`
	// Folded is how many generations Base holds.
	Folded int `json:"folded,omitempty"`
}

// counterGeneration is one counter map of a policy.
type counterGeneration struct {
	Gen int `json:"generation"`
	// MapID is the kernel's id of the map; 0 for a map found pinned
	// before xdpc kept records of generations (not checked).
	MapID ebpf.MapID             `json:"map_id"`
	Slots []artifact.CounterSlot `json:"slots"`
	// Programs are the ids of the programs that counted in the map when
	// it was retired; it is folded once every one is gone.
	Programs []ebpf.ProgramID `json:"programs,omitempty"`
	// GoneAt is when a fold first found all of Programs gone, on hosts
	// where xdpc cannot wait for an RCU grace period (synchronizeRCU).
	GoneAt time.Time `json:"gone_at,omitzero"`
}

// baseCount is what the folded generations counted on one slot ID.
type baseCount struct {
	Name    string            `json:"name"`
	Kind    artifact.SlotKind `json:"kind"`
	Packets uint64            `json:"packets"`
	Bytes   uint64            `json:"bytes"`
}

func (l layout) counterRecordFile(policy string) string {
	return filepath.Join(l.mapStateDir(policy), "counters.json")
}

// retiredCounterPin is where generation gen is pinned once retired.
func (l layout) retiredCounterPin(policy string, gen int) string {
	return fmt.Sprintf("%s_g%d", l.counterPin(policy), gen)
}

// readCounterRecord returns the policy's record of counter generations;
// nil when there is none.
func readCounterRecord(l layout, policy string) (*counterRecord, error) {
	var rec counterRecord
	err := readJSON(l.counterRecordFile(policy), &rec)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

// legacyRecord describes a counter map pinned before xdpc kept records of
// generations: the one map, with the slots of the kept manifest.
func legacyRecord(m *artifact.Manifest) *counterRecord {
	return &counterRecord{Next: 2, Current: counterGeneration{Gen: 1, Slots: m.Counters.Slots}}
}

func (rec *counterRecord) clone() *counterRecord {
	c := *rec
	c.Retired = slices.Clone(rec.Retired)
	c.Base = slices.Clone(rec.Base)
	return &c
}

// errCountersMoved says that a counter map the record names is not where
// the record says: an apply or a fold changed them while they were read.
var errCountersMoved = errors.New("counter maps changed while reading")

// readAttempts bounds how often a reader reads again after
// errCountersMoved; an apply or fold moves pins microseconds apart.
const readAttempts = 200

// policyCounts sums what every generation of the policy's counters counted,
// by slot ID, and returns it with the slots of the current generation.
// m is the kept manifest, for counters pinned before records of
// generations were kept.
func policyCounts(l layout, policy string, m *artifact.Manifest) ([]artifact.CounterSlot, map[artifact.SlotID]Counter, error) {
	var err error
	for range readAttempts {
		var rec *counterRecord
		if rec, err = readCounterRecord(l, policy); err != nil {
			return nil, nil, err
		}
		if rec == nil {
			rec = legacyRecord(m)
		}
		var sums map[artifact.SlotID]Counter
		sums, err = rec.sum(l, policy)
		if err == nil {
			return rec.Current.Slots, sums, nil
		}
		if !errors.Is(err, errCountersMoved) {
			return nil, nil, err
		}
		time.Sleep(time.Millisecond)
	}
	return nil, nil, fmt.Errorf("policy %s: %w", policy, err)
}

// sum reads every generation the record names and adds the base.
func (rec *counterRecord) sum(l layout, policy string) (map[artifact.SlotID]Counter, error) {
	sums := map[artifact.SlotID]Counter{}
	for _, b := range rec.Base {
		sums[artifact.SlotID{Name: b.Name, Kind: b.Kind}] = Counter{Packets: b.Packets, Bytes: b.Bytes}
	}
	gens := append([]counterGeneration{rec.Current}, rec.Retired...)
	for i, g := range gens {
		path := l.counterPin(policy)
		if i > 0 {
			path = l.retiredCounterPin(policy, g.Gen)
		}
		values, err := readGeneration(path, g)
		if err != nil {
			return nil, err
		}
		addGeneration(sums, g, values)
	}
	return sums, nil
}

// readGeneration reads the map of generation g pinned at path, summed over
// CPUs by slot number.
func readGeneration(path string, g counterGeneration) ([]Counter, error) {
	m, err := ebpf.LoadPinnedMap(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("generation %d: %w", g.Gen, errCountersMoved)
	}
	if err != nil {
		return nil, fmt.Errorf("open counters %s: %w", path, err)
	}
	defer m.Close()
	if g.MapID != 0 {
		if id, err := mapID(m); err != nil {
			return nil, err
		} else if id != g.MapID {
			return nil, fmt.Errorf("generation %d: map %d pinned, not %d: %w", g.Gen, id, g.MapID, errCountersMoved)
		}
	}
	t, err := newCounterTable(m)
	if err != nil {
		return nil, err
	}
	return t.read()
}

// addGeneration adds what the generation's slots counted to sums.
func addGeneration(sums map[artifact.SlotID]Counter, g counterGeneration, values []Counter) {
	for _, s := range g.Slots {
		if s.Slot < 0 || s.Slot >= len(values) {
			continue
		}
		c := sums[s.ID()]
		c.Packets += values[s.Slot].Packets
		c.Bytes += values[s.Slot].Bytes
		sums[s.ID()] = c
	}
}

func mapID(m *ebpf.Map) (ebpf.MapID, error) {
	info, err := m.Info()
	if err != nil {
		return 0, fmt.Errorf("read map info: %w", err)
	}
	id, ok := info.ID()
	if !ok {
		return 0, errors.New("read map info: the kernel gives no map id")
	}
	return id, nil
}

// writersOf returns the ids of the programs attached by xdpc, in any
// namespace, that use the map id: the link's program of every recorded
// interface and the program pinned beside it.
func writersOf(l layout, id ebpf.MapID) ([]ebpf.ProgramID, error) {
	recs, err := records(l)
	if err != nil {
		return nil, err
	}
	var progs []ebpf.ProgramID
	for _, r := range recs {
		la := l.withNetns(r.Netns)
		var candidates []ebpf.ProgramID
		if a, err := loadAttached(la, r.Interface); err != nil {
			return nil, err
		} else if a != nil {
			candidates = append(candidates, ebpf.ProgramID(a.rec.ProgramID))
			a.close()
		}
		if p, err := ebpf.LoadPinnedProgram(la.progPin(r.Interface), nil); err == nil {
			if info, err := p.Info(); err == nil {
				if pid, ok := info.ID(); ok {
					candidates = append(candidates, pid)
				}
			}
			p.Close()
		}
		for _, pid := range candidates {
			if pid == 0 || slices.Contains(progs, pid) {
				continue
			}
			uses, err := programUses(pid, id)
			if err != nil {
				return nil, err
			}
			if uses {
				progs = append(progs, pid)
			}
		}
	}
	slices.Sort(progs)
	return progs, nil
}

// programUses reports whether program pid exists and uses map id.
func programUses(pid ebpf.ProgramID, id ebpf.MapID) (bool, error) {
	p, err := ebpf.NewProgramFromID(pid)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open program %d: %w", pid, err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return false, fmt.Errorf("read program %d: %w", pid, err)
	}
	ids, ok := info.MapIDs()
	if !ok {
		// The kernel does not say: assume it does, which only delays
		// folding.
		return true, nil
	}
	return slices.Contains(ids, id), nil
}

// programsGone reports whether none of the programs exists any more.
func programsGone(ids []ebpf.ProgramID) (bool, error) {
	for _, pid := range ids {
		p, err := ebpf.NewProgramFromID(pid)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("open program %d: %w", pid, err)
		}
		p.Close()
		return false, nil
	}
	return true, nil
}

// foldWait is how long after its programs were found gone a retired
// generation is folded where synchronizeRCU is unavailable: far longer
// than an RCU grace period.
const foldWait = time.Second

// foldCounters folds the retired generations of the policy's counters
// that no program counts in any more: their final counts go into the
// base, in the same write that takes them off the list, and then they
// are unpinned. It runs under the lock.
//
// A program's id is gone as soon as the last reference to it is dropped,
// but a CPU that fetched it from the interface before the replace may
// still be running it until the end of an RCU grace period, so a fold
// waits for one (synchronizeRCU) before reading the final counts.
func foldCounters(l layout, policy string) error {
	rec, err := readCounterRecord(l, policy)
	if err != nil || rec == nil {
		return err
	}
	defer removeStrayGenerations(l, policy, rec)
	var ready []int // indexes into rec.Retired
	for i, g := range rec.Retired {
		gone, err := programsGone(g.Programs)
		if err != nil {
			return err
		}
		if gone {
			ready = append(ready, i)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	next := rec.clone()
	if err := synchronizeRCU(); err != nil {
		// Fold what was found gone long enough ago; mark the rest.
		now := time.Now()
		var later []int
		for _, i := range ready {
			g := &next.Retired[i]
			if !g.GoneAt.IsZero() && now.Sub(g.GoneAt) >= foldWait {
				later = append(later, i)
			} else if g.GoneAt.IsZero() {
				g.GoneAt = now
			}
		}
		ready = later
	}
	sums := map[artifact.SlotID]Counter{}
	for _, b := range next.Base {
		sums[artifact.SlotID{Name: b.Name, Kind: b.Kind}] = Counter{Packets: b.Packets, Bytes: b.Bytes}
	}
	var folded []counterGeneration
	for _, i := range ready {
		g := next.Retired[i]
		values, err := readGeneration(l.retiredCounterPin(policy, g.Gen), g)
		if errors.Is(err, errCountersMoved) {
			// Nothing of it is left to read: drop it from the list.
			values, err = nil, nil
		}
		if err != nil {
			return err
		}
		addGeneration(sums, g, values)
		folded = append(folded, g)
	}
	next.Retired = slices.DeleteFunc(next.Retired, func(g counterGeneration) bool {
		return slices.ContainsFunc(folded, func(f counterGeneration) bool { return f.Gen == g.Gen })
	})
	next.Base = baseOf(sums)
	next.Folded += len(folded)
	if err := writeJSON(l.counterRecordFile(policy), next); err != nil {
		return err
	}
	*rec = *next
	return nil
}

// baseOf lists sums by slot ID, sorted.
func baseOf(sums map[artifact.SlotID]Counter) []baseCount {
	base := make([]baseCount, 0, len(sums))
	for id, c := range sums {
		base = append(base, baseCount{Name: id.Name, Kind: id.Kind, Packets: c.Packets, Bytes: c.Bytes})
	}
	slices.SortFunc(base, func(a, b baseCount) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
	})
	return base
}

// removeStrayGenerations unpins retired counter maps the record does not
// list: folded ones, and any an interrupted apply left.
func removeStrayGenerations(l layout, policy string, rec *counterRecord) {
	pins, _ := filepath.Glob(l.counterPin(policy) + "_g*")
	for _, p := range pins {
		gen, err := strconv.Atoi(strings.TrimPrefix(p, l.counterPin(policy)+"_g"))
		if err != nil || slices.ContainsFunc(rec.Retired, func(g counterGeneration) bool { return g.Gen == gen }) {
			continue
		}
		os.Remove(p)
	}
}

// membarrierCmdGlobal is MEMBARRIER_CMD_GLOBAL (linux/membarrier.h).
const membarrierCmdGlobal = 1

// synchronizeRCU returns after an RCU grace period: every CPU that was
// running an XDP program when it was called has left it. The membarrier
// system call's global command waits for one (synchronize_rcu) when more
// than one CPU is online; with one, it returns at once, which is enough
// where XDP runs with bottom halves disabled (every kernel but PREEMPT_RT):
// no program is half way through while this process runs. Kernels with
// nohz_full CPUs or without membarrier refuse it.
func synchronizeRCU() error {
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0); errno != 0 {
		return fmt.Errorf("membarrier: %w", errno)
	}
	return nil
}
