package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/policy"
)

func newCheckCommand() *cobra.Command {
	var pf policyFlags
	c := &cobra.Command{
		Use:   "check POLICY",
		Short: "Decode, validate and compile a policy; print diagnostics as file:line:col",
		Long: `Decode, validate and lint every policy of the file, and compile each as build
would (writing nothing), so that check passes exactly the files build
accepts. Diagnostics are printed as file:line:col with the source line.
-var sets variables as build does; --policy NAME checks that the file has
that policy and compiles only it.`,
		Args: exactArgs(1, "one policy file"),
		RunE: func(c *cobra.Command, args []string) error {
			path := args[0]
			cfg, src, diags, err := readConfig(path, &pf)
			if err != nil {
				return err
			}
			if cfg != nil {
				policies := cfg.Policies
				if pf.policy != "" {
					p, err := selectPolicy(cfg, pf.policy)
					if err != nil {
						return err
					}
					policies = []*policy.Policy{p}
				}
				for _, p := range policies {
					_, _, diag, err := buildArtifact(cfg, p)
					if err != nil {
						return err
					}
					if diag != nil {
						diags = append(diags, diag)
					}
				}
			}
			if err := policy.WriteDiagnostics(c.ErrOrStderr(), map[string][]byte{path: src}, diags); err != nil {
				return err
			}
			if diags.HasErrors() {
				return silentExit(exitPolicy)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: ok: %s\n", path, summary(cfg))
			return nil
		},
	}
	pf.register(c)
	return c
}

// summary counts what cfg holds: "1 policy, 2 rules, 0 sets, 0 interfaces".
func summary(cfg *policy.Config) string {
	rules := 0
	for _, p := range cfg.Policies {
		rules += len(p.Rules)
	}
	return fmt.Sprintf("%s, %s, %s, %s", plural(len(cfg.Policies), "policy", "policies"), plural(rules, "rule", "rules"),
		plural(len(cfg.Sets), "set", "sets"), plural(len(cfg.Interfaces), "interface", "interfaces"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
