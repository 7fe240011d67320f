package compiler

import (
	"fmt"
	"slices"

	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
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
//     and ct_state imply fragment none or first (later fragments are not
//     tracked); ct_state implies an IP ether_type.
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
	// tracked: the packet has a ct_state, so it is IP and not a later
	// fragment.
	tracked bool
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
		case policy.FieldCTState:
			f.ip, f.tracked = true, true
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
			return inValues(t.Values, wire.ProtoTCP)
		case f.ports:
			return inValues(t.Values, wire.ProtoTCP) && inValues(t.Values, wire.ProtoUDP)
		}
	case policy.FieldEtherType:
		if !f.ip {
			return false
		}
		return (!f.v4 || inValues(t.Values, wire.EtherTypeIPv4)) && (!f.v6 || inValues(t.Values, wire.EtherTypeIPv6))
	case policy.FieldFragment:
		need := policy.FragmentMask(policy.FragNone | policy.FragFirst)
		if !f.l4 && !f.tracked {
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

// moveLongListsToMaps turns every address test of more than limit prefixes,
// and every port test of more than limit ports and ranges, into a lookup in
// an implicit set of its own, named "RULE:FIELD" (set names in policies
// cannot hold ':'): LPM tries for addresses, a hash of every port for
// ports, as for declared sets. One lookup per packet replaces a comparison
// per value, and no list is too long to verify. A packet of a family the
// list has no prefix of still fails. Negated tests hold one value (the
// language negates single values only) and stay inline.
func moveLongListsToMaps(prog *Program, limit int) {
	forEachTest(prog, func(r *Rule, t *Test) {
		if t.Negate {
			return
		}
		set := &policy.Set{Name: r.Name + ":" + t.Field.String()}
		switch {
		case t.Op == OpPrefix && len(t.Prefixes) > limit:
			set.Type, set.Prefixes, set.MaxElements = policy.SetCIDR, t.Prefixes, len(t.Prefixes)
			t.Prefixes = nil
		case (t.Op == OpEq || t.Op == OpRange) && isPortField(t.Field) && len(t.Values) > limit:
			set.Type, set.Ports, set.MaxElements = policy.SetPort, t.Values, len(t.Values)
			t.Values = nil
		default:
			return
		}
		t.Op, t.Set = OpSetLookup, &SetMaps{Set: set, Implicit: true}
	})
}

func isPortField(f policy.Field) bool { return f == policy.FieldSrcPort || f == policy.FieldDstPort }

// checkInlineCompares refuses a test that needs more than
// MaxInlineCompares conditional jumps (see inlineCompares) with a
// LimitError at the field's value in p.
func checkInlineCompares(prog *Program, p *policy.Policy) error {
	var err error
	forEachTest(prog, func(r *Rule, t *Test) {
		if n := inlineCompares(t); err == nil && n > MaxInlineCompares {
			advice := "split the list over several rules"
			if t.Field.Kind() == policy.KindMAC {
				advice = "put the addresses in a set of type mac"
			}
			err = &LimitError{Rule: r.Name, Subject: matchRange(p, r.Name, t.Field),
				Reason: fmt.Sprintf("%s needs %d comparisons, more than the %d the kernel verifies in one test; %s", t.Field, n, MaxInlineCompares, advice)}
		}
	})
	return err
}

// inlineCompares bounds the conditional jumps t's emitter writes: two per
// value or range, one per prefix word, two per MAC address.
func inlineCompares(t *Test) int {
	n := 2 * (len(t.Values) + len(t.MACs))
	for _, p := range t.Prefixes {
		n += max(1, (p.Bits()+31)/32)
	}
	return n
}
