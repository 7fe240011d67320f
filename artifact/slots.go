package artifact

import (
	"fmt"
	"slices"
)

// CounterTable names the counter map and what each of its slots counts.
// Slots are numbered from 0; the program counts every packet on exactly one
// deciding slot and on the slot of every count rule it matched before.
type CounterTable struct {
	Map   string        `json:"map"`
	Slots []CounterSlot `json:"slots"`
}

// SlotKind says what a counter slot counts, and so whether it moving
// means a decision.
type SlotKind uint8

const (
	// SlotRule counts the packets a terminal rule (pass, drop, redirect)
	// decided.
	SlotRule SlotKind = iota + 1
	// SlotCount counts the packets a count rule matched; they went on to
	// later rules, so it decides nothing.
	SlotCount
	// SlotDefault counts the packets no terminal rule matched: the
	// policy's default verdict.
	SlotDefault
	// SlotMalformed counts the frames that failed parsing: the policy's
	// malformed verdict.
	SlotMalformed
	// SlotNATExhausted counts the packets NAT dropped after the policy
	// passed them, for want of a free port (docs/nat.md): they are
	// decided here, not on the rule that passed them.
	SlotNATExhausted
	// SlotNATFragment counts the later fragments of translated flows NAT
	// dropped because their first fragment was not seen.
	SlotNATFragment
)

// slotKinds names the kinds and says which decide. A new kind of slot
// (drops of a rate limit, say) is one constant and one row.
var slotKinds = [...]struct {
	name    string
	decides bool
}{
	SlotRule:         {"rule", true},
	SlotCount:        {"count", false},
	SlotDefault:      {"default", true},
	SlotMalformed:    {"malformed", true},
	SlotNATExhausted: {"nat-exhausted", true},
	SlotNATFragment:  {"nat-fragment", true},
}

func (k SlotKind) known() bool { return k > 0 && int(k) < len(slotKinds) }

// String is the kind's name: "rule", "count", "default", "malformed",
// "nat-exhausted", "nat-fragment".
func (k SlotKind) String() string {
	if k.known() {
		return slotKinds[k].name
	}
	return fmt.Sprintf("SlotKind(%d)", uint8(k))
}

// Decides reports whether a packet counted on a slot of this kind was
// decided there: every packet moves exactly one deciding slot.
func (k SlotKind) Decides() bool { return k.known() && slotKinds[k].decides }

// MarshalText encodes the kind by name.
func (k SlotKind) MarshalText() ([]byte, error) {
	if !k.known() {
		return nil, fmt.Errorf("encode counter slot kind: unknown kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText decodes a kind name.
func (k *SlotKind) UnmarshalText(text []byte) error {
	for i := range slotKinds {
		if SlotKind(i).known() && slotKinds[i].name == string(text) {
			*k = SlotKind(i)
			return nil
		}
	}
	return fmt.Errorf("decode counter slot kind: unknown kind %q", text)
}

// CounterSlot is one slot of the counter map.
type CounterSlot struct {
	Slot int `json:"slot"`
	// Name is the rule's name, or "default" or "malformed".
	Name string   `json:"name"`
	Kind SlotKind `json:"kind"`
	// Action is what the program returns for a packet decided on a
	// deciding slot: drop, pass or redirect (none for a count slot).
	Action Action `json:"action,omitempty"`
	// To is the interface a redirect rule sends to.
	To string `json:"to,omitempty"`
	// Pos is where the rule is written (none for default and malformed).
	Pos
}

// SlotID is what a counter slot counts, independent of where the rule is
// written and of its number: the rule's name and the slot's kind. Two
// slots with the same ID count the same thing.
type SlotID struct {
	Name string
	Kind SlotKind
}

// ID returns what the slot counts.
func (s CounterSlot) ID() SlotID { return SlotID{s.Name, s.Kind} }

// SameSlots reports whether t and u count the same things in the same
// slots: equal slot numbers with equal IDs, in order. Source positions,
// actions and targets do not matter: a rule moved to another line or
// applied from another file counts where it did.
func (t CounterTable) SameSlots(u CounterTable) bool {
	return slices.EqualFunc(t.Slots, u.Slots, func(a, b CounterSlot) bool {
		return a.Slot == b.Slot && a.ID() == b.ID()
	})
}

// Slot returns the slot numbered n.
func (t CounterTable) Slot(n int) (CounterSlot, bool) {
	for _, s := range t.Slots {
		if s.Slot == n {
			return s, true
		}
	}
	return CounterSlot{}, false
}

// check verifies that the slots are numbered 0 to n-1 (n = size, the
// counter map's capacity, or more), each once, and of known kinds.
func (t CounterTable) check(size int) error {
	seen := make([]bool, size)
	for _, s := range t.Slots {
		if s.Slot < 0 || s.Slot >= size {
			return fmt.Errorf("counter slot %d (%s) is outside the %d slots of map %s", s.Slot, s.Name, size, t.Map)
		}
		if seen[s.Slot] {
			return fmt.Errorf("counter slot %d is named twice", s.Slot)
		}
		seen[s.Slot] = true
		if !s.Kind.known() {
			return fmt.Errorf("counter slot %d (%s) has no kind", s.Slot, s.Name)
		}
	}
	return nil
}
