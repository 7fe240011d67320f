package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCheckCommand() *cobra.Command {
	var pf policyFlags
	c := &cobra.Command{
		Use:   "check POLICY",
		Short: "Decode and validate a policy; print diagnostics as file:line:col",
		Long: `Decode, validate and lint every policy of the file and print diagnostics as
file:line:col with the source line. -var sets variables as build does;
--policy NAME checks that the file has that policy.`,
		Args: exactArgs(1, "one policy file"),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := loadConfig(c, args[0], &pf)
			if err != nil {
				return err
			}
			if pf.policy != "" {
				if _, err := selectPolicy(cfg, pf.policy); err != nil {
					return err
				}
			}
			rules := 0
			for _, p := range cfg.Policies {
				rules += len(p.Rules)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: ok: %s, %s, %s, %s\n", args[0],
				plural(len(cfg.Policies), "policy", "policies"), plural(rules, "rule", "rules"),
				plural(len(cfg.Sets), "set", "sets"), plural(len(cfg.Interfaces), "interface", "interfaces"))
			return nil
		},
	}
	pf.register(c)
	return c
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
