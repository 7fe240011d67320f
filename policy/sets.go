package policy

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/xdpc/xdpc/artifact"
)

// maxSetElements bounds max_elements: the largest map a set compiles to.
const maxSetElements = 1 << 24

// minDynamicCapacity is the least capacity of a dynamic set's map.
const minDynamicCapacity = 1024

var setSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type", Required: true},
		{Name: "elements"},
		{Name: "dynamic"},
		{Name: "max_elements"},
	},
}

// declareSets decodes the set blocks. A set with errors is still declared
// so that references to it do not add spurious "Unknown set" errors.
func (l *loader) declareSets(blocks []*hcl.Block) {
	seen := map[string]hcl.Range{}
	for _, b := range blocks {
		name := b.Labels[0]
		content, diags := b.Body.Content(setSchema)
		l.add(diags...)
		if !l.checkDuplicate("set", name, labelRange(b), seen) {
			continue
		}
		s := &Set{Name: name, DeclRange: b.DefRange}
		l.cfg.Sets = append(l.cfg.Sets, s)
		if a, ok := content.Attributes["type"]; ok {
			var names []string
			for _, t := range artifact.SetTypes() {
				names = append(names, t.String())
			}
			if t, ok := l.evalKeyword(a.Expr, "set type", names); ok {
				s.Type, _ = artifact.SetTypeNamed(t)
			}
		}
		count, ok := 0, true
		if a, has := content.Attributes["dynamic"]; has {
			v, valid := l.eval(a.Expr)
			switch {
			case !valid:
				ok = false
			case v.IsNull() || v.Type() != cty.Bool:
				l.add(diagWrongType("dynamic", "true or false", typeName(v), a.Expr.Range()))
				ok = false
			default:
				s.Dynamic = v.True()
			}
		}
		if a, has := content.Attributes["elements"]; has && s.Type != 0 {
			var valid bool
			count, valid = l.decodeSetElements(s, a)
			ok = ok && valid
		}
		if !ok {
			continue
		}
		if count == 0 && !s.Dynamic && s.Type != 0 {
			l.add(diagEmptySet(name, labelRange(b)))
		}
		s.MaxElements = count
		if s.Dynamic {
			s.MaxElements = max(minDynamicCapacity, 2*count)
		}
		if a, has := content.Attributes["max_elements"]; has {
			l.decodeMaxElements(s, count, a)
		}
	}
}

// decodeSetElements parses the elements of s by its type and returns how
// many map entries they need: one per prefix, MAC, or port number.
func (l *loader) decodeSetElements(s *Set, a *hcl.Attribute) (int, bool) {
	what := fmt.Sprintf("set %q", s.Name)
	// A set with no elements is written elements = []; that is not an error here.
	if v, ok := l.eval(a.Expr); ok && !v.IsNull() && v.CanIterateElements() && v.LengthInt() == 0 {
		return 0, true
	} else if !ok {
		return 0, false
	}
	its, _, ok := l.items(what, a.Expr)
	if !ok {
		return 0, false
	}
	switch s.Type {
	case SetCIDR:
		for _, it := range its {
			if p, valid := l.parsePrefixItem(what, it); valid {
				s.Prefixes = append(s.Prefixes, p)
			} else {
				ok = false
			}
		}
		s.Prefixes = normPrefixes(s.Prefixes)
		return len(s.Prefixes), ok
	case SetPort:
		for _, it := range its {
			if r, valid := l.parseNumItem(FieldDstPort, numSpecs[FieldDstPort], it); valid {
				s.Ports = append(s.Ports, r)
			} else {
				ok = false
			}
		}
		s.Ports = MergeRanges(s.Ports)
		n := 0
		for _, r := range s.Ports {
			n += int(r.Hi-r.Lo) + 1
		}
		return n, ok
	case SetMAC:
		for _, it := range its {
			if m, valid := l.parseMACItem(what, it); valid {
				s.MACs = append(s.MACs, m)
			} else {
				ok = false
			}
		}
		s.MACs = normMACs(s.MACs)
		return len(s.MACs), ok
	}
	return 0, false
}

func (l *loader) decodeMaxElements(s *Set, count int, a *hcl.Attribute) {
	v, ok := l.eval(a.Expr)
	if !ok {
		return
	}
	if v.IsNull() || v.Type() != cty.Number {
		l.add(diagMaxElementsRange(s.Name, a.Expr.Range()))
		return
	}
	n, whole := wholeNumber(v)
	if !whole || n < 1 || n > maxSetElements {
		l.add(diagMaxElementsRange(s.Name, a.Expr.Range()))
		return
	}
	if int(n) < count {
		l.add(diagMaxElements(s.Name, int(n), count, a.Expr.Range()))
		return
	}
	s.MaxElements = int(n)
}
