package compiler

import (
	"fmt"
	"strings"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/policy"
)

// lowerPolicy translates the checked policy into the IR: one Rule per rule
// with one Test per match, sets left unresolved (allocateSetMaps fills them).
func lowerPolicy(cfg *policy.Config, p *policy.Policy) (*Program, error) {
	prog := &Program{
		Policy: p.Name,
		Name:   programName(p.Name),
	}
	var err error
	if prog.Default, err = verdictOf(p.Default); err != nil {
		return nil, fmt.Errorf("lower default verdict: %w", err)
	}
	if prog.Malformed, err = verdictOf(p.Malformed); err != nil {
		return nil, fmt.Errorf("lower malformed verdict: %w", err)
	}
	for i, r := range p.Rules {
		if r.Index != i {
			return nil, fmt.Errorf("lower rule %q: index %d at position %d", r.Name, r.Index, i)
		}
		ir := Rule{Name: r.Name, Pos: position(r.DeclRange.Start.Line, r.DeclRange.Start.Column)}
		if r.Action.Terminal() {
			ir.Terminal = true
			if ir.Verdict, err = verdictOf(r.Action); err != nil {
				return nil, fmt.Errorf("lower rule %q: %w", r.Name, err)
			}
			if r.Action == policy.ActionRedirect {
				if r.To == "" {
					return nil, fmt.Errorf("lower rule %q: redirect without a target", r.Name)
				}
				ir.To = r.To
			}
		}
		for j := range r.Matches {
			t, err := lowerMatch(&r.Matches[j])
			if err != nil {
				return nil, fmt.Errorf("lower rule %q: %w", r.Name, err)
			}
			ir.Tests = append(ir.Tests, t)
		}
		prog.Rules = append(prog.Rules, ir)
	}
	return prog, nil
}

// lowerMatch translates one match; a set reference becomes an OpSetLookup
// whose maps are allocated later.
func lowerMatch(m *policy.Match) (Test, error) {
	t := Test{Field: m.Field, Negate: m.Negate, Pos: position(m.Range.Start.Line, m.Range.Start.Column)}
	if m.Set != nil {
		if m.Negate {
			return t, fmt.Errorf("field %s: a set cannot be negated", m.Field)
		}
		t.Op = OpSetLookup
		t.Set = &SetMaps{Set: m.Set}
		return t, nil
	}
	switch m.Field.Kind() {
	case policy.KindRange:
		if len(m.Values) == 0 {
			return t, fmt.Errorf("field %s: no values", m.Field)
		}
		t.Op = OpEq
		for _, r := range m.Values {
			if r.Lo > r.Hi {
				return t, fmt.Errorf("field %s: reversed range %d-%d", m.Field, r.Lo, r.Hi)
			}
			if r.Lo != r.Hi {
				t.Op = OpRange
			}
		}
		t.Values = append(t.Values, m.Values...)
	case policy.KindPrefix:
		if len(m.Prefixes) == 0 {
			return t, fmt.Errorf("field %s: no prefixes", m.Field)
		}
		t.Op = OpPrefix
		t.Prefixes = append(t.Prefixes, m.Prefixes...)
	case policy.KindMAC:
		if len(m.MACs) == 0 {
			return t, fmt.Errorf("field %s: no MAC addresses", m.Field)
		}
		t.Op = OpMAC
		t.MACs = append(t.MACs, m.MACs...)
	case policy.KindFlags:
		t.Op = OpFlags
		t.Flags = m.Flags
	case policy.KindFragment:
		t.Op = OpFragment
		t.Fragments = m.Fragments
	case policy.KindCTState:
		if m.Negate || m.CTStates&^policy.CTStates != 0 || m.CTStates == 0 {
			return t, fmt.Errorf("field %s: mask %#x (negated %v) is not a set of statuses", m.Field, m.CTStates, m.Negate)
		}
		t.Op = OpCTState
		t.CTStates = m.CTStates
	default:
		return t, fmt.Errorf("field %s: unknown kind", m.Field)
	}
	return t, nil
}

func verdictOf(a policy.Action) (artifact.Action, error) {
	if v, ok := a.XDP(); ok {
		return v, nil
	}
	return 0, fmt.Errorf("verdict %s is not pass, drop or redirect", a)
}

// position is a source position without its file name, which would make
// the artifact depend on the path the policy was read from.
func position(line, col int) artifact.Pos {
	return artifact.Pos{Line: line, Col: col}
}

// programName is "xdpc_" and the policy name with every byte outside
// [A-Za-z0-9_] replaced by '_', cut to the kernel's 15-byte limit.
func programName(policyName string) string {
	var b strings.Builder
	b.WriteString("xdpc_")
	for i := 0; i < len(policyName); i++ {
		c := policyName[i]
		if c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) > maxObjectName {
		name = name[:maxObjectName]
	}
	return name
}

// maxObjectName is the kernel's limit on program and map names (BPF_OBJ_NAME_LEN - 1).
const maxObjectName = 15

// assignCounterSlots gives every rule the slot of its position and the
// default and malformed verdicts the two slots after the rules, as
// policy.Policy.DefaultSlot and MalformedSlot do.
func assignCounterSlots(prog *Program) {
	for i := range prog.Rules {
		prog.Rules[i].Slot = i
	}
	prog.DefaultSlot = len(prog.Rules)
	prog.MalformedSlot = len(prog.Rules) + 1
}
