package corpus

import (
	"bytes"
	"testing"

	"github.com/xdpc/xdpc/policy"
)

// TestPoliciesLoad checks that every generated policy is valid: a Load
// error is a generator bug, printed with the policy.
func TestPoliciesLoad(t *testing.T) {
	rules, counts, redirects, sets, vars := 0, 0, 0, 0, 0
	failures := 0
	for _, gp := range Policies(1, 300) {
		cfg, diags := policy.Load(gp.Name, gp.Source, policy.LoadOptions{})
		if diags.HasErrors() {
			failures++
			if failures <= 5 {
				t.Errorf("%s does not load: %v\n%s", gp.Name, diags, gp.Source)
			}
			continue
		}
		p := cfg.Policy(gp.Policy)
		if p == nil {
			t.Fatalf("%s has no policy %q", gp.Name, gp.Policy)
		}
		rules += len(p.Rules)
		for _, r := range p.Rules {
			switch r.Action {
			case policy.ActionCount:
				counts++
			case policy.ActionRedirect:
				redirects++
			}
			for _, m := range r.Matches {
				if m.Set != nil {
					sets++
				}
			}
		}
		vars += len(cfg.Variables)
	}
	if failures > 0 {
		t.Fatalf("%d of 300 generated policies do not load", failures)
	}
	t.Logf("300 policies: %d rules, %d count rules, %d redirect rules, %d set matches, %d variables", rules, counts, redirects, sets, vars)
	if counts == 0 || redirects == 0 || sets == 0 || vars == 0 {
		t.Errorf("generated policies lack count rules, redirect rules, set matches or variables")
	}
}

func TestPoliciesDeterministic(t *testing.T) {
	a, b := Policies(3, 20), Policies(3, 20)
	for i := range a {
		if !bytes.Equal(a[i].Source, b[i].Source) {
			t.Fatalf("policy %d differs between two runs with the same seed", i)
		}
	}
}
