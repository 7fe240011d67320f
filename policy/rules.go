package policy

import (
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/xdpc/xdpc/wire"
)

var policySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "default", Required: true},
		{Name: "malformed"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "rule", LabelNames: []string{"name"}}},
}

// ruleSchema accepts every field, the action, and the attributes and blocks
// of later releases (which are then rejected as "Not supported yet").
var ruleSchema = func() *hcl.BodySchema {
	s := &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "action", Required: true}, {Name: "to"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "rate_limit"}},
	}
	for _, f := range Fields() {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: f.String()})
	}
	for _, n := range notYetAttributes {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: n.name})
	}
	return s
}()

var notYetAttributes = []struct{ name, what string }{
	{"log", "Logging (log)"},
}

// declarePolicies decodes the policy blocks and their rules.
func (l *loader) declarePolicies(blocks []*hcl.Block) {
	seen := map[string]hcl.Range{}
	for _, b := range blocks {
		name := b.Labels[0]
		content, diags := b.Body.Content(policySchema)
		l.add(l.explainFieldsOutsideRules(diags)...)
		if !l.checkDuplicate("policy", name, labelRange(b), seen) {
			continue
		}
		p := &Policy{Name: name, Default: ActionDrop, Malformed: ActionDrop, DeclRange: b.DefRange}
		l.cfg.Policies = append(l.cfg.Policies, p)
		if a, ok := content.Attributes["default"]; ok {
			l.lintAt[p] = a.Expr.Range()
			p.Default = l.verdict(a.Expr, "default verdict", p.Default)
		}
		if a, ok := content.Attributes["malformed"]; ok {
			p.Malformed = l.verdict(a.Expr, "malformed verdict", p.Malformed)
		}
		rules := map[string]hcl.Range{}
		for _, rb := range content.Blocks {
			r := l.decodeRule(rb, len(p.Rules))
			if r.Name == "default" || r.Name == "malformed" {
				l.add(diagReservedRuleName(r.Name, labelRange(rb)))
				continue
			}
			if first, dup := rules[r.Name]; dup {
				l.add(diagDuplicateRule(r.Name, p.Name, labelRange(rb), first))
				continue
			}
			rules[r.Name] = labelRange(rb)
			p.Rules = append(p.Rules, r)
		}
	}
}

// explainFieldsOutsideRules adds a hint to "Unsupported argument" errors
// for match fields written directly in a policy block.
func (l *loader) explainFieldsOutsideRules(diags hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range diags {
		if d.Summary != "Unsupported argument" || d.Subject == nil {
			continue
		}
		if _, isField := FieldByName(string(d.Subject.SliceBytes(l.cfg.Source))); isField {
			d.Detail += fieldOutsideRule
		}
	}
	return diags
}

func (l *loader) verdict(expr hcl.Expression, what string, fallback Action) Action {
	v, ok := l.evalKeyword(expr, what, []string{"pass", "drop"})
	switch {
	case !ok:
		return fallback
	case v == "pass":
		return ActionPass
	}
	return ActionDrop
}

// decodeRule decodes one rule block: its action and its matches, then
// checks that the fields fit together.
func (l *loader) decodeRule(b *hcl.Block, index int) *Rule {
	r := &Rule{Name: b.Labels[0], Index: index, DeclRange: b.DefRange, Range: b.DefRange}
	if body, ok := b.Body.(*hclsyntax.Body); ok {
		r.Range = hcl.RangeBetween(b.DefRange, body.SrcRange)
	}
	content, diags := b.Body.Content(ruleSchema)
	l.add(diags...)
	for _, n := range notYetAttributes {
		if a, ok := content.Attributes[n.name]; ok {
			l.add(diagNotSupported(n.what, a.NameRange))
		}
	}
	for _, blk := range content.Blocks {
		l.add(diagNotSupported("Rate limiting (rate_limit)", blk.DefRange))
	}
	if a, ok := content.Attributes["action"]; ok {
		switch act, _ := l.evalKeyword(a.Expr, "action", []string{"pass", "drop", "count", "redirect"}); act {
		case "pass":
			r.Action = ActionPass
		case "drop":
			r.Action = ActionDrop
		case "count":
			r.Action = ActionCount
		case "redirect":
			r.Action = ActionRedirect
		}
	}
	l.decodeRedirectTarget(r, content.Attributes["to"], content.Attributes["action"])
	rc := ruleCheck{rule: r, failed: map[Field]bool{}}
	for _, f := range Fields() {
		a, ok := content.Attributes[f.String()]
		if !ok {
			continue
		}
		m, pending, ok := l.decodeMatch(f, a.Expr)
		if !ok {
			rc.failed[f] = true
			continue
		}
		if len(pending) > 0 {
			rc.icmpNames = pending
		}
		r.Matches = append(r.Matches, m)
	}
	l.checkRule(&rc)
	return r
}

// decodeRedirectTarget checks `to`: required by, and only allowed with,
// action = "redirect", and a Linux interface name.
func (l *loader) decodeRedirectTarget(r *Rule, to, action *hcl.Attribute) {
	switch {
	case to == nil && r.Action == ActionRedirect:
		l.add(diagRedirectWithoutTarget(r.Name, action.Expr.Range()))
		return
	case to == nil:
		return
	case r.Action != ActionRedirect:
		if action != nil && r.Action != 0 {
			l.add(diagTargetWithoutRedirect(r.Name, r.Action, to.NameRange))
		}
		return
	}
	name, ok := l.evalString(to.Expr, "to")
	if !ok {
		return
	}
	if name == "" || len(name) > maxIfnameLen || containsAny(name, "/ \t\n:") {
		l.add(diagBadIfname(name, to.Expr.Range()))
		return
	}
	r.To = name
}

// decodeMatch decodes the value of field f. For icmp_type it also returns
// the type names, which are resolved once the rule's proto is known.
func (l *loader) decodeMatch(f Field, expr hcl.Expression) (Match, []item, bool) {
	m := Match{Field: f, Range: expr.Range()}
	field := f.String()
	if u, ok := expr.(*hclsyntax.UnaryOpExpr); ok && u.Op == hclsyntax.OpLogicalNot && isSetTraversal(u.Val) {
		l.add(diagSetNegated(expr.Range()))
		return m, nil, false
	}
	if isSetTraversal(expr) {
		s, ok := l.resolveSet(f, expr)
		m.Set = s
		return m, nil, ok
	}
	its, list, ok := l.items(field, expr)
	if !ok {
		return m, nil, false
	}
	if f != FieldTCPFlags {
		if its, ok = l.splitNegation(field, its, list, &m); !ok {
			return m, nil, false
		}
	}
	var pending []item
	switch f.Kind() {
	case KindRange:
		spec := numSpecs[f]
		for _, it := range its {
			if s, isStr := it.str(); f == FieldICMPType && isStr && isName(s) {
				pending = append(pending, it)
				continue
			}
			r, valid := l.parseNumItem(f, spec, it)
			ok = ok && valid
			m.Values = append(m.Values, r)
		}
		m.Values = MergeRanges(m.Values)
	case KindPrefix:
		for _, it := range its {
			p, valid := l.parsePrefixItem(field, it)
			ok = ok && valid
			m.Prefixes = append(m.Prefixes, p)
		}
		m.Prefixes = normPrefixes(m.Prefixes)
	case KindMAC:
		for _, it := range its {
			mac, valid := l.parseMACItem(field, it)
			ok = ok && valid
			m.MACs = append(m.MACs, mac)
		}
		m.MACs = normMACs(m.MACs)
	case KindFlags:
		if list {
			l.add(diagTCPFlagsList(expr.Range()))
			return m, nil, false
		}
		m.Flags, ok = l.parseTCPFlags(its[0])
	case KindCTState:
		for _, it := range its {
			cm, valid := l.parseCTStateItem(it)
			ok = ok && valid
			m.CTStates |= cm
		}
		if m.Negate {
			// "!new" is "established, related or invalid": an untracked
			// packet matches neither form.
			m.CTStates = CTStates &^ m.CTStates
			m.Negate = false
		}
	case KindFragment:
		for _, it := range its {
			fm, valid := l.parseFragmentItem(it)
			ok = ok && valid
			m.Fragments |= fm
		}
		if m.Negate {
			// "!none" is "first or later": store the complement, not a negation.
			m.Fragments = FragmentMask(FragNone|FragFirst|FragLater) &^ m.Fragments
			m.Negate = false
		}
	}
	return m, pending, ok
}

// isName reports whether s is a symbolic name rather than a number or range.
func isName(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && (s[0] < '0' || s[0] > '9')
}

// splitNegation takes the leading "!" of a single string value as the
// negation of the field; a "!" on a list element is an error.
func (l *loader) splitNegation(field string, its []item, list bool, m *Match) ([]item, bool) {
	ok := true
	for i, it := range its {
		s, isStr := it.str()
		if !isStr || !strings.HasPrefix(strings.TrimSpace(s), "!") {
			continue
		}
		if list {
			l.add(diagNegatedListElement(field, it.rng))
			ok = false
			continue
		}
		m.Negate = true
		its[i].val = cty.StringVal(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "!")))
	}
	return its, ok
}

func isSetTraversal(expr hcl.Expression) bool {
	tr, diags := hcl.AbsTraversalForExpr(expr)
	return !diags.HasErrors() && tr.RootName() == "set"
}

var setFieldTypes = map[Field]SetType{
	FieldSrc: SetCIDR, FieldDst: SetCIDR,
	FieldSrcMAC: SetMAC, FieldDstMAC: SetMAC,
	FieldSrcPort: SetPort, FieldDstPort: SetPort,
}

// resolveSet resolves a set.NAME reference for field f.
func (l *loader) resolveSet(f Field, expr hcl.Expression) (*Set, bool) {
	tr, _ := hcl.AbsTraversalForExpr(expr)
	name, ok := attrStep(tr)
	if !ok || len(tr) != 2 {
		l.add(diagBadReference("set", expr.Range()))
		return nil, false
	}
	s := l.cfg.Set(name)
	if s == nil {
		var known []string
		for _, k := range l.cfg.Sets {
			known = append(known, k.Name)
		}
		l.add(diagUnknownSet(name, known, expr.Range()))
		return nil, false
	}
	want, allowed := setFieldTypes[f]
	if !allowed {
		l.add(diagSetNotAllowed(f.String(), expr.Range()))
		return nil, false
	}
	if s.Type == 0 {
		return nil, false // the set's own type is invalid: reported there
	}
	if s.Type != want {
		l.add(diagSetType(f.String(), s, want, expr.Range()))
		return nil, false
	}
	return s, true
}

// ruleCheck is a decoded rule with what its checks need to know.
type ruleCheck struct {
	rule      *Rule
	failed    map[Field]bool // fields whose values were rejected
	icmpNames []item         // icmp_type names awaiting the proto
}

// checkRule resolves ICMP type names and rejects field combinations that
// can never match. Checks that depend on a rejected field are skipped.
func (l *loader) checkRule(rc *ruleCheck) {
	r := rc.rule
	sort.Slice(r.Matches, func(i, j int) bool { return r.Matches[i].Field < r.Matches[j].Field })
	l.resolveICMPNames(rc)
	if rc.failed[FieldProto] {
		return
	}
	proto := r.Match(FieldProto)
	for _, f := range []Field{FieldSrcPort, FieldDstPort} {
		if m := r.Match(f); m != nil && !protoWithin(proto, wire.ProtoTCP, wire.ProtoUDP) {
			l.add(diagNeedsProto(f.String(), "tcp or udp", m.Range))
		}
	}
	if m := r.Match(FieldTCPFlags); m != nil && !protoWithin(proto, wire.ProtoTCP) {
		l.add(diagNeedsProto("tcp_flags", "tcp", m.Range))
	}
	for _, f := range []Field{FieldICMPType, FieldICMPCode} {
		if m := r.Match(f); m != nil && !protoWithin(proto, wire.ProtoICMP, wire.ProtoICMPv6) {
			l.add(diagNeedsProto(f.String(), "icmp or icmpv6", m.Range))
		}
	}
	if !rc.failed[FieldEtherType] {
		l.checkFamilies(rc)
	}
}

// protoWithin reports whether proto is a plain (not negated) match whose
// values all lie in allowed.
func protoWithin(proto *Match, allowed ...uint32) bool {
	if proto == nil || proto.Negate || len(proto.Values) == 0 {
		return false
	}
	for _, r := range proto.Values {
		for v := uint64(r.Lo); v <= uint64(r.Hi); v++ {
			found := false
			for _, a := range allowed {
				found = found || v == uint64(a)
			}
			if !found {
				return false
			}
		}
	}
	return true
}

// exactProto returns the single protocol of a plain proto match.
func exactProto(proto *Match) (uint32, bool) {
	if proto == nil || proto.Negate || len(proto.Values) != 1 || proto.Values[0].Lo != proto.Values[0].Hi {
		return 0, false
	}
	return proto.Values[0].Lo, true
}

func (l *loader) resolveICMPNames(rc *ruleCheck) {
	if len(rc.icmpNames) == 0 {
		return
	}
	r := rc.rule
	m := r.Match(FieldICMPType)
	p, exact := exactProto(r.Match(FieldProto))
	var names wire.Names
	protoName := "ICMP"
	switch {
	case rc.failed[FieldProto]:
		return
	case exact && p == wire.ProtoICMP:
		names = wire.ICMPTypes
	case exact && p == wire.ProtoICMPv6:
		names, protoName = wire.ICMPv6Types, "ICMPv6"
	case protoWithin(r.Match(FieldProto), wire.ProtoICMP, wire.ProtoICMPv6):
		for _, it := range rc.icmpNames {
			s, _ := it.str()
			l.add(diagICMPNameNeedsProto(strings.TrimSpace(s), it.rng))
		}
		return
	default:
		return // reported as icmp_type needing proto icmp or icmpv6
	}
	for _, it := range rc.icmpNames {
		s, _ := it.str()
		s = strings.ToLower(strings.TrimSpace(s))
		v, ok := names.Number(s)
		if !ok {
			l.add(diagBadICMPName(s, protoName, names.List(), it.rng))
			continue
		}
		if m != nil {
			m.Values = append(m.Values, Range{uint32(v), uint32(v)})
		}
	}
	if m != nil {
		m.Values = MergeRanges(m.Values)
	}
}

// families says which IP families a field can match: for ether_type the
// families it admits, for src and dst the families of their prefixes.
type families struct{ v4, v6 bool }

func etherTypeFamilies(m *Match) families {
	if m == nil {
		return families{true, true}
	}
	has := func(v uint32) bool {
		for _, r := range m.Values {
			if r.Contains(v) {
				return true
			}
		}
		return false
	}
	return families{has(wire.EtherTypeIPv4) != m.Negate, has(wire.EtherTypeIPv6) != m.Negate}
}

func prefixFamilies(m *Match) families {
	if m.Set != nil {
		return families{true, true}
	}
	var f families
	for _, p := range m.Prefixes {
		if p.Addr().Is4() {
			f.v4 = true
		} else {
			f.v6 = true
		}
	}
	return f
}

func (f families) String() string {
	if f.v4 {
		return "IPv4"
	}
	return "IPv6"
}

// ipFields are the fields only IPv4 and IPv6 packets have.
var ipFields = []Field{FieldSrc, FieldDst, FieldProto, FieldSrcPort, FieldDstPort, FieldTCPFlags,
	FieldICMPType, FieldICMPCode, FieldTTL, FieldLength, FieldFragment, FieldCTState}

// checkFamilies rejects IP fields under a non-IP ether_type and src/dst
// prefixes of families that the rule excludes.
func (l *loader) checkFamilies(rc *ruleCheck) {
	r := rc.rule
	et := etherTypeFamilies(r.Match(FieldEtherType))
	if !et.v4 && !et.v6 {
		for _, f := range ipFields {
			if m := r.Match(f); m != nil {
				l.add(diagNeedsIP(f.String(), m.Range))
			}
		}
		return
	}
	for _, f := range []Field{FieldSrc, FieldDst} {
		m := r.Match(f)
		if m == nil {
			continue
		}
		pf := prefixFamilies(m)
		if !(pf.v4 && et.v4) && !(pf.v6 && et.v6) {
			l.add(diagEtherTypeFamily(f.String(), pf.String(), m.Range))
		}
	}
	src, dst := r.Match(FieldSrc), r.Match(FieldDst)
	if src == nil || dst == nil || rc.failed[FieldSrc] || rc.failed[FieldDst] {
		return
	}
	sf, df := prefixFamilies(src), prefixFamilies(dst)
	if !(sf.v4 && df.v4) && !(sf.v6 && df.v6) {
		l.add(diagFamilyConflict(dst.Range, sf.String(), df.String()))
	}
}

// hasV6Prefix reports whether m names an IPv6 prefix itself.
func hasV6Prefix(m *Match) bool {
	for _, p := range m.Prefixes {
		if p.Addr().Is6() {
			return true
		}
	}
	return false
}
