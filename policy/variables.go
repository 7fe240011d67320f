package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "default"},
		{Name: "description"},
	},
}

// declareVariables decodes the variable blocks and their defaults.
func (l *loader) declareVariables(blocks []*hcl.Block) {
	seen := map[string]hcl.Range{}
	for _, b := range blocks {
		name := b.Labels[0]
		content, diags := b.Body.Content(variableSchema)
		l.add(diags...)
		if !l.checkDuplicate("variable", name, labelRange(b), seen) {
			continue
		}
		v := &Variable{Name: name, Value: cty.NilVal, DeclRange: b.DefRange}
		if a, ok := content.Attributes["description"]; ok {
			l.evalString(a.Expr, "description")
		}
		if a, ok := content.Attributes["default"]; ok {
			val, diags := a.Expr.Value(nil)
			l.add(diags...)
			if !diags.HasErrors() {
				if typ, ok := checkVariableValue(val); ok {
					v.Value = val
				} else {
					l.add(diagBadVarType(name, typ, a.Expr.Range()))
				}
			}
			l.hasDefault[name] = true
		}
		l.cfg.Variables = append(l.cfg.Variables, v)
	}
}

// checkVariableValue reports whether val is a string, a number, or a
// list of those, and otherwise a name for its type.
func checkVariableValue(val cty.Value) (string, bool) {
	if val.IsNull() {
		return "null", false
	}
	if !val.IsWhollyKnown() {
		return "unknown value", false
	}
	t := val.Type()
	switch {
	case t == cty.String || t == cty.Number:
		return "", true
	case t.IsObjectType() || t.IsMapType():
		return "an object", false
	case t == cty.Bool:
		return "a bool", false
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		for it := val.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if e.IsNull() || (e.Type() != cty.String && e.Type() != cty.Number) {
				return "a list holding " + e.Type().FriendlyName() + " values", false
			}
		}
		return "", true
	}
	return "a " + t.FriendlyName(), false
}

// applyOverrides applies -var values and reports variables left without one.
func (l *loader) applyOverrides() {
	names := make([]string, 0, len(l.opts.Vars))
	for n := range l.opts.Vars {
		names = append(names, n)
	}
	sort.Strings(names)
	known := make([]string, len(l.cfg.Variables))
	for i, v := range l.cfg.Variables {
		known[i] = v.Name
	}
	for _, n := range names {
		v := l.variable(n)
		if v == nil {
			l.add(diagUnknownVarOverride(n, known))
			continue
		}
		val, diag := parseOverride(n, l.opts.Vars[n], v.Value)
		if diag != nil {
			l.add(diag)
			continue
		}
		v.Value, v.Overridden = val, true
	}
	for _, v := range l.cfg.Variables {
		if v.Value == cty.NilVal && !l.hasDefault[v.Name] {
			l.add(diagMissingVarValue(v.Name, v.DeclRange))
		}
	}
}

func (l *loader) variable(name string) *Variable {
	for _, v := range l.cfg.Variables {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// parseOverride turns the raw -var text into a value shaped like the
// default: for a list, an HCL list or string expression when the text
// starts with '[' or '"', and otherwise one element (see listElement); a
// number for numbers; and a plain string otherwise.
func parseOverride(name, raw string, def cty.Value) (cty.Value, *hcl.Diagnostic) {
	isList := def != cty.NilVal && (def.Type().IsTupleType() || def.Type().IsListType() || def.Type().IsSetType())
	if text := strings.TrimSpace(raw); isList && !strings.HasPrefix(text, "[") && !strings.HasPrefix(text, `"`) {
		return cty.TupleVal([]cty.Value{listElement(text)}), nil
	}
	switch {
	case isList:
		expr, diags := hclsyntax.ParseExpression([]byte(raw), "-var "+name, hcl.InitialPos)
		if diags.HasErrors() {
			return cty.NilVal, diagBadVarOverride(name, raw, "is not a list expression such as [\"a\", \"b\"]")
		}
		val, diags := expr.Value(nil)
		if diags.HasErrors() {
			return cty.NilVal, diagBadVarOverride(name, raw, "cannot be evaluated: "+strings.TrimSuffix(diags[0].Detail, "."))
		}
		if typ, ok := checkVariableValue(val); !ok {
			return cty.NilVal, diagBadVarOverride(name, raw, "is "+typ+", not a list of strings and numbers")
		}
		if t := val.Type(); t == cty.String || t == cty.Number {
			val = cty.TupleVal([]cty.Value{val})
		}
		return val, nil
	case def != cty.NilVal && def.Type() == cty.Number:
		val, err := cty.ParseNumberVal(strings.TrimSpace(raw))
		if err != nil {
			return cty.NilVal, diagBadVarOverride(name, raw, "is not a number, and the variable's default is one")
		}
		return val, nil
	}
	return cty.StringVal(raw), nil
}

// listElement is the one element a bare -var value gives a list: a number
// when it is all digits (-var ports=22), else the text as written
// (10.0.0.0/8, 8000-8099, 2001:db8::/32), which no HCL expression would
// keep: 8000-8099 is a subtraction there.
func listElement(text string) cty.Value {
	if text != "" && strings.Trim(text, "0123456789") == "" {
		if v, err := cty.ParseNumberVal(text); err == nil {
			return v
		}
	}
	return cty.StringVal(text)
}

// buildEvalContext exposes the variables as the object `var`.
func (l *loader) buildEvalContext() {
	for _, v := range l.cfg.Variables {
		if v.Value != cty.NilVal {
			l.vars[v.Name] = v.Value
		}
	}
	obj := cty.EmptyObjectVal
	if len(l.vars) > 0 {
		obj = cty.ObjectVal(l.vars)
	}
	l.ctx = &hcl.EvalContext{Variables: map[string]cty.Value{"var": obj}}
}

func (l *loader) variableNames() []string {
	var ns []string
	for _, v := range l.cfg.Variables {
		ns = append(ns, v.Name)
	}
	return ns
}

// checkReferences reports every reference in expr that is not a known
// var.NAME. Set references are handled by the caller before this; any
// left are inside a larger expression.
func (l *loader) checkReferences(expr hcl.Expression) bool {
	ok := true
	for _, tr := range expr.Variables() {
		switch tr.RootName() {
		case "var":
			name, valid := attrStep(tr)
			if !valid {
				l.add(diagBadReference("var", tr.SourceRange()))
				ok = false
				continue
			}
			if _, found := l.vars[name]; !found && l.variable(name) == nil {
				l.add(diagUnknownVariable(name, l.variableNames(), tr.SourceRange()))
				ok = false
			} else if !found {
				ok = false // declared but without a value: already reported
			}
		case "set":
			l.add(diagSetNotAlone(tr.SourceRange()))
			ok = false
		default:
			l.add(diagBadReference(tr.RootName(), tr.SourceRange()))
			ok = false
		}
	}
	return ok
}

// attrStep returns NAME of a traversal ROOT.NAME.
func attrStep(tr hcl.Traversal) (string, bool) {
	if len(tr) < 2 {
		return "", false
	}
	a, ok := tr[1].(hcl.TraverseAttr)
	if !ok {
		return "", false
	}
	return a.Name, true
}

// eval checks the references of expr and evaluates it. It reports
// diagnostics and returns false when the value is unusable.
func (l *loader) eval(expr hcl.Expression) (cty.Value, bool) {
	if !l.checkReferences(expr) {
		return cty.NilVal, false
	}
	val, diags := expr.Value(l.ctx)
	l.add(diags...)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	if !val.IsWhollyKnown() {
		l.add(diagWrongType("The value", "known", "unknown", expr.Range()))
		return cty.NilVal, false
	}
	return val, true
}

// evalString evaluates expr as a string attribute called what.
func (l *loader) evalString(expr hcl.Expression, what string) (string, bool) {
	val, ok := l.eval(expr)
	if !ok {
		return "", false
	}
	if val.IsNull() || val.Type() != cty.String {
		l.add(diagWrongType(what, "a string", typeName(val), expr.Range()))
		return "", false
	}
	return val.AsString(), true
}

// evalKeyword evaluates expr as a string that must be one of allowed.
func (l *loader) evalKeyword(expr hcl.Expression, what string, allowed []string) (string, bool) {
	s, ok := l.evalString(expr, what)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	l.add(diagBadKeyword(what, s, allowed, expr.Range()))
	return "", false
}

func typeName(v cty.Value) string {
	if v.IsNull() {
		return "null"
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "a bool"
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		return "a list"
	case t.IsObjectType() || t.IsMapType():
		return "an object"
	}
	return fmt.Sprintf("a %s", t.FriendlyName())
}
