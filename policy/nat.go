package policy

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/xdpc/xdpc/wire"
)

// NAT is a nat block (docs/nat.md): IPv4 translation between its inside
// interface and its outside interface.
type NAT struct {
	Name string
	// Outside and Inside are the interface blocks the block names.
	Outside, Inside *Interface
	// Masquerades are tried in order on the inside interface.
	Masquerades []Masquerade
	// Forwards are tried in order on the outside interface; the first
	// match decides.
	Forwards  []Forward
	Statics   []Static
	DeclRange hcl.Range
}

// Masquerade is a masquerade block: flows from Src leave with source To
// and a port from Ports.
type Masquerade struct {
	Src   []netip.Prefix
	To    netip.Addr
	Ports Range
	Range hcl.Range
}

// Forward is a forward block: new flows of Proto for Dst and a port in
// DstPorts go to To, and to ToPort unless it is 0 (the port is kept).
type Forward struct {
	Name     string
	Proto    uint8
	Dst      netip.Addr
	DstPorts Range
	To       netip.Addr
	ToPort   uint16
	Range    hcl.Range
}

// Static is a static block: 1:1 NAT between Inside and Outside.
type Static struct {
	Inside, Outside netip.Addr
	Range           hcl.Range
}

// NATRole is the part an interface plays in a nat block.
type NATRole uint8

const (
	// NATOutside is a nat block's outside interface.
	NATOutside NATRole = iota + 1
	// NATInside is a nat block's inside interface.
	NATInside
)

func (r NATRole) String() string {
	switch r {
	case NATOutside:
		return "outside"
	case NATInside:
		return "inside"
	}
	return "NATRole(" + strconv.Itoa(int(r)) + ")"
}

// NATBinding is an interface's role in a nat block.
type NATBinding struct {
	NAT  *NAT
	Role NATRole
}

// NATOf returns the role interface ifname plays in a nat block, if any.
func (c *Config) NATOf(ifname string) (NATBinding, bool) {
	for _, n := range c.NATs {
		if n.Outside != nil && n.Outside.Name == ifname {
			return NATBinding{n, NATOutside}, true
		}
		if n.Inside != nil && n.Inside.Name == ifname {
			return NATBinding{n, NATInside}, true
		}
	}
	return NATBinding{}, false
}

// NATBindings returns the roles the interfaces bound to p play in nat
// blocks, in the order of the interface blocks.
func (c *Config) NATBindings(p *Policy) []NATBinding {
	var out []NATBinding
	for _, i := range c.Interfaces {
		if i.Policy != p {
			continue
		}
		if b, ok := c.NATOf(i.Name); ok {
			out = append(out, b)
		}
	}
	return out
}

// DefaultMasqueradePorts is a masquerade block's port range without ports.
var DefaultMasqueradePorts = Range{Lo: 1024, Hi: 65535}

var natSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "outside", Required: true}, {Name: "inside", Required: true}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "masquerade"},
		{Type: "forward", LabelNames: []string{"name"}},
		{Type: "static"},
	},
}

var masqueradeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "src", Required: true}, {Name: "to", Required: true}, {Name: "ports"}},
}

var forwardSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "proto", Required: true}, {Name: "dst", Required: true},
		{Name: "dst_port", Required: true}, {Name: "to", Required: true},
	},
}

var staticSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "inside", Required: true}, {Name: "outside", Required: true}},
}

// declareNATs decodes the nat blocks, after the interfaces: each names two
// interface blocks, each interface plays one role at most.
func (l *loader) declareNATs(blocks []*hcl.Block) {
	seen := map[string]hcl.Range{}
	roles := map[string]hcl.Range{}
	for _, b := range blocks {
		name := b.Labels[0]
		content, diags := b.Body.Content(natSchema)
		l.add(diags...)
		if !l.checkDuplicate("nat block", name, labelRange(b), seen) {
			continue
		}
		n := &NAT{Name: name, DeclRange: b.DefRange}
		out, in := content.Attributes["outside"], content.Attributes["inside"]
		n.Outside = l.natInterface(out, roles)
		if in != nil && out != nil && n.Outside != nil && sameString(l, in, n.Outside.Name) {
			l.add(diagNATSameInterface(n.Outside.Name, in.Expr.Range()))
		} else {
			n.Inside = l.natInterface(in, roles)
		}
		forwards := map[string]hcl.Range{}
		for _, blk := range content.Blocks {
			switch blk.Type {
			case "masquerade":
				if m, ok := l.decodeMasquerade(blk); ok {
					n.Masquerades = append(n.Masquerades, m)
				}
			case "forward":
				if !l.checkDuplicate("forward block", blk.Labels[0], labelRange(blk), forwards) {
					continue
				}
				if f, ok := l.decodeForward(blk); ok {
					n.Forwards = append(n.Forwards, f)
				}
			case "static":
				if s, ok := l.decodeStatic(blk); ok {
					n.Statics = append(n.Statics, s)
				}
			}
		}
		l.checkNATOverlaps(n)
		l.cfg.NATs = append(l.cfg.NATs, n)
	}
	for _, n := range l.cfg.NATs {
		for _, i := range []*Interface{n.Outside, n.Inside} {
			if i != nil && i.Policy != nil {
				i.Policy.NAT = true
			}
		}
	}
	l.checkOneNATRole()
}

// checkOneNATRole refuses a policy bound to interfaces that play different
// parts in NAT (two roles, two nat blocks, or a NAT interface and one
// without NAT): its one program translates as one part.
func (l *loader) checkOneNATRole() {
	for _, p := range l.cfg.Policies {
		if !p.NAT {
			continue
		}
		var first *Interface
		var role NATBinding
		for _, i := range l.cfg.Interfaces {
			if i.Policy != p {
				continue
			}
			b, _ := l.cfg.NATOf(i.Name)
			if first == nil {
				first, role = i, b
				continue
			}
			if b != role {
				l.add(diagNATPolicyRoles(p.Name, first.Name, describeNATRole(role), i.Name, describeNATRole(b), i.DeclRange))
			}
		}
	}
}

func describeNATRole(b NATBinding) string {
	if b.NAT == nil {
		return "no part in NAT"
	}
	return "the " + b.Role.String() + " of nat " + strconv.Quote(b.NAT.Name)
}

// sameString reports whether attribute a's value is the string s.
func sameString(l *loader, a *hcl.Attribute, s string) bool {
	v, diags := a.Expr.Value(l.ctx)
	return !diags.HasErrors() && v.IsKnown() && !v.IsNull() && v.Type() == cty.String && v.AsString() == s
}

// natInterface resolves an outside or inside attribute to its interface
// block, recording its role in roles.
func (l *loader) natInterface(a *hcl.Attribute, roles map[string]hcl.Range) *Interface {
	if a == nil {
		return nil
	}
	name, ok := l.evalString(a.Expr, a.Name)
	if !ok {
		return nil
	}
	var known []string
	for _, i := range l.cfg.Interfaces {
		if i.Name == name {
			if first, dup := roles[name]; dup {
				l.add(diagNATInterfaceTwice(name, a.Expr.Range(), first))
				return nil
			}
			roles[name] = a.Expr.Range()
			return i
		}
		known = append(known, i.Name)
	}
	l.add(diagNATUnknownInterface(name, a.Name, known, a.Expr.Range()))
	return nil
}

func (l *loader) decodeMasquerade(b *hcl.Block) (Masquerade, bool) {
	m := Masquerade{Ports: DefaultMasqueradePorts, Range: b.DefRange}
	content, diags := b.Body.Content(masqueradeSchema)
	l.add(diags...)
	if diags.HasErrors() {
		return m, false
	}
	ok := true
	if a := content.Attributes["src"]; a != nil {
		its, _, valid := l.items("src", a.Expr)
		ok = ok && valid
		for _, it := range its {
			p, valid := l.parsePrefixItem("masquerade src", it)
			if valid && !p.Addr().Is4() {
				l.add(diagNATIPv6(it.rng))
				valid = false
			}
			ok = ok && valid
			m.Src = append(m.Src, p)
		}
		m.Src = normPrefixes(m.Src)
	}
	if a := content.Attributes["to"]; a != nil {
		addr, valid := l.natAddr(a, "to")
		m.To, ok = addr, ok && valid
	}
	if a := content.Attributes["ports"]; a != nil {
		r, valid := l.natPorts(a, "ports")
		m.Ports, ok = r, ok && valid
	}
	return m, ok
}

func (l *loader) decodeForward(b *hcl.Block) (Forward, bool) {
	f := Forward{Name: b.Labels[0], Range: b.DefRange}
	content, diags := b.Body.Content(forwardSchema)
	l.add(diags...)
	if diags.HasErrors() {
		return f, false
	}
	ok := true
	if a := content.Attributes["proto"]; a != nil {
		switch p, valid := l.evalKeyword(a.Expr, "forward proto", []string{"tcp", "udp"}); {
		case !valid:
			ok = false
		case p == "tcp":
			f.Proto = wire.ProtoTCP
		default:
			f.Proto = wire.ProtoUDP
		}
	}
	if a := content.Attributes["dst"]; a != nil {
		addr, valid := l.natAddr(a, "dst")
		f.Dst, ok = addr, ok && valid
	}
	if a := content.Attributes["dst_port"]; a != nil {
		r, valid := l.natPorts(a, "dst_port")
		f.DstPorts, ok = r, ok && valid
	}
	if a := content.Attributes["to"]; a != nil {
		text, valid := l.evalString(a.Expr, "to")
		if !valid {
			return f, false
		}
		addr, port, err := splitAddrPort(strings.TrimSpace(text))
		switch {
		case err != nil:
			l.add(diagNATBadTo(text, a.Expr.Range()))
			ok = false
		case !addr.Is4():
			l.add(diagNATIPv6(a.Expr.Range()))
			ok = false
		case port != 0 && ok && f.DstPorts.Lo != f.DstPorts.Hi:
			l.add(diagNATPortForRange(text, f.DstPorts, a.Expr.Range()))
			ok = false
		}
		f.To, f.ToPort = addr, port
	}
	return f, ok
}

// splitAddrPort reads "ADDR" or "ADDR:PORT" (port 1-65535).
func splitAddrPort(s string) (netip.Addr, uint16, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return netip.Addr{}, 0, strconv.ErrRange
		}
		return ap.Addr(), ap.Port(), nil
	}
	a, err := netip.ParseAddr(s)
	return a, 0, err
}

func (l *loader) decodeStatic(b *hcl.Block) (Static, bool) {
	s := Static{Range: b.DefRange}
	content, diags := b.Body.Content(staticSchema)
	l.add(diags...)
	if diags.HasErrors() {
		return s, false
	}
	in, ok1 := l.natAddr(content.Attributes["inside"], "inside")
	out, ok2 := l.natAddr(content.Attributes["outside"], "outside")
	s.Inside, s.Outside = in, out
	return s, ok1 && ok2
}

// natAddr reads one IPv4 address.
func (l *loader) natAddr(a *hcl.Attribute, what string) (netip.Addr, bool) {
	text, ok := l.evalString(a.Expr, what)
	if !ok {
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(strings.TrimSpace(text))
	switch {
	case err != nil || addr.Zone() != "":
		l.add(diagBadAddress(what, text, a.Expr.Range()))
		return netip.Addr{}, false
	case !addr.Is4():
		l.add(diagNATIPv6(a.Expr.Range()))
		return netip.Addr{}, false
	}
	return addr, true
}

// natPorts reads a port or "LO-HI" range of ports 1-65535.
func (l *loader) natPorts(a *hcl.Attribute, what string) (Range, bool) {
	its, list, ok := l.items(what, a.Expr)
	if !ok {
		return Range{}, false
	}
	if list {
		l.add(diagNATPortList(what, a.Expr.Range()))
		return Range{}, false
	}
	var text string
	if s, isStr := its[0].str(); isStr {
		text = strings.TrimSpace(s)
	} else {
		text = its[0].val.AsBigFloat().Text('f', -1)
	}
	lo, hi, isRange := strings.Cut(text, "-")
	if !isRange {
		hi = lo
	}
	a1, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	a2, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if err1 != nil || err2 != nil || a1 == 0 || a2 == 0 || a1 > a2 {
		l.add(diagNATBadPorts(what, text, a.Expr.Range()))
		return Range{}, false
	}
	return Range{Lo: uint32(a1), Hi: uint32(a2)}, true
}

// checkNATOverlaps refuses forwards that can match one packet, a static
// outside address that is a masquerade's or a forward's too, and two
// statics of one address.
func (l *loader) checkNATOverlaps(n *NAT) {
	for i, f := range n.Forwards {
		for _, g := range n.Forwards[:i] {
			if f.Proto == g.Proto && f.Dst == g.Dst && f.DstPorts.Lo <= g.DstPorts.Hi && g.DstPorts.Lo <= f.DstPorts.Hi {
				l.add(diagNATForwardOverlap(f.Name, g.Name, f.Range))
			}
		}
	}
	ins, outs := map[netip.Addr]hcl.Range{}, map[netip.Addr]hcl.Range{}
	for _, s := range n.Statics {
		for _, m := range n.Masquerades {
			if m.To == s.Outside {
				l.add(diagNATStaticShared(s.Outside, "a masquerade's to", s.Range))
			}
		}
		for _, f := range n.Forwards {
			if f.Dst == s.Outside {
				l.add(diagNATStaticShared(s.Outside, "forward "+strconv.Quote(f.Name)+"'s dst", s.Range))
			}
		}
		if first, dup := ins[s.Inside]; dup {
			l.add(diagNATStaticTwice("inside", s.Inside, s.Range, first))
		}
		if first, dup := outs[s.Outside]; dup {
			l.add(diagNATStaticTwice("outside", s.Outside, s.Range, first))
		}
		ins[s.Inside], outs[s.Outside] = s.Range, s.Range
	}
}
