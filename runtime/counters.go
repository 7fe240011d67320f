package runtime

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/artifact"
)

// Counter is one counter slot: the packets it counted and their bytes
// (frame lengths), per CPU in the map and summed over CPUs here.
type Counter = artifact.Counter

// counterTable reads a loaded counter map, all slots in one syscall.
type counterTable struct {
	m     *ebpf.Map
	slots int
	cpus  int
	// Buffers reused across reads.
	keys   []uint32
	perCPU []Counter
}

func newCounterTable(m *ebpf.Map) (*counterTable, error) {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count possible cpus: %w", err)
	}
	slots := int(m.MaxEntries())
	return &counterTable{
		m:      m,
		slots:  slots,
		cpus:   cpus,
		keys:   make([]uint32, slots),
		perCPU: make([]Counter, slots*cpus),
	}, nil
}

// read returns every slot's counter summed over CPUs.
func (c *counterTable) read() ([]Counter, error) {
	if c == nil {
		return nil, nil
	}
	var cursor ebpf.MapBatchCursor
	n, err := c.m.BatchLookup(&cursor, c.keys, c.perCPU, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	if n != c.slots {
		return nil, fmt.Errorf("read counters: got %d of %d slots", n, c.slots)
	}
	sums := make([]Counter, c.slots)
	for i, slot := range c.keys {
		if int(slot) >= c.slots {
			return nil, fmt.Errorf("read counters: slot %d out of range", slot)
		}
		for _, v := range c.perCPU[i*c.cpus : (i+1)*c.cpus] {
			sums[slot].Packets += v.Packets
			sums[slot].Bytes += v.Bytes
		}
	}
	return sums, nil
}

// MovedSlots returns the slots whose packet count differs between two
// reads of the counters, ascending: the decision and the count rules a
// frame moved.
func MovedSlots(before, after []Counter) []int {
	var moved []int
	for i := range after {
		if i >= len(before) || before[i].Packets != after[i].Packets {
			moved = append(moved, i)
		}
	}
	return moved
}
