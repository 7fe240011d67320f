package policy

import "github.com/xdpc/xdpc/wire"

// Lints are warnings about policies that are valid but probably not what
// the author meant. They run only on a policy without errors and stay
// conservative: a lint fires only when it is certain.

// lint runs every lint on every policy.
func (l *loader) lint() {
	l.lintConntrack()
	for _, p := range l.cfg.Policies {
		l.lintUnreachable(p)
		if p.Default != ActionDrop {
			continue
		}
		if !anyPassRule(p, mayMatchARP) {
			l.add(warnARPDropped(p.Name, l.lintAt[p]))
		}
		if mentionsIPv6(p) && !anyPassRule(p, mayMatchND) {
			l.add(warnNDDropped(p.Name, l.lintAt[p]))
		}
	}
}

// lintUnreachable warns about rules after a rule that matches every
// packet and decides.
func (l *loader) lintUnreachable(p *Policy) {
	for i, r := range p.Rules {
		if !r.Action.Terminal() || len(r.Matches) > 0 {
			continue
		}
		for _, later := range p.Rules[i+1:] {
			l.add(warnUnreachable(later.Name, r.Name, r.DeclRange, later.DeclRange))
		}
		return
	}
}

func anyPassRule(p *Policy, may func(*Rule) bool) bool {
	for _, r := range p.Rules {
		if r.Action == ActionPass && may(r) {
			return true
		}
	}
	return false
}

// mayContain reports whether a packet whose field has value v can match m
// (m nil means the rule does not look at the field).
func mayContain(m *Match, v uint32) bool {
	if m == nil {
		return true
	}
	in := false
	for _, r := range m.Values {
		in = in || r.Contains(v)
	}
	return in != m.Negate
}

// mayMatchARP reports whether rule r can match an ARP frame.
func mayMatchARP(r *Rule) bool {
	for _, f := range ipFields {
		if r.Match(f) != nil {
			return false
		}
	}
	return mayContain(r.Match(FieldEtherType), wire.EtherTypeARP)
}

// ndTypes are the ICMPv6 types of neighbour discovery: router and neighbour
// solicitation and advertisement.
var ndTypes = []uint32{133, 134, 135, 136}

// mayMatchND reports whether rule r can match an ICMPv6 neighbour
// discovery message (hop limit 255, code 0, not fragmented).
func mayMatchND(r *Rule) bool {
	// Neighbour discovery is not tracked: no ct_state matches it.
	if r.Match(FieldSrcPort) != nil || r.Match(FieldDstPort) != nil || r.Match(FieldTCPFlags) != nil || r.Match(FieldCTState) != nil {
		return false
	}
	if !mayContain(r.Match(FieldEtherType), wire.EtherTypeIPv6) || !mayContain(r.Match(FieldProto), wire.ProtoICMPv6) ||
		!mayContain(r.Match(FieldICMPCode), 0) || !mayContain(r.Match(FieldTTL), 255) {
		return false
	}
	anyType := false
	for _, t := range ndTypes {
		anyType = anyType || mayContain(r.Match(FieldICMPType), t)
	}
	if !anyType {
		return false
	}
	for _, f := range []Field{FieldSrc, FieldDst} {
		if m := r.Match(f); m != nil && m.Set == nil && !hasV6Prefix(m) {
			return false
		}
	}
	if m := r.Match(FieldFragment); m != nil && !m.Fragments.Has(FragNone) {
		return false
	}
	return true
}

// mentionsIPv6 reports whether policy p handles IPv6 explicitly: an
// ether_type, proto or prefix (literal or in a set) of IPv6.
func mentionsIPv6(p *Policy) bool {
	for _, r := range p.Rules {
		if m := r.Match(FieldEtherType); m != nil && !m.Negate && mayContain(m, wire.EtherTypeIPv6) {
			return true
		}
		if m := r.Match(FieldProto); m != nil && !m.Negate && mayContain(m, wire.ProtoICMPv6) {
			return true
		}
		for _, f := range []Field{FieldSrc, FieldDst} {
			m := r.Match(f)
			if m == nil {
				continue
			}
			if hasV6Prefix(m) || (m.Set != nil && hasV6Prefix(&Match{Prefixes: m.Set.Prefixes})) {
				return true
			}
		}
	}
	return false
}
