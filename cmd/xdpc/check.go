package main

import (
	"fmt"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/lab"
	"github.com/xdpc/xdpc/policy"
)

func newCheckCommand() *cobra.Command {
	var (
		pf    policyFlags
		tests bool
	)
	c := &cobra.Command{
		Use:   "check [--test] POLICY",
		Short: "Decode, validate and compile a policy; print diagnostics as file:line:col",
		Long: `Decode, validate and lint every policy of the file, and compile each as build
would (writing nothing), so that check passes exactly the files build
accepts. Diagnostics are printed as file:line:col with the source line.
-var sets variables as build does; --policy NAME checks that the file has
that policy and compiles only it.

The file's test blocks are checked with it, their packets too; --test also
runs them on the reference evaluator, and a packet whose verdict, rule or
ct_state is not what its test expects is an error at that expectation.
In GitHub Actions (GITHUB_ACTIONS=true) every diagnostic is also printed
as an annotation: ::error file=F,line=L,col=C::message.`,
		Args: exactArgs(1, "one policy file"),
		RunE: func(c *cobra.Command, args []string) error { return runCheck(c, args[0], &pf, tests) },
	}
	pf.register(c)
	c.Flags().BoolVar(&tests, "test", false, "run the file's test blocks on the reference evaluator")
	return c
}

// runCheck checks the policy file at path and compiles its policies (the
// one --policy names); with tests it also runs their tests.
func runCheck(c *cobra.Command, path string, pf *policyFlags, tests bool) error {
	cfg, src, diags, err := readConfig(path, pf)
	if err != nil {
		return err
	}
	var policies []*policy.Policy
	if cfg != nil {
		if policies, err = checkedPolicies(cfg, pf.policy); err != nil {
			return err
		}
		ds, err := compilePolicies(cfg, policies)
		if err != nil {
			return err
		}
		diags = append(diags, ds...)
		if tests && !diags.HasErrors() {
			diags = append(diags, runReferenceTests(cfg, policies)...)
		}
	}
	if err := reportDiagnostics(c, map[string][]byte{path: src}, diags); err != nil {
		return err
	}
	if diags.HasErrors() {
		return silentExit(exitPolicy)
	}
	fmt.Fprintf(c.OutOrStdout(), "%s: ok: %s\n", path, summary(cfg))
	if tests {
		fmt.Fprintf(c.OutOrStdout(), "%s: %s passed on the reference evaluator\n", path, plural(len(testsOf(cfg, policies)), "test", "tests"))
	}
	return nil
}

// checkedPolicies are the policies check compiles: the one --policy
// names, or all.
func checkedPolicies(cfg *policy.Config, name string) ([]*policy.Policy, error) {
	if name == "" {
		return cfg.Policies, nil
	}
	p, err := selectPolicy(cfg, name)
	if err != nil {
		return nil, err
	}
	return []*policy.Policy{p}, nil
}

// compilePolicies compiles each of policies as build would and returns
// the diagnostics of those the compiler cannot express.
func compilePolicies(cfg *policy.Config, policies []*policy.Policy) (hcl.Diagnostics, error) {
	var diags hcl.Diagnostics
	for _, p := range policies {
		_, _, diag, err := buildArtifact(cfg, p)
		if err != nil {
			return nil, err
		}
		if diag != nil {
			diags = append(diags, diag)
		}
	}
	return diags, nil
}

// runReferenceTests runs the tests of cfg that test one of policies on
// the reference evaluator and returns the expectations they did not meet.
// The reference runs in process and cannot fail to start.
func runReferenceTests(cfg *policy.Config, policies []*policy.Policy) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, t := range testsOf(cfg, policies) {
		r := lab.RunTest(lab.BackendReference, cfg, t)
		if r.Err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: r.Err.Error(), Subject: t.DeclRange.Ptr()})
		}
		diags = append(diags, r.Failures...)
	}
	return diags
}

// testsOf returns the tests of cfg that test one of policies.
func testsOf(cfg *policy.Config, policies []*policy.Policy) []*policy.Test {
	var ts []*policy.Test
	for _, t := range cfg.Tests {
		if slices.Contains(policies, t.Policy) {
			ts = append(ts, t)
		}
	}
	return ts
}

// summary counts what cfg holds: "1 policy, 2 rules, 0 sets, 0
// interfaces", and ", 3 tests" when it has any.
func summary(cfg *policy.Config) string {
	rules := 0
	for _, p := range cfg.Policies {
		rules += len(p.Rules)
	}
	s := fmt.Sprintf("%s, %s, %s, %s", plural(len(cfg.Policies), "policy", "policies"), plural(rules, "rule", "rules"),
		plural(len(cfg.Sets), "set", "sets"), plural(len(cfg.Interfaces), "interface", "interfaces"))
	if len(cfg.Tests) > 0 {
		s += ", " + plural(len(cfg.Tests), "test", "tests")
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
