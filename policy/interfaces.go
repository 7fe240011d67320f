package policy

import (
	"github.com/hashicorp/hcl/v2"
)

var interfaceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "policy", Required: true},
		{Name: "mode"},
	},
}

var modes = map[string]Mode{"auto": ModeAuto, "native": ModeNative, "generic": ModeGeneric}

// maxIfnameLen is the longest Linux interface name (IFNAMSIZ - 1).
const maxIfnameLen = 15

// declareInterfaces decodes the interface blocks and attaches their policies.
func (l *loader) declareInterfaces(blocks []*hcl.Block) {
	seen := map[string]hcl.Range{}
	var known []string
	for _, p := range l.cfg.Policies {
		known = append(known, p.Name)
	}
	for _, b := range blocks {
		name := b.Labels[0]
		content, diags := b.Body.Content(interfaceSchema)
		l.add(diags...)
		if !l.checkDuplicate("interface", name, labelRange(b), seen) {
			continue
		}
		if name == "" || len(name) > maxIfnameLen || containsAny(name, "/ \t\n:") {
			l.add(diagBadIfname(name, labelRange(b)))
		}
		ifc := &Interface{Name: name, Mode: ModeAuto, DeclRange: b.DefRange}
		if a, ok := content.Attributes["policy"]; ok {
			if pn, ok := l.evalString(a.Expr, "policy"); ok {
				ifc.Policy = l.cfg.Policy(pn)
				if ifc.Policy == nil {
					l.add(diagUnknownPolicy(pn, known, a.Expr.Range()))
				}
			}
		}
		if a, ok := content.Attributes["mode"]; ok {
			if m, ok := l.evalKeyword(a.Expr, "mode", []string{"auto", "native", "generic"}); ok {
				ifc.Mode = modes[m]
			}
		}
		l.cfg.Interfaces = append(l.cfg.Interfaces, ifc)
	}
}

func containsAny(s, chars string) bool {
	for _, c := range s {
		for _, d := range chars {
			if c == d {
				return true
			}
		}
	}
	return false
}
