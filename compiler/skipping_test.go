package compiler

import (
	"testing"

	"github.com/xdpc/xdpc/lab/corpus"
	"github.com/xdpc/xdpc/policy"
)

// TestCorpusSharesTests checks that the generated policies the
// differential runs (lab/corpus) have rules that share tests, so the
// skipping classifier's jumps past several rules meet the reference there.
func TestCorpusSharesTests(t *testing.T) {
	skips, tests := 0, 0
	for _, gp := range corpus.Policies(corpus.DifferentialSeed, 200) {
		cfg, diags := policy.Load(gp.Name, gp.Source, policy.LoadOptions{})
		if diags.HasErrors() {
			t.Fatalf("%s: %v", gp.Name, diags)
		}
		prog, err := buildProgram(cfg, cfg.Policy(gp.Policy), Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range prog.Rules {
			for j := range prog.Rules[i].Tests {
				tests++
				if i+1 < len(prog.Rules) && prog.Rules[i+1].HasTest(&prog.Rules[i].Tests[j]) {
					skips++
				}
			}
		}
	}
	t.Logf("%d of %d tests skip more than one rule when they fail", skips, tests)
	if skips == 0 {
		t.Error("no generated rule shares a test with the next one: the differential does not test skipping")
	}
}
