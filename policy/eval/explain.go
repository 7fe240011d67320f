package eval

import (
	"fmt"
	"strings"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// Step is one rule tried on a packet: whether it matched and, when it did
// not, the first field that failed and why.
type Step struct {
	Rule    *policy.Rule
	Matched bool
	Field   policy.Field // first field that failed; 0 if matched
	Reason  string       // why Field failed; "" if matched
}

// Explanation is a decision with its reasons: the parsed packet (or why it is
// malformed), how the connection table read it, every rule tried in order,
// and the result, which is always the one Evaluate (or Session.Ingress)
// gives.
type Explanation struct {
	Packet    *Packet
	Malformed *Malformed
	// CT is how the connection table read the packet and what recording
	// it did; nil when the policy does not track connections or the
	// packet is malformed.
	CT     *CTTrace
	Steps  []Step
	Result Result
}

// Explain says which rules of p were tried on frame and why each did or did
// not match. Rules after the deciding one are not tried; a malformed frame
// tries none. For a policy that tracks connections it explains as a fresh
// Session with the default timeouts would (see Evaluate); Session.Explain
// explains a frame of a conversation.
func Explain(p *policy.Policy, frame []byte) Explanation {
	var t *conntrack.Table
	if p.TracksConnections() {
		t = conntrack.NewTable(conntrack.Timeouts{})
	}
	var x Explanation
	ingress(p, t, frame, 0, true, &x)
	return x
}

// String renders e as text, one line for the packet, one for its ct_state,
// one per rule tried, one for the verdict and one for what it did to the
// connection table.
func (e Explanation) String() string {
	var b strings.Builder
	switch {
	case e.Malformed != nil:
		fmt.Fprintf(&b, "packet: %s\n", e.Malformed.Error())
	case e.Packet != nil:
		fmt.Fprintf(&b, "packet: %s\n", e.Packet.Summary())
	}
	if e.CT != nil {
		b.WriteString(e.CT.StateLine())
	}
	for _, s := range e.Steps {
		fmt.Fprintf(&b, "rule %q%s: ", s.Rule.Name, position(s.Rule))
		switch {
		case !s.Matched:
			fmt.Fprintf(&b, "no match: %s\n", s.Reason)
		case s.Rule.Action == policy.ActionRedirect:
			fmt.Fprintf(&b, "match -> redirect to %s\n", s.Rule.To)
		case s.Rule.Action.Terminal():
			fmt.Fprintf(&b, "match -> %s\n", s.Rule.Action)
		default:
			b.WriteString("count (matched, evaluation goes on)\n")
		}
	}
	switch e.Result.Rule {
	case RuleMalformed:
		fmt.Fprintf(&b, "verdict: %s for malformed packets\n", e.Result.Verdict)
	case RuleDefault:
		fmt.Fprintf(&b, "verdict: %s by default\n", e.Result.Verdict)
	default:
		if e.Result.Verdict == policy.ActionRedirect {
			fmt.Fprintf(&b, "verdict: redirect to %s by rule %q\n", e.Result.Target, e.Result.Rule)
			break
		}
		fmt.Fprintf(&b, "verdict: %s by rule %q\n", e.Result.Verdict, e.Result.Rule)
	}
	if e.CT != nil {
		b.WriteString(e.CT.EffectLine())
	}
	return b.String()
}

// String renders e as text: the packet, sent by the host, its ct_state and
// what recording it did.
func (e EgressExplanation) String() string {
	var b strings.Builder
	switch {
	case e.Malformed != nil:
		fmt.Fprintf(&b, "packet (out): %s\n", e.Malformed.Error())
		b.WriteString("conntrack: no change (malformed)\n")
	case e.CT != nil:
		fmt.Fprintf(&b, "packet (out): %s\n", e.Packet.Summary())
		b.WriteString(e.CT.String())
	case e.Packet != nil:
		fmt.Fprintf(&b, "packet (out): %s\n", e.Packet.Summary())
		b.WriteString("conntrack: no change (the policy does not track connections)\n")
	}
	return b.String()
}

// position is " (file:line:col)" of the rule's declaration, or "" when the
// rule has no source.
func position(r *policy.Rule) string {
	d := r.DeclRange
	if d.Filename == "" {
		return ""
	}
	return fmt.Sprintf(" (%s:%d:%d)", d.Filename, d.Start.Line, d.Start.Column)
}

// newStep records how rule r fared on pkt: it failed on field f with out,
// or matched when out is outcomeMatch.
func newStep(r *policy.Rule, f policy.Field, out outcome, pkt *Packet) Step {
	if out == outcomeMatch {
		return Step{Rule: r, Matched: true}
	}
	return Step{Rule: r, Field: f, Reason: reason(r.Match(f), out, pkt)}
}

// reason says in words why match m failed on pkt with out.
func reason(m *policy.Match, out outcome, pkt *Packet) string {
	f := m.Field
	switch out {
	case outcomeAbsent:
		return fmt.Sprintf("%s: %s", f, absence(f, pkt))
	case outcomeFamily:
		return fmt.Sprintf("%s %s: the rule lists no IPv%d prefix (a prefix matches only its own family)",
			f, address(f, pkt), pkt.Family)
	}
	got, want := fieldText(f, pkt), valuesText(m)
	switch {
	case f == policy.FieldTCPFlags && m.Negate:
		return fmt.Sprintf("%s %s match %s (negated)", f, got, want)
	case f == policy.FieldTCPFlags:
		return fmt.Sprintf("%s %s do not match %s", f, got, want)
	case m.Negate:
		return fmt.Sprintf("%s %s in %s (negated)", f, got, want)
	}
	return fmt.Sprintf("%s %s not in %s", f, got, want)
}

// absence says why pkt does not have field f.
func absence(f policy.Field, pkt *Packet) string {
	switch {
	case f == policy.FieldVLAN:
		return "packet has no vlan tag"
	case f == policy.FieldInnerVLAN && pkt.Tags == 1:
		return "packet has only one vlan tag"
	case f == policy.FieldInnerVLAN:
		return "packet has no vlan tag"
	case pkt.Family == 0:
		return fmt.Sprintf("packet is not IP (ether_type 0x%04x)", pkt.EtherType)
	case f == policy.FieldCTState:
		return "packet is not tracked (" + untrackedReason(pkt) + ")"
	}
	what := "ports"
	switch f {
	case policy.FieldTCPFlags:
		what = "tcp flags"
	case policy.FieldICMPType, policy.FieldICMPCode:
		what = "icmp header"
	}
	if pkt.Fragment == policy.FragLater {
		return fmt.Sprintf("packet has no %s (non-first fragment)", what)
	}
	return fmt.Sprintf("packet has no %s (proto %s)", what, protoName(pkt.Proto))
}

// fieldText is the value of field f of pkt as text.
func fieldText(f policy.Field, pkt *Packet) string {
	switch f {
	case policy.FieldSrc, policy.FieldDst:
		return address(f, pkt).String()
	case policy.FieldSrcMAC, policy.FieldDstMAC:
		return mac(f, pkt).String()
	case policy.FieldTCPFlags:
		return flagLetters(pkt.TCPFlags)
	case policy.FieldFragment:
		return pkt.Fragment.String()
	case policy.FieldCTState:
		return pkt.CTState.String()
	}
	return rangeText(f, policy.Range{Lo: value(f, pkt), Hi: value(f, pkt)})
}

// valuesText is the values of m as text: "set.NAME", one value, or a list.
func valuesText(m *policy.Match) string {
	if m.Set != nil {
		return "set." + m.Set.Name
	}
	var vs []string
	switch m.Field.Kind() {
	case policy.KindPrefix:
		for _, p := range m.Prefixes {
			vs = append(vs, p.String())
		}
	case policy.KindMAC:
		for _, x := range m.MACs {
			vs = append(vs, x.String())
		}
	case policy.KindFlags:
		return m.Flags.String()
	case policy.KindCTState:
		for _, st := range m.CTStates.Statuses() {
			vs = append(vs, st.String())
		}
	case policy.KindFragment:
		for _, fr := range []policy.Fragment{policy.FragNone, policy.FragFirst, policy.FragLater} {
			if m.Fragments.Has(fr) {
				vs = append(vs, fr.String())
			}
		}
	default:
		for _, r := range m.Values {
			vs = append(vs, rangeText(m.Field, r))
		}
	}
	if len(vs) == 1 {
		return vs[0]
	}
	return "[" + strings.Join(vs, ", ") + "]"
}

// rangeText renders a range of field f: ether types in hex, protocols by name.
func rangeText(f policy.Field, r policy.Range) string {
	one := func(v uint32) string {
		switch f {
		case policy.FieldEtherType:
			return fmt.Sprintf("0x%04x", v)
		case policy.FieldProto:
			if v <= 0xff {
				return protoName(uint8(v))
			}
		}
		return fmt.Sprint(v)
	}
	if r.Lo == r.Hi {
		return one(r.Lo)
	}
	return one(r.Lo) + "-" + one(r.Hi)
}

// protoName is the name of an IP protocol in the policy language, or its
// number.
func protoName(p uint8) string {
	if n, ok := wire.Protocols.Name(uint16(p)); ok {
		return n
	}
	return fmt.Sprint(p)
}
