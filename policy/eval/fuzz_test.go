package eval

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// fuzzPolicy names every field, negated and not, with count rules between.
var fuzzPolicy = newPolicy(policy.ActionPass, policy.ActionDrop,
	newRule("count", policy.ActionCount, not(is(policy.FieldEtherType, 0x88cc))),
	newRule("vlans", policy.ActionCount, is(policy.FieldVLAN, 1, 10), not(is(policy.FieldInnerVLAN, 0))),
	newRule("macs", policy.ActionCount, inSet(policy.FieldSrcMAC, macSet), not(macList(policy.FieldDstMAC, otherMAC))),
	newRule("block", policy.ActionDrop, inSet(policy.FieldSrc, cidrSet), not(cidrs(policy.FieldDst, "10.0.0.0/8", "2001:db8::/32"))),
	newRule("ssh", policy.ActionPass, is(policy.FieldProto, 6), not(inSet(policy.FieldSrcPort, portSet)), is(policy.FieldDstPort, 22), flags(wire.TCPSyn, wire.TCPAck)),
	newRule("icmp", policy.ActionPass, not(is(policy.FieldICMPType, 8)), is(policy.FieldICMPCode, 0)),
	newRule("frag", policy.ActionDrop, values(policy.FieldTTL, policy.Range{Lo: 0, Hi: 10}), not(values(policy.FieldLength, policy.Range{Lo: 0, Hi: 100})), fragments(policy.FragLater)),
	newRule("v6", policy.ActionDrop, not(cidrs(policy.FieldSrc, "::/0"))),
)

// FuzzEvaluate checks that no frame makes the evaluator panic, that Explain
// and Parse agree with Evaluate, and that parsed fields respect their
// presence rules.
func FuzzEvaluate(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		got := Evaluate(fuzzPolicy, frame)
		e := Explain(fuzzPolicy, frame)
		if diff := cmp.Diff(got, e.Result); diff != "" {
			t.Fatalf("Explain differs from Evaluate (-evaluate +explain):\n%s", diff)
		}
		_ = e.String()
		p, bad := Parse(frame)
		if (bad != nil) != (got.Rule == RuleMalformed) || (p == nil) == (bad == nil) {
			t.Fatalf("Parse gives %v, %v; Evaluate %+v", p, bad, got)
		}
		if p == nil {
			return
		}
		if p.Summary() == "" {
			t.Fatal("empty summary")
		}
		later := p.Fragment == policy.FragLater
		switch {
		case p.HasPorts && (later || p.Proto != wire.ProtoTCP && p.Proto != wire.ProtoUDP),
			p.HasTCPFlags && (later || p.Proto != wire.ProtoTCP),
			p.HasICMP && (later || p.Proto != wire.ProtoICMP && p.Proto != wire.ProtoICMPv6),
			p.Family == 0 && (p.Src.IsValid() || p.Length != 0),
			p.Family == 4 && !p.Src.Is4(),
			p.Family == 6 && !p.Src.Is6():
			t.Fatalf("fields break their presence rules: %+v", p)
		}
	})
}
