package corpus

import (
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/policy/eval"
	"github.com/xdpc/xdpc/wire"
)

// The reasons docs/datapath.md gives for a malformed frame, as the reference
// evaluator words them.
const (
	rEthernet   = "ethernet header cut short"
	rVLAN       = "vlan tag cut short"
	rIPv4Short  = "ipv4 header cut short"
	rIPv4Ver    = "ip version is not 4 under ether_type ipv4"
	rIPv4IHL    = "ipv4 ihl < 5"
	rIPv4HL     = "ipv4 header (ihl) beyond frame"
	rIPv4TotLT  = "ipv4 total length < header length"
	rIPv4TotGT  = "ipv4 total length beyond frame"
	rIPv6Short  = "ipv6 header cut short"
	rIPv6Ver    = "ip version is not 6 under ether_type ipv6"
	rIPv6Plen   = "ipv6 payload length beyond frame"
	rExtCount   = "ipv6 extension header chain longer than 8"
	rExtShort   = "ipv6 extension header cut short"
	rExtLen     = "ipv6 extension header length beyond packet"
	rFragShort  = "ipv6 fragment header cut short"
	rTCPShort   = "tcp header cut short"
	rTCPDoff    = "tcp data offset < 5"
	rTCPOptions = "tcp data offset beyond packet"
	rUDPShort   = "udp header cut short"
	rICMPShort  = "icmp header cut short"
	rICMPv6     = "icmpv6 header cut short"
)

// malformedReasons is, for each malformed class, the reasons its frames may
// have.
var malformedReasons = map[Class][]string{
	"ipv6-ext-9+":              {rExtCount},
	"ipv6-ext-len-past-end":    {rExtLen},
	"ipv6-ext-short":           {rExtShort, rExtLen},
	"ipv6-ext-cut":             {rIPv6Plen},
	"ipv6-frag-header-short":   {rFragShort},
	"ipv4-frag-tiny":           {rTCPShort},
	"ipv4-frag-first-l4-short": {rTCPShort, rUDPShort, rICMPShort},
	"ipv6-frag-first-l4-short": {rTCPShort, rUDPShort, rICMPv6},
	"ipv4-bad-ihl":             {rIPv4IHL},
	"ipv4-ihl-past-frame":      {rIPv4HL},
	"ipv4-bad-version":         {rIPv4Ver},
	"ipv4-total-lt-header":     {rIPv4TotLT},
	"ipv4-total-gt-frame":      {rIPv4TotGT},
	"ipv6-bad-version":         {rIPv6Ver},
	"ipv6-payload-gt-frame":    {rIPv6Plen},
	"cut-ethernet":             {rEthernet},
	"cut-vlan":                 {rVLAN},
	"cut-ipv4":                 {rIPv4Short},
	"cut-ipv4-options":         {rIPv4HL},
	"cut-ipv6":                 {rIPv6Short},
	"cut-l4-frame":             {rIPv4TotGT, rIPv6Plen},
	"short-tcp":                {rTCPShort},
	"short-udp":                {rUDPShort},
	"short-icmp":               {rICMPShort},
	"short-icmpv6":             {rICMPv6},
	"tcp-data-offset-lt-5":     {rTCPDoff},
	"tcp-data-offset-past-end": {rTCPOptions},
}

// wellFormedChecks says, for well-formed classes, what the parsed packet
// must show beyond parsing at all; "" means it does.
var wellFormedChecks = map[Class]func(p *eval.Packet) string{
	"ipv4-tcp":            want(4, wire.ProtoTCP, policy.FragNone),
	"ipv4-udp":            want(4, wire.ProtoUDP, policy.FragNone),
	"ipv4-icmp":           want(4, wire.ProtoICMP, policy.FragNone),
	"ipv4-ah":             want(4, wire.ProtoAH, policy.FragNone),
	"ipv6-tcp":            want(6, wire.ProtoTCP, policy.FragNone),
	"ipv6-udp":            want(6, wire.ProtoUDP, policy.FragNone),
	"ipv6-icmpv6":         want(6, wire.ProtoICMPv6, policy.FragNone),
	"ipv6-esp":            want(6, wire.ProtoESP, policy.FragNone),
	"ipv6-ext-icmpv6":     want(6, wire.ProtoICMPv6, policy.FragNone),
	"ipv6-ext-ah":         want(6, wire.ProtoAH, policy.FragNone),
	"ipv6-no-next-header": want(6, wire.ProtoNoNext, policy.FragNone),
	"ipv4-frag-first":     want(4, -1, policy.FragFirst),
	"ipv4-frag-later":     want(4, -1, policy.FragLater),
	"ipv4-frag-overlap":   want(4, -1, policy.FragLater),
	"ipv6-frag-first":     want(6, -1, policy.FragFirst),
	"ipv6-frag-later":     want(6, -1, policy.FragLater),
	"ipv6-frag-last":      want(6, -1, policy.FragLater),
	"ipv6-frag-overlap":   want(6, -1, policy.FragLater),
	"ipv6-frag-atomic":    want(6, -1, policy.FragNone),
	"ipv6-frag-then-ext":  want(6, -1, policy.FragFirst),
	"ipv4-options":        want(4, -1, policy.FragNone),
	"vlan-single":         func(p *eval.Packet) string { return check(p.Tags == 1, "want 1 tag") },
	"vlan-double":         func(p *eval.Packet) string { return check(p.Tags == 2, "want 2 tags") },
	"vlan-priority-tag": func(p *eval.Packet) string {
		return check(p.Tags >= 1 && p.VLAN[0] == 0, "want an outer tag with id 0")
	},
	"vlan-triple": func(p *eval.Packet) string {
		return check(p.Tags == 2 && p.EtherType == wire.EtherTypeVLAN && p.Family == 0, "want 2 tags parsed and ether type 0x8100")
	},
	"arp": func(p *eval.Packet) string {
		return check(p.EtherType == wire.EtherTypeARP && p.Family == 0, "want ARP")
	},
	"vlan-arp": func(p *eval.Packet) string {
		return check(p.EtherType == wire.EtherTypeARP && p.Tags == 1, "want tagged ARP")
	},
	"lldp": func(p *eval.Packet) string { return check(p.EtherType == 0x88cc && p.Family == 0, "want LLDP") },
	"eth-padded-zero": func(p *eval.Packet) string {
		return check(p.Len == 60 && p.Family != 0 && int(p.Length)+14 < 60, "want an IP packet padded to 60")
	},
	"eth-padded-garbage": func(p *eval.Packet) string {
		return check(p.Len == 60 && p.Family != 0 && int(p.Length)+14 < 60, "want an IP packet padded to 60")
	},
}

func want(family int, proto int, frag policy.Fragment) func(p *eval.Packet) string {
	return func(p *eval.Packet) string {
		if p.Family != family || (proto >= 0 && int(p.Proto) != proto) || p.Fragment != frag {
			return fmt.Sprintf("want family %d proto %d fragment %v, got family %d proto %d fragment %v", family, proto, frag, p.Family, p.Proto, p.Fragment)
		}
		if frag == policy.FragLater && (p.HasPorts || p.HasTCPFlags || p.HasICMP) {
			return "a later fragment has layer-4 fields"
		}
		return ""
	}
}

func check(ok bool, msg string) string {
	if ok {
		return ""
	}
	return msg
}

// TestClassesParseAsDesigned runs every generated frame through the
// reference parser and checks that each class parses as its construction
// intends, and that every malformed reason of docs/datapath.md is reached.
func TestClassesParseAsDesigned(t *testing.T) {
	reasons := map[string]int{}
	outcomes := map[Class]map[string]int{}
	failures := 0
	for _, seed := range []int64{1, 2, 3} {
		for i, pk := range Generate(seed, 3000) {
			p, m := eval.Parse(pk.Frame)
			got := "ok"
			if m != nil {
				got = m.Reason
				reasons[m.Reason]++
			}
			if outcomes[pk.Class] == nil {
				outcomes[pk.Class] = map[string]int{}
			}
			outcomes[pk.Class][got]++
			var problem string
			switch pk.Expect {
			case ExpectMalformed:
				if m == nil {
					problem = "parses, want malformed"
				} else if rs := malformedReasons[pk.Class]; !slices.Contains(rs, m.Reason) {
					problem = fmt.Sprintf("malformed %q, want one of %q", m.Reason, rs)
				}
			case ExpectWellFormed:
				if m != nil {
					problem = fmt.Sprintf("malformed (%s), want well-formed", m.Reason)
				} else if c := wellFormedChecks[pk.Class]; c != nil {
					problem = c(p)
				}
			}
			if problem != "" {
				failures++
				if failures <= 10 {
					t.Errorf("seed %d packet %d class %s: %s\n%s", seed, i, pk.Class, problem, hex.EncodeToString(pk.Frame))
				}
			}
		}
	}
	var missing []string
	for _, r := range []string{rEthernet, rVLAN, rIPv4Short, rIPv4Ver, rIPv4IHL, rIPv4HL, rIPv4TotLT, rIPv4TotGT,
		rIPv6Short, rIPv6Ver, rIPv6Plen, rExtCount, rExtShort, rExtLen, rFragShort,
		rTCPShort, rTCPDoff, rTCPOptions, rUDPShort, rICMPShort, rICMPv6} {
		if reasons[r] == 0 {
			missing = append(missing, r)
		}
	}
	if diff := cmp.Diff([]string(nil), missing); diff != "" {
		t.Errorf("malformed reasons never reached (-want +got):\n%s", diff)
	}
	for _, c := range Classes() {
		if len(outcomes[c]) == 0 {
			t.Errorf("class %s produced no frames", c)
		}
	}
	if testing.Verbose() {
		var lines []string
		for c, o := range outcomes {
			lines = append(lines, fmt.Sprintf("%-28s %v", c, o))
		}
		sort.Strings(lines)
		for _, l := range lines {
			t.Log(l)
		}
	}
}

// TestMalformedClassesHaveReasons keeps the two tables in step with the
// class list.
func TestMalformedClassesHaveReasons(t *testing.T) {
	for _, c := range Classes() {
		if ExpectOf(c) == ExpectMalformed && malformedReasons[c] == nil {
			t.Errorf("malformed class %s has no expected reasons", c)
		}
	}
}
