package artifact_test

import (
	"encoding/json"
	"testing"

	"github.com/xdpc/xdpc/artifact"
)

func TestSlotKinds(t *testing.T) {
	want := map[artifact.SlotKind]struct {
		name    string
		decides bool
	}{
		artifact.SlotRule:      {"rule", true},
		artifact.SlotCount:     {"count", false},
		artifact.SlotDefault:   {"default", true},
		artifact.SlotMalformed: {"malformed", true},
	}
	for k, w := range want {
		if k.String() != w.name || k.Decides() != w.decides {
			t.Errorf("kind %d: %s, decides %v; want %s, %v", uint8(k), k, k.Decides(), w.name, w.decides)
		}
		text, err := json.Marshal(k)
		if err != nil || string(text) != `"`+w.name+`"` {
			t.Errorf("kind %s encodes as %s, %v", k, text, err)
		}
		var back artifact.SlotKind
		if err := json.Unmarshal(text, &back); err != nil || back != k {
			t.Errorf("kind %s decodes as %s, %v", k, back, err)
		}
	}
	var k artifact.SlotKind
	for _, bad := range []string{`"pass"`, `""`, `3`} {
		if err := json.Unmarshal([]byte(bad), &k); err == nil {
			t.Errorf("decoding slot kind %s succeeded", bad)
		}
	}
	if _, err := json.Marshal(artifact.SlotKind(0)); err == nil {
		t.Error("encoding slot kind 0 succeeded")
	}
	if artifact.SlotKind(0).Decides() || artifact.SlotKind(9).Decides() {
		t.Error("an unknown slot kind decides")
	}
}

// TestSameSlots checks the identity of counter slots: name and kind in
// each slot number, not where the rule is written or what it does.
func TestSameSlots(t *testing.T) {
	base := artifact.CounterTable{Map: "c", Slots: []artifact.CounterSlot{
		{Slot: 0, Name: "ssh", Kind: artifact.SlotRule, Action: artifact.ActionPass, Pos: artifact.Pos{Line: 3, Col: 3}},
		{Slot: 1, Name: "default", Kind: artifact.SlotDefault, Action: artifact.ActionDrop},
	}}
	clone := func(change func(*artifact.CounterTable)) artifact.CounterTable {
		c := base
		c.Slots = append([]artifact.CounterSlot(nil), base.Slots...)
		change(&c)
		return c
	}
	same := map[string]func(*artifact.CounterTable){
		"moved":          func(c *artifact.CounterTable) { c.Slots[0].Pos = artifact.Pos{Line: 30, Col: 5} },
		"other action":   func(c *artifact.CounterTable) { c.Slots[0].Action = artifact.ActionDrop },
		"other map name": func(c *artifact.CounterTable) { c.Map = "d" },
	}
	for name, change := range same {
		if !base.SameSlots(clone(change)) {
			t.Errorf("%s: not the same slots", name)
		}
	}
	differ := map[string]func(*artifact.CounterTable){
		"renamed":   func(c *artifact.CounterTable) { c.Slots[0].Name = "ssh2" },
		"count now": func(c *artifact.CounterTable) { c.Slots[0].Kind = artifact.SlotCount },
		"renumbered": func(c *artifact.CounterTable) {
			c.Slots[0].Slot, c.Slots[1].Slot = 1, 0
		},
		"one more": func(c *artifact.CounterTable) {
			c.Slots = append(c.Slots, artifact.CounterSlot{Slot: 2, Name: "malformed", Kind: artifact.SlotMalformed})
		},
		// A rule named "default" is not the default verdict.
		"rule named default": func(c *artifact.CounterTable) { c.Slots[1].Kind = artifact.SlotRule },
	}
	for name, change := range differ {
		if base.SameSlots(clone(change)) {
			t.Errorf("%s: the same slots", name)
		}
	}
}
