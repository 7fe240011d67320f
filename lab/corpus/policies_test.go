package corpus

import (
	"bytes"
	"testing"
	"time"

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

// TestTrackingPoliciesLoad checks that every generated tracking policy is
// valid and tracks connections, and that their conntrack blocks and
// ct_state rules vary.
func TestTrackingPoliciesLoad(t *testing.T) {
	ctRules, blocks, short := 0, 0, 0
	for _, gp := range TrackingPolicies(1, 200) {
		cfg, diags := policy.Load(gp.Name, gp.Source, policy.LoadOptions{})
		if diags.HasErrors() {
			t.Fatalf("%s does not load: %v\n%s", gp.Name, diags, gp.Source)
		}
		p := cfg.Policy(gp.Policy)
		if !p.TracksConnections() {
			t.Fatalf("%s does not track connections:\n%s", gp.Name, gp.Source)
		}
		for _, r := range p.Rules {
			if r.Match(policy.FieldCTState) != nil {
				ctRules++
			}
		}
		if cfg.Conntrack.DeclRange.Filename != "" {
			blocks++
		}
		if cfg.Conntrack.Timeouts.TCPEstablished < time.Hour {
			short++
		}
	}
	t.Logf("200 tracking policies: %d ct_state rules, %d conntrack blocks, %d with a short established timeout", ctRules, blocks, short)
	if ctRules < 300 || blocks < 100 || short == 0 {
		t.Error("tracking policies lack ct_state rules, conntrack blocks or short timeouts")
	}
}

// TestStatelessPoliciesUnchanged checks that the stateless generator does
// not draw ct_state: its policies track nothing.
func TestStatelessPoliciesUnchanged(t *testing.T) {
	for _, gp := range Policies(DifferentialSeed, 50) {
		if bytes.Contains(gp.Source, []byte("ct_state")) {
			t.Fatalf("%s matches ct_state:\n%s", gp.Name, gp.Source)
		}
	}
}
