package runtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/conntrack"
)

// AgeConntrack makes every entry of the connection-table maps older by d,
// as if d more had passed on the kernel's clock: it takes d from each
// entry's expiry and creation time (down to 0, not below). The kernel and
// lab backends replay a capture with it, aging the table by the time the
// capture spaces two packets apart, where the reference evaluator reads
// the capture's timestamps (docs/conntrack.md "Timeouts").
//
// An entry that goes while it is aged (a program evicting or removing it)
// is skipped. Programs running meanwhile may overwrite an aged entry with
// their own update; AgeConntrack is for tables no traffic but the replay's
// reaches.
func AgeConntrack(d time.Duration, maps ...*ebpf.Map) error {
	if d < 0 {
		return fmt.Errorf("age connection table by %s: a negative duration", d)
	}
	by := uint64(d)
	for _, m := range maps {
		if m.KeySize() != conntrack.KeySize || m.ValueSize() != conntrack.EntrySize {
			return fmt.Errorf("age connection table: map %s has %d-byte keys and %d-byte values, want %d and %d",
				m.String(), m.KeySize(), m.ValueSize(), conntrack.KeySize, conntrack.EntrySize)
		}
		// Collect the keys first: updating while iterating a hash map may
		// visit an entry twice.
		var keys [][]byte
		key, value := make([]byte, conntrack.KeySize), make([]byte, conntrack.EntrySize)
		it := m.Iterate()
		for it.Next(&key, &value) {
			keys = append(keys, append([]byte(nil), key...))
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("age connection table: iterate %s: %w", m.String(), err)
		}
		for _, k := range keys {
			if err := m.Lookup(k, &value); err != nil {
				if errors.Is(err, ebpf.ErrKeyNotExist) {
					continue
				}
				return fmt.Errorf("age connection table: look up in %s: %w", m.String(), err)
			}
			e, err := conntrack.DecodeEntry(value)
			if err != nil {
				return fmt.Errorf("age connection table: %w", err)
			}
			e.Expires, e.Created = older(e.Expires, by), older(e.Created, by)
			if err := m.Update(k, e.Encode(), ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("age connection table: update %s: %w", m.String(), err)
			}
		}
	}
	return nil
}

// older is t less by, or 0.
func older(t, by uint64) uint64 {
	if t < by {
		return 0
	}
	return t - by
}
