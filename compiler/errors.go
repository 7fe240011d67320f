package compiler

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/xdpc/xdpc/policy"
)

// A LimitError is a checked policy the compiler cannot express because
// one of its rules needs more than the kernel takes. Subject is where the
// policy asks for too much, so that 'xdpc check' reports it like any
// other diagnostic of the file.
type LimitError struct {
	Rule    string
	Subject hcl.Range
	// Reason says what is too much and what to write instead, as a clause:
	// "length needs 4098 comparisons, ...; split the list over several rules".
	Reason string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s:%d:%d rule %q: %s", e.Subject.Filename, e.Subject.Start.Line, e.Subject.Start.Column, e.Rule, e.Reason)
}

// Diagnostic returns e as an error diagnostic of the policy file.
func (e *LimitError) Diagnostic() *hcl.Diagnostic {
	subject := e.Subject
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Rule too large to compile",
		Detail: fmt.Sprintf("Rule %q: %s.", e.Rule, e.Reason), Subject: &subject}
}

// matchRange is where rule sets field f in p: the value of that match,
// else the rule's header.
func matchRange(p *policy.Policy, rule string, f policy.Field) hcl.Range {
	for _, r := range p.Rules {
		if r.Name != rule {
			continue
		}
		for _, m := range r.Matches {
			if m.Field == f {
				return m.Range
			}
		}
		return r.DeclRange
	}
	return p.DeclRange
}
