package compiler

import (
	"net/netip"
	"testing"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/policy"
)

// TestTestEqual checks that tests are the same by their fields, not by
// where they are written, and differ when any field that decides differs.
func TestTestEqual(t *testing.T) {
	sets := []SetMaps{{Set: &policy.Set{Name: "a"}}, {Set: &policy.Set{Name: "a"}}}
	base := func() Test {
		return Test{
			Field: policy.FieldDstPort, Op: OpRange, Values: []policy.Range{{Lo: 22, Hi: 22}, {Lo: 80, Hi: 90}},
			Pos: artifact.Pos{Line: 3, Col: 5},
		}
	}
	a := base()
	moved := base()
	moved.Pos = artifact.Pos{Line: 30, Col: 9}
	if !a.Equal(&moved) {
		t.Error("a test written elsewhere is not the same test")
	}
	changes := map[string]func(*Test){
		"field":     func(u *Test) { u.Field = policy.FieldSrcPort },
		"negation":  func(u *Test) { u.Negate = true },
		"op":        func(u *Test) { u.Op = OpEq },
		"values":    func(u *Test) { u.Values = []policy.Range{{Lo: 22, Hi: 22}} },
		"prefixes":  func(u *Test) { u.Prefixes = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} },
		"macs":      func(u *Test) { u.MACs = []policy.MAC{{2}} },
		"flags":     func(u *Test) { u.Flags = policy.TCPFlags{Set: 2} },
		"fragments": func(u *Test) { u.Fragments = policy.FragmentMask(policy.FragFirst) },
		"set":       func(u *Test) { u.Set = &sets[0] },
	}
	for name, change := range changes {
		u := base()
		change(&u)
		if a.Equal(&u) || u.Equal(&a) {
			t.Errorf("tests differing in %s are the same", name)
		}
	}
	// Two sets of one name are two sets: the same maps, the same test.
	x, y := Test{Op: OpSetLookup, Set: &sets[0]}, Test{Op: OpSetLookup, Set: &sets[1]}
	if x.Equal(&y) {
		t.Error("lookups in two sets' maps are the same test")
	}
	if z := (Test{Op: OpSetLookup, Set: &sets[0]}); !x.Equal(&z) {
		t.Error("lookups in the same maps are not the same test")
	}
	r := Rule{Tests: []Test{moved}}
	if !r.HasTest(&a) {
		t.Error("HasTest does not find an equal test")
	}
}
