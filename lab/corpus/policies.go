package corpus

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"

	"github.com/xdpc/xdpc/wire"
)

// GeneratedPolicy is one generated policy file holding one policy.
type GeneratedPolicy struct {
	// Name is the file name to load the source under, e.g. "gen-7-12.hcl".
	Name string
	// Policy is the name of the policy block in Source.
	Policy string
	Source []byte
}

// Policies returns n policies derived from seed. Every one is valid for
// policy.Load: ports come with proto tcp or udp, tcp_flags with proto tcp,
// icmp_type and icmp_code with proto icmp or icmpv6, and address families
// of src, dst and ether_type always overlap.
func Policies(seed int64, n int) []GeneratedPolicy {
	r := rand.New(rand.NewSource(seed))
	ps := make([]GeneratedPolicy, n)
	for i := range ps {
		g := &policyGen{r: r}
		ps[i] = GeneratedPolicy{
			Name:   fmt.Sprintf("gen-%d-%d.hcl", seed, i),
			Policy: fmt.Sprintf("p%d", i),
			Source: g.policy(fmt.Sprintf("p%d", i)),
		}
	}
	return ps
}

// fams is a set of IP families a value admits.
type fams struct{ v4, v6 bool }

func (f fams) and(g fams) fams { return fams{f.v4 && g.v4, f.v6 && g.v6} }
func (f fams) empty() bool     { return !f.v4 && !f.v6 }

var famBoth = fams{true, true}

// namedSet is a generated set and, for cidr sets, the families it holds.
type namedSet struct {
	name, typ string
	fam       fams
}

// namedVar is a generated variable usable as src/dst (cidr) or a port.
type namedVar struct {
	name, kind string // kind: "cidr" or "port"
	fam        fams
}

// policyGen writes one policy file.
type policyGen struct {
	r    *rand.Rand
	b    strings.Builder
	sets []namedSet
	vars []namedVar
	// tracking: rules may match ct_state (TrackingPolicies).
	tracking bool
}

func (g *policyGen) policy(name string) []byte {
	r := g.r
	g.genVariables()
	g.genSets()
	fmt.Fprintf(&g.b, "policy %q {\n", name)
	fmt.Fprintf(&g.b, "  default = %q\n", pick(r, []string{"pass", "drop"}))
	if chance(r, 0.85) {
		fmt.Fprintf(&g.b, "  malformed = %q\n", pick(r, []string{"pass", "drop"}))
	}
	n := 1 + r.Intn(40)
	if chance(r, 0.5) {
		n = 1 + r.Intn(12)
	}
	for i := 0; i < n; i++ {
		g.rule(i)
	}
	g.b.WriteString("}\n")
	return []byte(g.b.String())
}

func (g *policyGen) genVariables() {
	r := g.r
	for i := range r.Intn(3) {
		v := namedVar{name: fmt.Sprintf("v%d", i)}
		var val string
		if chance(r, 0.6) {
			v.kind = "cidr"
			var vals []string
			vals, v.fam = g.prefixList(famBoth, 1+r.Intn(3))
			val = hclList(vals)
			if len(vals) == 1 && chance(r, 0.5) {
				val = vals[0]
			}
		} else {
			v.kind = "port"
			val = g.portValue(false)
		}
		fmt.Fprintf(&g.b, "variable %q {\n  default = %s\n}\n\n", v.name, val)
		g.vars = append(g.vars, v)
	}
}

func (g *policyGen) genSets() {
	r := g.r
	for i := range r.Intn(4) {
		s := namedSet{name: fmt.Sprintf("s%d", i)}
		var elems []string
		switch r.Intn(3) {
		case 0:
			s.typ = "cidr"
			want := pick(r, []fams{{true, false}, {false, true}, famBoth})
			elems, s.fam = g.prefixList(want, 1+r.Intn(5))
		case 1:
			s.typ = "port"
			for range 1 + r.Intn(5) {
				if chance(r, 0.2) {
					elems = append(elems, strconv.Quote(pick(r, []string{"8000-8099", "20-23", "80-80", "440-450"})))
				} else {
					elems = append(elems, strconv.Itoa(int(pick(r, poolPorts))))
				}
			}
		default:
			s.typ = "mac"
			for range 1 + r.Intn(4) {
				elems = append(elems, strconv.Quote(pick(r, poolMACs)))
			}
		}
		fmt.Fprintf(&g.b, "set %q {\n  type = %q\n  elements = %s\n}\n\n", s.name, s.typ, hclList(elems))
		g.sets = append(g.sets, s)
	}
}

// ruleShape is the family profile a rule is drawn under.
type ruleShape uint8

const (
	shapeAny ruleShape = iota
	shapeV4
	shapeV6
	shapeNonIP
)

func (g *policyGen) rule(i int) {
	r := g.r
	type field struct{ name, value string }
	var fs []field
	add := func(n, v string) { fs = append(fs, field{n, v}) }

	shape := pick(r, []ruleShape{shapeAny, shapeAny, shapeAny, shapeV4, shapeV6, shapeNonIP})
	fam := famBoth
	switch shape {
	case shapeV4:
		fam = fams{true, false}
	case shapeV6:
		fam = fams{false, true}
	}

	// Which fields the rule names.
	want := map[string]bool{}
	nfields := pick(r, []int{0, 1, 1, 1, 2, 2, 2, 3, 3, 4})
	names := []string{"ether_type", "vlan", "inner_vlan", "src_mac", "dst_mac", "src", "dst", "proto",
		"src_port", "dst_port", "dst_port", "tcp_flags", "icmp_type", "icmp_code", "ttl", "length", "fragment",
		"src", "dst", "proto"}
	if g.tracking {
		names = append(names, "ct_state", "ct_state", "ct_state", "ct_state")
	}
	for range nfields {
		want[pick(r, names)] = true
	}
	if shape == shapeNonIP {
		for _, f := range []string{"src", "dst", "proto", "src_port", "dst_port", "tcp_flags", "icmp_type", "icmp_code", "ttl", "length", "fragment", "ct_state"} {
			delete(want, f)
		}
		want["ether_type"] = true
	}
	if (want["icmp_type"] || want["icmp_code"]) && (want["src_port"] || want["dst_port"] || want["tcp_flags"]) {
		delete(want, "icmp_type")
		delete(want, "icmp_code")
	}

	// ether_type first: it bounds the families of src and dst.
	if want["ether_type"] {
		add("ether_type", g.etherType(shape))
	}
	if want["vlan"] {
		add("vlan", g.vlanValue())
	}
	if want["inner_vlan"] {
		add("inner_vlan", g.vlanValue())
	}
	for _, f := range []string{"src_mac", "dst_mac"} {
		if want[f] {
			add(f, g.macValue())
		}
	}
	if want["src"] {
		v, f := g.addrValue(fam)
		add("src", v)
		fam = fam.and(f)
	}
	if want["dst"] {
		v, _ := g.addrValue(fam)
		add("dst", v)
	}
	switch {
	case want["tcp_flags"]:
		add("proto", pick(r, []string{`"tcp"`, `6`, `["tcp"]`, `"6"`}))
	case want["src_port"] || want["dst_port"]:
		add("proto", pick(r, []string{`"tcp"`, `"udp"`, `["tcp", "udp"]`, `17`, `6`}))
	case want["icmp_type"] || want["icmp_code"]:
		proto := g.icmpProto(fam)
		add("proto", proto)
		if want["icmp_type"] {
			add("icmp_type", g.icmpTypeValue(proto))
		}
		if want["icmp_code"] {
			add("icmp_code", g.numValue(poolICMPCodes, []string{"0-3", "1-1", "4-255"}))
		}
	case want["proto"]:
		add("proto", g.protoValue())
	}
	for _, f := range []string{"src_port", "dst_port"} {
		if want[f] {
			add(f, g.portValue(true))
		}
	}
	if want["tcp_flags"] {
		add("tcp_flags", strconv.Quote(pick(r, []string{"syn", "syn,!ack", "ack", "!syn", "fin", "rst", "psh,ack", "!ack,!rst", "urg", "ece,cwr", "syn,ack", "!fin"})))
	}
	if want["ttl"] {
		add("ttl", g.numValue(poolTTLs, poolTTLRanges))
	}
	if want["length"] {
		add("length", g.numValue([]uint16{20, 28, 40, 48, 60, 64, 1500}, poolLengthRanges))
	}
	if want["fragment"] {
		add("fragment", pick(r, []string{`"none"`, `"first"`, `"later"`, `"any"`, `"!none"`, `"!later"`, `["none", "first"]`, `["later"]`, `"!any"`}))
	}
	if want["ct_state"] {
		add("ct_state", pick(r, poolCTStates))
	}

	action := pick(r, []string{"pass", "pass", "drop", "drop", "count", "count", "redirect"})
	if nfields == 0 && action != "count" && chance(r, 0.7) {
		action = "count" // a catch-all terminal rule hides every later rule
	}
	fmt.Fprintf(&g.b, "  rule %q {\n", fmt.Sprintf("r%d", i))
	for _, f := range fs {
		fmt.Fprintf(&g.b, "    %s = %s\n", f.name, f.value)
	}
	fmt.Fprintf(&g.b, "    action = %q\n", action)
	if action == "redirect" {
		fmt.Fprintf(&g.b, "    to     = %q\n", pick(r, []string{"eth1", "eth2"}))
	}
	g.b.WriteString("  }\n")
}

func (g *policyGen) etherType(shape ruleShape) string {
	r := g.r
	switch shape {
	case shapeV4:
		return pick(r, []string{`"ipv4"`, `2048`, `"0x0800"`, `["ipv4"]`})
	case shapeV6:
		return pick(r, []string{`"ipv6"`, `34525`, `"0x86dd"`})
	case shapeNonIP:
		return pick(r, []string{`"arp"`, `35020`, `"0x88cc"`, `["arp", "0x88cc"]`, `"0x8100"`, `2054`, `"0x9000"`})
	}
	return pick(r, []string{`["ipv4", "ipv6"]`, `"!arp"`, `["ipv6", "ipv4", "arp"]`, `"!0x88cc"`})
}

func (g *policyGen) vlanValue() string {
	r := g.r
	switch r.Intn(5) {
	case 0:
		return strconv.Quote("!" + strconv.Itoa(int(poolVLAN(r))))
	case 1:
		return hclList([]string{strconv.Itoa(int(poolVLAN(r))), strconv.Itoa(int(poolVLAN(r)))})
	case 2:
		return strconv.Quote(pick(r, []string{"0-10", "2-4094", "100-100", "1-1"}))
	}
	return strconv.Itoa(int(poolVLAN(r)))
}

func (g *policyGen) macValue() string {
	r := g.r
	if s := g.setOf("mac"); s != "" && chance(r, 0.3) {
		return s
	}
	switch r.Intn(4) {
	case 0:
		return strconv.Quote("!" + pick(r, poolMACs))
	case 1:
		return hclList([]string{strconv.Quote(pick(r, poolMACs)), strconv.Quote(pick(r, poolMACs))})
	}
	return strconv.Quote(pick(r, poolMACs))
}

// addrValue returns a src/dst value admitting only families in allowed
// (which is never empty), and the families it holds.
func (g *policyGen) addrValue(allowed fams) (string, fams) {
	r := g.r
	if chance(r, 0.2) {
		var cands []string
		var cf []fams
		for _, s := range g.sets {
			if s.typ == "cidr" && !s.fam.and(allowed).empty() {
				cands = append(cands, "set."+s.name)
				cf = append(cf, s.fam)
			}
		}
		for _, v := range g.vars {
			if v.kind == "cidr" && !v.fam.and(allowed).empty() {
				cands = append(cands, "var."+v.name)
				cf = append(cf, v.fam)
			}
		}
		if len(cands) > 0 {
			i := r.Intn(len(cands))
			return cands[i], cf[i]
		}
	}
	vals, f := g.prefixList(allowed, pick(r, []int{1, 1, 1, 2, 3}))
	if len(vals) == 1 {
		if chance(r, 0.25) {
			return strconv.Quote("!" + unquote(vals[0])), f
		}
		return vals[0], f
	}
	return hclList(vals), f
}

// prefixList returns n quoted prefixes from the families in allowed and the
// families actually used.
func (g *policyGen) prefixList(allowed fams, n int) ([]string, fams) {
	r := g.r
	var out []string
	var used fams
	for range n {
		v6 := allowed.v6 && (!allowed.v4 || chance(r, 0.5))
		if v6 {
			out = append(out, strconv.Quote(pick(r, poolV6Prefixes)))
			used.v6 = true
		} else {
			out = append(out, strconv.Quote(pick(r, poolV4Prefixes)))
			used.v4 = true
		}
	}
	return out, used
}

func (g *policyGen) icmpProto(f fams) string {
	r := g.r
	switch {
	case f.v4 && !f.v6:
		return pick(r, []string{`"icmp"`, `"icmp"`, `1`, `"icmpv6"`})
	case f.v6 && !f.v4:
		return pick(r, []string{`"icmpv6"`, `"icmpv6"`, `58`, `"icmp"`})
	}
	return pick(r, []string{`"icmp"`, `"icmpv6"`, `["icmp", "icmpv6"]`, `1`, `58`})
}

// icmpTypeValue uses names only under an exact icmp or icmpv6 proto.
func (g *policyGen) icmpTypeValue(proto string) string {
	r := g.r
	// Names only under an exact proto: the language names types per family.
	names := map[string]wire.Names{`"icmp"`: wire.ICMPTypes, `1`: wire.ICMPTypes, `"icmpv6"`: wire.ICMPv6Types, `58`: wire.ICMPv6Types}[proto]
	types := poolICMPTypes
	if proto == `"icmpv6"` || proto == `58` {
		types = poolICMPv6Types
	} else if proto == `["icmp", "icmpv6"]` {
		types = append(append([]uint8(nil), poolICMPTypes...), poolICMPv6Types...)
	}
	t := pick(r, types)
	if name, ok := names.Name(uint16(t)); ok && chance(r, 0.5) {
		if chance(r, 0.2) {
			return strconv.Quote("!" + name)
		}
		return strconv.Quote(name)
	}
	switch r.Intn(4) {
	case 0:
		return hclList([]string{strconv.Itoa(int(t)), strconv.Itoa(int(pick(r, types)))})
	case 1:
		return strconv.Quote("!" + strconv.Itoa(int(t)))
	}
	return strconv.Itoa(int(t))
}

func (g *policyGen) protoValue() string {
	r := g.r
	return pick(r, []string{`"tcp"`, `"udp"`, `"icmp"`, `"icmpv6"`, `"gre"`, `"esp"`, `"ah"`, `"sctp"`,
		`59`, `["tcp", "udp"]`, `["gre", "esp", 51]`, `"!tcp"`, `"!udp"`, `6`, `17`, `255`, `["icmp", "icmpv6"]`})
}

// portValue returns a port match value; withSets allows set and variable
// references.
func (g *policyGen) portValue(withSets bool) string {
	r := g.r
	if withSets && chance(r, 0.2) {
		var cands []string
		for _, s := range g.sets {
			if s.typ == "port" {
				cands = append(cands, "set."+s.name)
			}
		}
		for _, v := range g.vars {
			if v.kind == "port" {
				cands = append(cands, "var."+v.name)
			}
		}
		if len(cands) > 0 {
			return pick(r, cands)
		}
	}
	switch r.Intn(6) {
	case 0:
		return strconv.Quote(pick(r, poolPortRanges))
	case 1:
		return strconv.Quote("!" + strconv.Itoa(int(pick(r, poolPorts))))
	case 2:
		return strconv.Quote("!" + pick(r, poolPortRanges))
	case 3:
		return hclList([]string{strconv.Itoa(int(pick(r, poolPorts))), strconv.Quote(pick(r, poolPortRanges)), strconv.Itoa(int(pick(r, poolPorts)))})
	}
	return strconv.Itoa(int(pick(r, poolPorts)))
}

// numValue returns a number, a range, a list or a negation of either.
func numValue[T uint8 | uint16](r *rand.Rand, nums []T, ranges []string) string {
	switch r.Intn(6) {
	case 0:
		return strconv.Quote(pick(r, ranges))
	case 1:
		return strconv.Quote("!" + pick(r, ranges))
	case 2:
		return strconv.Quote("!" + strconv.Itoa(int(pick(r, nums))))
	case 3:
		return hclList([]string{strconv.Itoa(int(pick(r, nums))), strconv.Quote(pick(r, ranges))})
	}
	return strconv.Itoa(int(pick(r, nums)))
}

func (g *policyGen) numValue(nums any, ranges []string) string {
	switch ns := nums.(type) {
	case []uint8:
		return numValue(g.r, ns, ranges)
	case []uint16:
		return numValue(g.r, ns, ranges)
	}
	panic("corpus: numValue on an unsupported pool")
}

// setOf returns a reference to a random set of type typ, or "".
func (g *policyGen) setOf(typ string) string {
	var cands []string
	for _, s := range g.sets {
		if s.typ == typ {
			cands = append(cands, "set."+s.name)
		}
	}
	if len(cands) == 0 {
		return ""
	}
	return pick(g.r, cands)
}

func hclList(vals []string) string { return "[" + strings.Join(vals, ", ") + "]" }

func unquote(s string) string {
	u, err := strconv.Unquote(s)
	if err != nil {
		panic("corpus: unquote a generated literal: " + err.Error())
	}
	return u
}
