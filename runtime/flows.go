package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/conntrack"
)

// A connection table is two maps of the same keys and entries
// (artifact.MapCTAssured, artifact.MapCTUnassured; conntrack.Key.Encode,
// conntrack.Entry.Encode), whether an artifact's own (a TestProgram's,
// the lab's) or a namespace's pinned one. Entry times are on the kernel's
// CLOCK_MONOTONIC (bpf_ktime_get_ns): an entry is live while its expiry
// is after now.

// Which of a table's maps: its index in a pair of them.
const (
	assured   = 0
	unassured = 1
)

// ConntrackFlow is one entry of a connection table, and which of its maps
// holds it.
type ConntrackFlow struct {
	conntrack.Flow
	// Assured says the entry is in the assured map (else the unassured).
	Assured bool
}

// Original returns the flow's endpoints in its original direction,
// initiator first.
func (f ConntrackFlow) Original() (from, to conntrack.Endpoint) {
	return f.Key.Original(f.Entry.Flags&conntrack.FlagOrigLo != 0)
}

// Left is how long the entry lives without another packet, at the
// kernel time now.
func (f ConntrackFlow) Left(now uint64) time.Duration {
	if f.Entry.Expires <= now {
		return 0
	}
	return time.Duration(f.Entry.Expires - now)
}

// ReadConntrack returns the live entries of a connection table's two maps
// (those of a TestProgram, a lab's or a namespace's pinned table) at the
// kernel's time now, sorted by key, assured before unassured for a key in
// both. It also returns that time.
func ReadConntrack(assuredMap, unassuredMap *ebpf.Map) ([]ConntrackFlow, uint64, error) {
	var flows []ConntrackFlow
	now := monotonicNow()
	for i, m := range [2]*ebpf.Map{assuredMap, unassuredMap} {
		es, err := readRaw(m)
		if err != nil {
			return nil, now, err
		}
		for _, e := range es {
			if e.entry.Expires <= now {
				continue
			}
			k, err := conntrack.DecodeKey(e.key)
			if err != nil {
				return nil, now, fmt.Errorf("read connection table map %s: %w", m, err)
			}
			flows = append(flows, ConntrackFlow{conntrack.Flow{Key: k, Entry: e.entry}, i == assured})
		}
	}
	slices.SortStableFunc(flows, func(a, b ConntrackFlow) int {
		if c := bytes.Compare(a.Key.Encode(), b.Key.Encode()); c != 0 {
			return c
		}
		if a.Assured == b.Assured {
			return 0
		}
		if a.Assured {
			return -1
		}
		return 1
	})
	return flows, now, nil
}

// rawEntry is one entry of a table's map.
type rawEntry struct {
	key, value []byte
	entry      conntrack.Entry
	// spilled: an assured entry a full assured map did not take.
	spilled bool
}

func readRaw(m *ebpf.Map) ([]rawEntry, error) {
	if m.KeySize() != conntrack.KeySize || m.ValueSize() != conntrack.EntrySize {
		return nil, fmt.Errorf("read connection table map %s: %d-byte keys and %d-byte values, want %d and %d",
			m, m.KeySize(), m.ValueSize(), conntrack.KeySize, conntrack.EntrySize)
	}
	var out []rawEntry
	key, value := make([]byte, conntrack.KeySize), make([]byte, conntrack.EntrySize)
	it := m.Iterate()
	for it.Next(&key, &value) {
		e, err := conntrack.DecodeEntry(value)
		if err != nil {
			return nil, err
		}
		out = append(out, rawEntry{key: bytes.Clone(key), value: bytes.Clone(value), entry: e})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read connection table map %s: %w", m, err)
	}
	return out, nil
}

func countEntries(m *ebpf.Map) (int, error) {
	n := 0
	key, value := make([]byte, m.KeySize()), make([]byte, m.ValueSize())
	it := m.Iterate()
	for it.Next(&key, &value) {
		n++
	}
	return n, it.Err()
}

// removeDead deletes the entries whose time is up (expires <= now on the
// kernel's monotonic clock, bpf_ktime_get_ns) from both maps, and returns
// how many went. An entry is looked up again just before it is deleted,
// so one a program refreshed (made again) meanwhile stays, but for the
// moment between that look-up and the delete.
func removeDead(maps [2]*ebpf.Map) (int, error) {
	n := 0
	for _, m := range maps {
		es, err := readRaw(m)
		if err != nil {
			return n, err
		}
		now := monotonicNow()
		value := make([]byte, conntrack.EntrySize)
		for _, e := range es {
			if e.entry.Expires > now {
				continue
			}
			if err := m.Lookup(e.key, &value); err != nil {
				continue
			}
			if cur, err := conntrack.DecodeEntry(value); err != nil || cur.Expires > monotonicNow() {
				continue
			}
			if err := m.Delete(e.key); err == nil {
				n++
			} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
				return n, fmt.Errorf("remove dead entry from %s: %w", m, err)
			}
		}
	}
	return n, nil
}

// monotonicNow is the kernel's CLOCK_MONOTONIC in nanoseconds, the clock
// bpf_ktime_get_ns reads and entries' times are on.
func monotonicNow() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(fmt.Sprintf("runtime: CLOCK_MONOTONIC: %v", err))
	}
	return uint64(ts.Nano())
}
