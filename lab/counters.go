package lab

import (
	"fmt"

	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/runtime"
)

// CounterRow is one counter slot of a policy: a rule, the default or the
// malformed verdict.
type CounterRow struct {
	Slot    int
	Name    string
	Packets uint64
	Bytes   uint64
}

// counterReader is a backend that keeps real counters (the kernel's).
type counterReader interface {
	Counters() ([]runtime.Counter, error)
}

// Counters returns the policy's counters after replayed: read from the
// program where the backend keeps them, tallied from the verdicts' slots
// otherwise. Rows are by slot number, named after the policy's rules (the
// compiled program numbers its slots as the policy does).
func Counters(b Backend, p *policy.Policy, replayed []Verdict) ([]CounterRow, error) {
	rows := make([]CounterRow, p.Slots())
	for i := range rows {
		rows[i].Slot = i
		switch i {
		case p.DefaultSlot():
			rows[i].Name = "default"
		case p.MalformedSlot():
			rows[i].Name = "malformed"
		default:
			rows[i].Name = p.Rules[i].Name
		}
	}
	if cr, ok := b.(counterReader); ok {
		got, err := cr.Counters()
		if err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
		if len(got) != len(rows) {
			return nil, fmt.Errorf("read counters: program has %d slots, policy %d", len(got), len(rows))
		}
		for i, c := range got {
			rows[i].Packets, rows[i].Bytes = c.Packets, c.Bytes
		}
		return rows, nil
	}
	for _, v := range replayed {
		if v.Error != "" || v.Verdict == VerdictOut {
			continue
		}
		for _, slot := range append([]int{v.Slot}, v.CountedSlots...) {
			if slot < 0 || slot >= len(rows) {
				return nil, fmt.Errorf("packet %d was counted on slot %d of %d", v.Index, slot, len(rows))
			}
			rows[slot].Packets++
			rows[slot].Bytes += uint64(v.Len)
		}
	}
	return rows, nil
}

// Counters reads the program's counters.
func (k *kernelBackend) Counters() ([]runtime.Counter, error) { return k.prog.Counters() }
