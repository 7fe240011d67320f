package compiler

import (
	"slices"

	"github.com/xdpc/xdpc/policy"
)

// mergeRanges sorts the values of every OpEq and OpRange test and merges
// overlapping or adjacent ranges, then marks tests of single values OpEq.
// The checker already does this; the emitters rely on it.
func mergeRanges(prog *Program) {
	forEachTest(prog, func(_ *Rule, t *Test) {
		if t.Op != OpEq && t.Op != OpRange {
			return
		}
		t.Values = policy.MergeRanges(t.Values)
		t.Op = OpEq
		for _, r := range t.Values {
			if r.Lo != r.Hi {
				t.Op = OpRange
			}
		}
	})
}

// dropImpliedTests removes positive tests that other tests of the same rule
// imply, since a packet only passes a test when it has the field:
//   - tcp_flags implies proto 6; ports imply proto 6 or 17;
//   - any IP field implies ether_type 0x0800 or 0x86dd (just one of them
//     when the rule's addresses are all of one family);
//   - any IP field implies fragment none, first or later; layer-4 fields
//     imply fragment none or first.
func dropImpliedTests(prog *Program) {
	for i := range prog.Rules {
		r := &prog.Rules[i]
		facts := factsOf(r.Tests)
		r.Tests = slices.DeleteFunc(r.Tests, func(t Test) bool {
			return !t.Negate && facts.imply(&t)
		})
	}
}

// ruleFacts is what the presence of a rule's fields proves about a packet.
type ruleFacts struct {
	ip, l4, tcp, ports bool
	// v4, v6: the families the rule's address tests admit.
	v4, v6 bool
}

func factsOf(ts []Test) ruleFacts {
	f := ruleFacts{v4: true, v6: true}
	for i := range ts {
		t := &ts[i]
		switch t.Field {
		case policy.FieldSrc, policy.FieldDst, policy.FieldProto, policy.FieldTTL, policy.FieldLength:
			f.ip = true
		case policy.FieldSrcPort, policy.FieldDstPort:
			f.ip, f.l4, f.ports = true, true, true
		case policy.FieldTCPFlags:
			f.ip, f.l4, f.tcp = true, true, true
		case policy.FieldICMPType, policy.FieldICMPCode:
			f.ip, f.l4 = true, true
		}
		if t.Op == OpPrefix {
			has4, has6 := false, false
			for _, p := range t.Prefixes {
				if p.Addr().Is4() {
					has4 = true
				} else {
					has6 = true
				}
			}
			f.v4, f.v6 = f.v4 && has4, f.v6 && has6
		}
	}
	return f
}

// imply reports whether the facts make the positive test t always pass.
func (f ruleFacts) imply(t *Test) bool {
	switch t.Field {
	case policy.FieldProto:
		switch {
		case f.tcp:
			return inValues(t.Values, policy.ProtoTCP)
		case f.ports:
			return inValues(t.Values, policy.ProtoTCP) && inValues(t.Values, policy.ProtoUDP)
		}
	case policy.FieldEtherType:
		if !f.ip {
			return false
		}
		return (!f.v4 || inValues(t.Values, policy.EtherTypeIPv4)) && (!f.v6 || inValues(t.Values, policy.EtherTypeIPv6))
	case policy.FieldFragment:
		need := policy.FragmentMask(policy.FragNone | policy.FragFirst)
		if !f.l4 {
			need |= policy.FragmentMask(policy.FragLater)
		}
		return f.ip && t.Fragments&need == need
	}
	return false
}

func inValues(rs []policy.Range, v uint32) bool {
	for _, r := range rs {
		if r.Contains(v) {
			return true
		}
	}
	return false
}

// orderTests puts cheap comparisons before address and MAC lists, and those
// before map lookups (helper calls), keeping field order among equals: all
// tests must pass, so their order does not change what a rule matches.
func orderTests(prog *Program) {
	for i := range prog.Rules {
		slices.SortStableFunc(prog.Rules[i].Tests, func(a, b Test) int { return testCost(&a) - testCost(&b) })
	}
}

func testCost(t *Test) int {
	switch t.Op {
	case OpPrefix, OpMAC:
		return 1
	case OpSetLookup:
		return 2
	}
	return 0
}

func forEachTest(prog *Program, fn func(*Rule, *Test)) {
	for i := range prog.Rules {
		r := &prog.Rules[i]
		for j := range r.Tests {
			fn(r, &r.Tests[j])
		}
	}
}
