package eval

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// Policies are built here as checked models, the way the decoder hands them
// over: rules in order with Index = position, matches sorted by field.

func newPolicy(def, malformed policy.Action, rules ...*policy.Rule) *policy.Policy {
	for i, r := range rules {
		r.Index = i
	}
	return &policy.Policy{Name: "test", Default: def, Malformed: malformed, Rules: rules}
}

func newRule(name string, a policy.Action, ms ...policy.Match) *policy.Rule {
	return &policy.Rule{Name: name, Action: a, Matches: ms}
}

func not(m policy.Match) policy.Match { m.Negate = true; return m }

func values(f policy.Field, rs ...policy.Range) policy.Match {
	return policy.Match{Field: f, Values: rs}
}

func is(f policy.Field, vs ...uint32) policy.Match {
	m := policy.Match{Field: f}
	for _, v := range vs {
		m.Values = append(m.Values, policy.Range{Lo: v, Hi: v})
	}
	return m
}

func cidrs(f policy.Field, ps ...string) policy.Match {
	m := policy.Match{Field: f}
	for _, p := range ps {
		m.Prefixes = append(m.Prefixes, netip.MustParsePrefix(p))
	}
	return m
}

func macList(f policy.Field, ms ...policy.MAC) policy.Match {
	return policy.Match{Field: f, MACs: ms}
}

func inSet(f policy.Field, s *policy.Set) policy.Match { return policy.Match{Field: f, Set: s} }

func flags(set, clear uint8) policy.Match {
	return policy.Match{Field: policy.FieldTCPFlags, Flags: policy.TCPFlags{Set: set, Clear: clear}}
}

func fragments(fs ...policy.Fragment) policy.Match {
	m := policy.Match{Field: policy.FieldFragment}
	for _, f := range fs {
		m.Fragments |= policy.FragmentMask(f)
	}
	return m
}

var (
	cidrSet = &policy.Set{Name: "block", Type: policy.SetCIDR, Prefixes: []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:bad::/48")}}
	cidrSet4 = &policy.Set{Name: "block4", Type: policy.SetCIDR, Prefixes: []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24")}}
	portSet = &policy.Set{Name: "web", Type: policy.SetPort, Ports: []policy.Range{{Lo: 80, Hi: 80}, {Lo: 8000, Hi: 8099}}}
	macSet  = &policy.Set{Name: "hosts", Type: policy.SetMAC, MACs: []policy.MAC{{0x02, 0, 0, 0, 0, 0x09}, testSrcMAC}}
)

// Frames the matching tests use.
var (
	tcp4SSH     = ether(0x0800, v4{src: "10.1.2.3", dst: "10.0.0.2", proto: 6}.build(tcp(40000, 22, syn, 0)))
	tcp4Web     = ether(0x0800, v4{src: "192.0.2.9", proto: 6}.build(tcp(40000, 8050, synAck, 0)))
	udp4DNS     = ether(0x0800, v4{ttl: 3, proto: 17}.build(udp(5353, 53), zeros(100)))
	tcp6Web     = ether(0x86dd, v6{src: "2001:db8:bad::1", nh: 6}.build(tcp(40000, 443, wire.TCPAck|wire.TCPPsh, 0)))
	udp6        = ether(0x86dd, v6{src: "2001:db8:1::1", nh: 17}.build(udp(1, 53)))
	icmp4Echo   = ether(0x0800, v4{proto: 1}.build(icmp(8, 0)))
	icmp6NS     = ether(0x86dd, v6{nh: 58}.build(icmp(135, 0)))
	later4      = ether(0x0800, v4{fo: offset1k, proto: 6}.build(tcp(40000, 22, syn, 0)))
	first4      = ether(0x0800, v4{fo: mf, proto: 6}.build(tcp(40000, 22, syn, 0)))
	later6      = ether(0x86dd, v6{nh: 44}.build(frag6(17, 100, false), udp(1, 53)))
	arpFrame    = pad(ether(wire.EtherTypeARP, arp(1, "10.0.0.1", "10.0.0.2")), 60)
	vlanFrame   = ether(0x8100, tag(0, 10, 0x0800), v4{proto: 17}.build(udp(1, 53)))
	qinqFrame   = ether(0x88a8, tag(0, 100, 0x8100), tag(0, 200, 0x0800), v4{proto: 17}.build(udp(1, 53)))
	badFrame    = ether(0x0800, v4{tot: 19, proto: 6}.build(tcp(1, 2, syn, 0)))
	otherMAC    = policy.MAC{0x02, 0, 0, 0, 0, 0x09}
	passIfMatch = func(ms ...policy.Match) *policy.Policy {
		return newPolicy(policy.ActionDrop, policy.ActionDrop, newRule("r", policy.ActionPass, ms...))
	}
)

// TestMatch runs one pass rule against frames: "r" when it matches, else
// "default". Absent fields never match, negated or not.
func TestMatch(t *testing.T) {
	const r, def = "r", RuleDefault
	tests := []struct {
		name  string
		match []policy.Match
		frame []byte
		want  string
	}{
		{"no matches matches all", nil, arpFrame, r},
		{"ether_type arp", []policy.Match{is(policy.FieldEtherType, wire.EtherTypeARP)}, arpFrame, r},
		{"ether_type arp on ipv4", []policy.Match{is(policy.FieldEtherType, wire.EtherTypeARP)}, tcp4SSH, def},
		{"ether_type inside vlan", []policy.Match{is(policy.FieldEtherType, wire.EtherTypeIPv4)}, vlanFrame, r},
		{"not ether_type ipv4 on arp", []policy.Match{not(is(policy.FieldEtherType, wire.EtherTypeIPv4))}, arpFrame, r},
		{"vlan", []policy.Match{is(policy.FieldVLAN, 10)}, vlanFrame, r},
		{"vlan other id", []policy.Match{is(policy.FieldVLAN, 11)}, vlanFrame, def},
		{"vlan on untagged", []policy.Match{is(policy.FieldVLAN, 0)}, tcp4SSH, def},
		{"not vlan on untagged", []policy.Match{not(is(policy.FieldVLAN, 10))}, tcp4SSH, def},
		{"vlan outer of two", []policy.Match{is(policy.FieldVLAN, 100), is(policy.FieldInnerVLAN, 200)}, qinqFrame, r},
		{"inner_vlan on one tag", []policy.Match{not(is(policy.FieldInnerVLAN, 200))}, vlanFrame, def},
		{"ports on tagged frame", []policy.Match{is(policy.FieldDstPort, 53)}, qinqFrame, r},
		{"src_mac", []policy.Match{macList(policy.FieldSrcMAC, otherMAC, testSrcMAC)}, arpFrame, r},
		{"dst_mac", []policy.Match{macList(policy.FieldDstMAC, testSrcMAC)}, arpFrame, def},
		{"not dst_mac", []policy.Match{not(macList(policy.FieldDstMAC, otherMAC))}, arpFrame, r},
		{"mac set", []policy.Match{inSet(policy.FieldSrcMAC, macSet)}, tcp4SSH, r},
		{"not mac set", []policy.Match{not(inSet(policy.FieldSrcMAC, macSet))}, tcp4SSH, def},

		{"src prefix", []policy.Match{cidrs(policy.FieldSrc, "10.0.0.0/8")}, tcp4SSH, r},
		{"src prefix outside", []policy.Match{cidrs(policy.FieldSrc, "192.168.0.0/16")}, tcp4SSH, def},
		{"dst host", []policy.Match{cidrs(policy.FieldDst, "10.0.0.2/32")}, tcp4SSH, r},
		{"v4 prefix never matches v6", []policy.Match{cidrs(policy.FieldSrc, "0.0.0.0/0")}, udp6, def},
		{"negated v4 prefix never matches v6", []policy.Match{not(cidrs(policy.FieldSrc, "10.0.0.0/8"))}, udp6, def},
		{"negated v4 prefix matches v4 outside", []policy.Match{not(cidrs(policy.FieldSrc, "192.168.0.0/16"))}, tcp4SSH, r},
		{"negated v4 prefix on v4 inside", []policy.Match{not(cidrs(policy.FieldSrc, "10.0.0.0/8"))}, tcp4SSH, def},
		{"v6 prefix never matches v4", []policy.Match{cidrs(policy.FieldSrc, "::/0")}, tcp4SSH, def},
		{"negated v6 prefix never matches v4", []policy.Match{not(cidrs(policy.FieldSrc, "2001:db8::/32"))}, tcp4SSH, def},
		{"v6 prefix", []policy.Match{cidrs(policy.FieldSrc, "2001:db8::/32")}, udp6, r},
		{"mixed list v6 packet", []policy.Match{cidrs(policy.FieldSrc, "10.0.0.0/8", "2001:db8:1::/48")}, udp6, r},
		{"mixed list v4 packet", []policy.Match{cidrs(policy.FieldSrc, "10.0.0.0/8", "2001:db8:1::/48")}, tcp4SSH, r},
		{"negated mixed list v6 outside", []policy.Match{not(cidrs(policy.FieldSrc, "10.0.0.0/8", "2001:db8:2::/48"))}, udp6, r},
		{"negated mixed list v6 inside", []policy.Match{not(cidrs(policy.FieldSrc, "10.0.0.0/8", "2001:db8:1::/48"))}, udp6, def},
		{"v4-mapped v6 address is v6", []policy.Match{cidrs(policy.FieldSrc, "10.0.0.0/8")},
			ether(0x86dd, v6{src: "::ffff:10.0.0.1", nh: 59}.build()), def},
		{"src on arp", []policy.Match{cidrs(policy.FieldSrc, "0.0.0.0/0")}, arpFrame, def},
		{"negated src on arp", []policy.Match{not(cidrs(policy.FieldSrc, "10.0.0.0/8"))}, arpFrame, def},
		{"cidr set v4", []policy.Match{inSet(policy.FieldSrc, cidrSet)}, tcp4Web, r},
		{"cidr set v6", []policy.Match{inSet(policy.FieldSrc, cidrSet)}, tcp6Web, r},
		{"cidr set miss", []policy.Match{inSet(policy.FieldSrc, cidrSet)}, udp6, def},
		{"negated cidr set", []policy.Match{not(inSet(policy.FieldSrc, cidrSet))}, udp6, r},
		{"negated v4-only cidr set on v6", []policy.Match{not(inSet(policy.FieldSrc, cidrSet4))}, udp6, def},

		{"proto", []policy.Match{is(policy.FieldProto, 6, 17)}, udp4DNS, r},
		{"proto of later fragment", []policy.Match{is(policy.FieldProto, 6)}, later4, r},
		{"proto of ipv6 later fragment", []policy.Match{is(policy.FieldProto, 17)}, later6, r},
		{"proto on arp", []policy.Match{not(is(policy.FieldProto, 6))}, arpFrame, def},
		{"dst_port", []policy.Match{is(policy.FieldDstPort, 22)}, tcp4SSH, r},
		{"dst_port list and range", []policy.Match{values(policy.FieldDstPort, policy.Range{Lo: 80, Hi: 80}, policy.Range{Lo: 443, Hi: 443}, policy.Range{Lo: 8000, Hi: 8099})}, tcp4Web, r},
		{"dst_port range upper bound", []policy.Match{values(policy.FieldDstPort, policy.Range{Lo: 8000, Hi: 8050})}, tcp4Web, r},
		{"dst_port range below", []policy.Match{values(policy.FieldDstPort, policy.Range{Lo: 8051, Hi: 9000})}, tcp4Web, def},
		{"dst_port between ranges", []policy.Match{values(policy.FieldDstPort, policy.Range{Lo: 1, Hi: 21}, policy.Range{Lo: 23, Hi: 65535})}, tcp4SSH, def},
		{"src_port", []policy.Match{is(policy.FieldSrcPort, 5353)}, udp4DNS, r},
		{"port set", []policy.Match{inSet(policy.FieldDstPort, portSet)}, tcp4Web, r},
		{"not port set", []policy.Match{not(inSet(policy.FieldDstPort, portSet))}, tcp4SSH, r},
		{"dst_port on later fragment", []policy.Match{is(policy.FieldDstPort, 22)}, later4, def},
		{"not dst_port on later fragment", []policy.Match{not(is(policy.FieldDstPort, 80))}, later4, def},
		{"not dst_port on ipv6 later fragment", []policy.Match{not(is(policy.FieldDstPort, 80))}, later6, def},
		{"dst_port on first fragment", []policy.Match{is(policy.FieldDstPort, 22)}, first4, r},
		{"not dst_port on icmp", []policy.Match{not(is(policy.FieldDstPort, 80))}, icmp4Echo, def},
		{"not dst_port on arp", []policy.Match{not(is(policy.FieldDstPort, 80))}, arpFrame, def},
		{"tcp flags syn !ack", []policy.Match{flags(wire.TCPSyn, wire.TCPAck)}, tcp4SSH, r},
		{"tcp flags syn !ack on syn-ack", []policy.Match{flags(wire.TCPSyn, wire.TCPAck)}, tcp4Web, def},
		{"negated tcp flags", []policy.Match{not(flags(wire.TCPSyn, wire.TCPAck))}, tcp4Web, r},
		{"tcp flags on udp", []policy.Match{not(flags(wire.TCPSyn, 0))}, udp4DNS, def},
		{"tcp flags on later fragment", []policy.Match{flags(wire.TCPSyn, 0)}, later4, def},
		{"icmp_type", []policy.Match{is(policy.FieldICMPType, 8), is(policy.FieldICMPCode, 0)}, icmp4Echo, r},
		{"icmpv6 type", []policy.Match{is(policy.FieldICMPType, 135)}, icmp6NS, r},
		{"icmp_type on tcp", []policy.Match{not(is(policy.FieldICMPType, 8))}, tcp4SSH, def},
		{"ttl range", []policy.Match{values(policy.FieldTTL, policy.Range{Lo: 0, Hi: 5})}, udp4DNS, r},
		{"ipv6 hop limit", []policy.Match{is(policy.FieldTTL, 64)}, udp6, r},
		{"length from ip header not frame", []policy.Match{is(policy.FieldLength, 128)}, udp4DNS, r},
		{"ipv6 length", []policy.Match{is(policy.FieldLength, 48)}, udp6, r},
		{"fragment none", []policy.Match{fragments(policy.FragNone)}, tcp4SSH, r},
		{"fragment any on first", []policy.Match{fragments(policy.FragFirst, policy.FragLater)}, first4, r},
		{"fragment any on none", []policy.Match{fragments(policy.FragFirst, policy.FragLater)}, tcp4SSH, def},
		{"fragment later", []policy.Match{fragments(policy.FragLater)}, later6, r},
		{"not fragment none", []policy.Match{not(fragments(policy.FragNone))}, later4, r},
		{"fragment on arp", []policy.Match{not(fragments(policy.FragNone))}, arpFrame, def},
		{"all fields must match", []policy.Match{is(policy.FieldProto, 6), is(policy.FieldDstPort, 23)}, tcp4SSH, def},
		{"malformed never reaches rules", nil, badFrame, RuleMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Evaluate(passIfMatch(tc.match...), tc.frame)
			if diff := cmp.Diff(tc.want, got.Rule); diff != "" {
				t.Errorf("deciding rule (-want +got):\n%s", diff)
			}
			// Explain must agree with Evaluate.
			if diff := cmp.Diff(got, Explain(passIfMatch(tc.match...), tc.frame).Result); diff != "" {
				t.Errorf("Explain result differs from Evaluate (-evaluate +explain):\n%s", diff)
			}
		})
	}
}

// TestEvaluate checks verdicts, counter slots and count rules.
func TestEvaluate(t *testing.T) {
	countAll := newRule("all", policy.ActionCount)
	countTCP := newRule("tcp", policy.ActionCount, is(policy.FieldProto, 6))
	countUDP := newRule("udp", policy.ActionCount, is(policy.FieldProto, 17))
	ssh := newRule("ssh", policy.ActionPass, is(policy.FieldProto, 6), is(policy.FieldDstPort, 22))
	dropV6 := newRule("v6", policy.ActionDrop, is(policy.FieldEtherType, wire.EtherTypeIPv6))
	after := newRule("after", policy.ActionCount)
	p := newPolicy(policy.ActionDrop, policy.ActionPass, countAll, countTCP, countUDP, ssh, dropV6, after)

	tests := []struct {
		name  string
		frame []byte
		want  Result
	}{
		{"count rules then pass", tcp4SSH,
			Result{Verdict: policy.ActionPass, Rule: "ssh", Slot: 3, Counted: []int{0, 1}}},
		{"count rules then drop", tcp6Web,
			Result{Verdict: policy.ActionDrop, Rule: "v6", Slot: 4, Counted: []int{0, 1}}},
		{"count rules then default", udp4DNS,
			Result{Verdict: policy.ActionDrop, Rule: RuleDefault, Slot: 6, Counted: []int{0, 2, 5}}},
		{"malformed", badFrame,
			Result{Verdict: policy.ActionPass, Rule: RuleMalformed, Slot: 7, Malformed: reasonIPv4TotShort}},
		{"malformed ethernet", zeros(5),
			Result{Verdict: policy.ActionPass, Rule: RuleMalformed, Slot: 7, Malformed: reasonEthernetShort}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Evaluate(p, tc.frame)); diff != "" {
				t.Errorf("Evaluate (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, Explain(p, tc.frame).Result); diff != "" {
				t.Errorf("Explain result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEvaluateEmptyPolicy(t *testing.T) {
	p := newPolicy(policy.ActionPass, policy.ActionDrop)
	want := Result{Verdict: policy.ActionPass, Rule: RuleDefault, Slot: 0}
	if diff := cmp.Diff(want, Evaluate(p, arpFrame)); diff != "" {
		t.Error(diff)
	}
	want = Result{Verdict: policy.ActionDrop, Rule: RuleMalformed, Slot: 1, Malformed: reasonEthernetShort}
	if diff := cmp.Diff(want, Evaluate(p, nil)); diff != "" {
		t.Error(diff)
	}
}

// TestEvaluateDoesNotAllocate guards the speed of the differential test:
// without count rules, Evaluate allocates nothing.
func TestEvaluateDoesNotAllocate(t *testing.T) {
	p := newPolicy(policy.ActionDrop, policy.ActionDrop,
		newRule("block", policy.ActionDrop, inSet(policy.FieldSrc, cidrSet)),
		newRule("web", policy.ActionPass, is(policy.FieldProto, 6), inSet(policy.FieldDstPort, portSet), flags(0, wire.TCPRst)),
		newRule("mac", policy.ActionPass, not(macList(policy.FieldSrcMAC, otherMAC)), cidrs(policy.FieldDst, "10.9.0.0/16", "2001:db8::/32"), fragments(policy.FragNone)),
	)
	tracking := hostPolicy()
	for _, f := range [][]byte{tcp4SSH, tcp4Web, tcp6Web, udp6, later6, qinqFrame, badFrame} {
		if n := testing.AllocsPerRun(100, func() { Evaluate(p, f) }); n != 0 {
			t.Errorf("Evaluate allocates %v times per packet on %x", n, f)
		}
		if n := testing.AllocsPerRun(100, func() { Evaluate(tracking, f) }); n != 0 {
			t.Errorf("Evaluate of a policy that tracks allocates %v times per packet on %x", n, f)
		}
	}
	// A session allocates nothing for the packets of a flow it knows.
	s := NewSession(tracking, policy.Conntrack{})
	s.Ingress(sshIn(syn), 1)
	in, out := sshIn(pshAck), sshOut(pshAck)
	if n := testing.AllocsPerRun(100, func() { s.Ingress(in, 2); s.Egress(out, 3) }); n != 0 {
		t.Errorf("a session allocates %v times per packet of a known flow", n)
	}
	if r := s.Ingress(in, 4); r.CTState != conntrack.StatusEstablished {
		t.Errorf("the flow's packets are %s, want established", r.CTState)
	}
}

// TestExplain checks the text of an explanation.
func TestExplain(t *testing.T) {
	at := func(line int) hcl.Range {
		return hcl.Range{Filename: "policy.hcl", Start: hcl.Pos{Line: line, Column: 3}}
	}
	ssh := newRule("ssh", policy.ActionPass, cidrs(policy.FieldSrc, "192.168.0.0/16"), is(policy.FieldDstPort, 22))
	ssh.DeclRange = at(5)
	web := newRule("web", policy.ActionPass, is(policy.FieldDstPort, 80, 443))
	all := newRule("x", policy.ActionCount)
	noV6 := newRule("v6", policy.ActionDrop, not(cidrs(policy.FieldSrc, "10.0.0.0/8")))
	notOurs := newRule("not-ours", policy.ActionDrop, not(cidrs(policy.FieldSrc, "10.0.0.0/8")))
	ack := newRule("ack", policy.ActionDrop, flags(wire.TCPAck, 0))
	vlan := newRule("vlan", policy.ActionDrop, is(policy.FieldInnerVLAN, 3))
	ssh2 := newRule("ssh2", policy.ActionPass, is(policy.FieldProto, 6), is(policy.FieldDstPort, 22))
	ssh2.DeclRange = at(30)
	p := newPolicy(policy.ActionDrop, policy.ActionDrop, ssh, web, all, noV6, notOurs, ack, vlan, ssh2)

	tests := []struct {
		name  string
		frame []byte
		want  string
	}{
		{"tcp", tcp4SSH, `packet: tcp 10.1.2.3:40000 > 10.0.0.2:22 flags S
rule "ssh" (policy.hcl:5:3): no match: src 10.1.2.3 not in 192.168.0.0/16
rule "web": no match: dst_port 22 not in [80, 443]
rule "x": count (matched, evaluation goes on)
rule "v6": no match: src 10.1.2.3 in 10.0.0.0/8 (negated)
rule "not-ours": no match: src 10.1.2.3 in 10.0.0.0/8 (negated)
rule "ack": no match: tcp_flags S do not match ack
rule "vlan": no match: inner_vlan: packet has no vlan tag
rule "ssh2" (policy.hcl:30:3): match -> pass
verdict: pass by rule "ssh2"
`},
		{"later fragment", later4, `packet: ip 10.0.0.1 > 10.0.0.2 proto 6 frag later len 20
rule "ssh" (policy.hcl:5:3): no match: src 10.0.0.1 not in 192.168.0.0/16
rule "web": no match: dst_port: packet has no ports (non-first fragment)
rule "x": count (matched, evaluation goes on)
rule "v6": no match: src 10.0.0.1 in 10.0.0.0/8 (negated)
rule "not-ours": no match: src 10.0.0.1 in 10.0.0.0/8 (negated)
rule "ack": no match: tcp_flags: packet has no tcp flags (non-first fragment)
rule "vlan": no match: inner_vlan: packet has no vlan tag
rule "ssh2" (policy.hcl:30:3): no match: dst_port: packet has no ports (non-first fragment)
verdict: drop by default
`},
		{"ipv6 in one vlan", ether(0x8100, tag(0, 4, 0x86dd), v6{nh: 17}.build(udp(1, 53))), `packet: vlan 4 udp [2001:db8::1]:1 > [2001:db8::2]:53
rule "ssh" (policy.hcl:5:3): no match: src 2001:db8::1: the rule lists no IPv6 prefix (a prefix matches only its own family)
rule "web": no match: dst_port 53 not in [80, 443]
rule "x": count (matched, evaluation goes on)
rule "v6": no match: src 2001:db8::1: the rule lists no IPv6 prefix (a prefix matches only its own family)
rule "not-ours": no match: src 2001:db8::1: the rule lists no IPv6 prefix (a prefix matches only its own family)
rule "ack": no match: tcp_flags: packet has no tcp flags (proto udp)
rule "vlan": no match: inner_vlan: packet has only one vlan tag
rule "ssh2" (policy.hcl:30:3): no match: proto udp not in tcp
verdict: drop by default
`},
		{"arp", arpFrame, `packet: arp 10.0.0.1 > 10.0.0.2
rule "ssh" (policy.hcl:5:3): no match: src: packet is not IP (ether_type 0x0806)
rule "web": no match: dst_port: packet is not IP (ether_type 0x0806)
rule "x": count (matched, evaluation goes on)
rule "v6": no match: src: packet is not IP (ether_type 0x0806)
rule "not-ours": no match: src: packet is not IP (ether_type 0x0806)
rule "ack": no match: tcp_flags: packet is not IP (ether_type 0x0806)
rule "vlan": no match: inner_vlan: packet has no vlan tag
rule "ssh2" (policy.hcl:30:3): no match: proto: packet is not IP (ether_type 0x0806)
verdict: drop by default
`},
		{"malformed", badFrame, `packet: malformed: ipv4 total length < header length at offset 14
verdict: drop for malformed packets
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Explain(p, tc.frame).String()); diff != "" {
				t.Errorf("explanation (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExplainReasons checks the reason of each kind of field.
func TestExplainReasons(t *testing.T) {
	tests := []struct {
		match policy.Match
		frame []byte
		want  string
	}{
		{is(policy.FieldEtherType, wire.EtherTypeIPv4, wire.EtherTypeIPv6), arpFrame, "ether_type 0x0806 not in [0x0800, 0x86dd]"},
		{is(policy.FieldVLAN, 11), vlanFrame, "vlan 10 not in 11"},
		{macList(policy.FieldDstMAC, otherMAC), arpFrame, "dst_mac 02:00:00:00:00:02 not in 02:00:00:00:00:09"},
		{inSet(policy.FieldSrc, cidrSet), udp6, "src 2001:db8:1::1 not in set.block"},
		{not(inSet(policy.FieldDstPort, portSet)), tcp4Web, "dst_port 8050 in set.web (negated)"},
		{values(policy.FieldProto, policy.Range{Lo: 1, Hi: 6}), udp4DNS, "proto udp not in icmp-tcp"},
		{not(flags(wire.TCPSyn, wire.TCPAck)), tcp4SSH, "tcp_flags S match syn,!ack (negated)"},
		{is(policy.FieldICMPType, 0), icmp4Echo, "icmp_type 8 not in 0"},
		{is(policy.FieldICMPCode, 1), tcp4SSH, "icmp_code: packet has no icmp header (proto tcp)"},
		{values(policy.FieldTTL, policy.Range{Lo: 0, Hi: 1}), udp4DNS, "ttl 3 not in 0-1"},
		{is(policy.FieldLength, 20), udp4DNS, "length 128 not in 20"},
		{fragments(policy.FragFirst, policy.FragLater), udp4DNS, "fragment none not in [first, later]"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			e := Explain(passIfMatch(tc.match), tc.frame)
			want := []Step{{Field: tc.match.Field, Reason: tc.want}}
			if diff := cmp.Diff(want, e.Steps, cmp.FilterPath(func(p cmp.Path) bool {
				return p.Last().String() == ".Rule"
			}, cmp.Ignore())); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRedirect checks that a redirect rule decides with its target, and
// that the explanation names the target.
func TestRedirect(t *testing.T) {
	count := newRule("all", policy.ActionCount)
	scrub := newRule("scrub", policy.ActionRedirect, is(policy.FieldProto, 17), is(policy.FieldDstPort, 53))
	scrub.To = "eth1"
	p := newPolicy(policy.ActionPass, policy.ActionDrop, count, scrub)

	want := Result{Verdict: policy.ActionRedirect, Target: "eth1", Rule: "scrub", Slot: 1, Counted: []int{0}}
	if diff := cmp.Diff(want, Evaluate(p, udp4DNS)); diff != "" {
		t.Errorf("Evaluate (-want +got):\n%s", diff)
	}
	wantText := `packet: udp 10.0.0.1:5353 > 10.0.0.2:53 ttl 3 len 100
rule "all": count (matched, evaluation goes on)
rule "scrub": match -> redirect to eth1
verdict: redirect to eth1 by rule "scrub"
`
	if diff := cmp.Diff(wantText, Explain(p, udp4DNS).String()); diff != "" {
		t.Errorf("explanation (-want +got):\n%s", diff)
	}
	if got := Evaluate(p, tcp4SSH); got.Verdict != policy.ActionPass || got.Target != "" {
		t.Errorf("a frame no redirect rule matches: %+v, want pass without target", got)
	}
}
