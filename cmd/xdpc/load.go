package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/lab"
	"github.com/xdpc/xdpc/policy"
)

// policyFlags are the flags every command that reads a policy shares.
type policyFlags struct {
	vars   []string
	policy string
}

func (f *policyFlags) register(c *cobra.Command) {
	c.Flags().StringArrayVar(&f.vars, "var", nil, "set a variable: -var name=value (repeatable)")
	c.Flags().StringVar(&f.policy, "policy", "", "which policy of the file to use (needed when it has several)")
}

// refuseForArtifact refuses -var and --policy when the command was given
// the artifact at path: it was compiled with its variables' values and
// holds exactly one policy, so both would do nothing.
func (f *policyFlags) refuseForArtifact(c *cobra.Command, path string) error {
	switch {
	case len(f.vars) > 0:
		return usageError(fmt.Errorf("%s: %s is an artifact, compiled with its variables' values: -var does nothing for it; give -var to 'xdpc build', or give %s the policy file", c.Name(), path, c.Name()))
	case f.policy != "":
		return usageError(fmt.Errorf("%s: %s is an artifact of one policy: --policy does nothing for it; give --policy to 'xdpc build', or give %s the policy file", c.Name(), path, c.Name()))
	}
	return nil
}

// loadOptions turns -var flags into policy.LoadOptions.
func (f *policyFlags) loadOptions() (policy.LoadOptions, error) {
	opts := policy.LoadOptions{Vars: map[string]string{}}
	for _, kv := range f.vars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return opts, usageError(fmt.Errorf("-var %q: want name=value", kv))
		}
		opts.Vars[k] = v
	}
	return opts, nil
}

// loadConfig reads and checks the policy file at path, printing its
// diagnostics (warnings too) to stderr. It fails when there are errors.
func loadConfig(c *cobra.Command, path string, f *policyFlags) (*policy.Config, error) {
	cfg, src, diags, err := readConfig(path, f)
	if err != nil {
		return nil, err
	}
	if err := policy.WriteDiagnostics(c.ErrOrStderr(), map[string][]byte{path: src}, diags); err != nil {
		return nil, err
	}
	if diags.HasErrors() {
		return nil, silentExit(exitPolicy)
	}
	return cfg, nil
}

// readConfig reads and checks the policy file at path with the -var
// values of f, the packets of its tests too. It returns the source it
// read (nil when it could not) for the diagnostics' snippets; the Config
// only when there are no errors.
func readConfig(path string, f *policyFlags) (*policy.Config, []byte, hcl.Diagnostics, error) {
	opts, err := f.loadOptions()
	if err != nil {
		return nil, nil, nil, err
	}
	src, diags := policy.ReadFile(path)
	if diags.HasErrors() {
		return nil, nil, diags, nil
	}
	cfg, diags := policy.Load(path, src, opts)
	if cfg != nil {
		diags = append(diags, lab.CheckTests(cfg)...)
		policy.SortDiagnostics(diags)
		if diags.HasErrors() {
			cfg = nil
		}
	}
	return cfg, src, diags, nil
}

// loadPolicy loads the policy file at path as loadConfig does and picks
// the policy --policy names, or the only one.
func loadPolicy(c *cobra.Command, path string, f *policyFlags) (*policy.Config, *policy.Policy, error) {
	cfg, err := loadConfig(c, path, f)
	if err != nil {
		return nil, nil, err
	}
	p, err := selectPolicy(cfg, f.policy)
	if err != nil {
		return nil, nil, err
	}
	return cfg, p, nil
}

// selectPolicy picks the policy named by --policy, or the only one.
func selectPolicy(cfg *policy.Config, name string) (*policy.Policy, error) {
	if name != "" {
		if p := cfg.Policy(name); p != nil {
			return p, nil
		}
		return nil, usageError(fmt.Errorf("--policy %s: no such policy in %s (it has: %s)", name, cfg.Filename, policyNames(cfg)))
	}
	switch len(cfg.Policies) {
	case 0:
		return nil, policyError(fmt.Errorf("%s has no policy block", cfg.Filename))
	case 1:
		return cfg.Policies[0], nil
	}
	return nil, usageError(fmt.Errorf("%s has several policies; choose one with --policy (%s)", cfg.Filename, policyNames(cfg)))
}

func policyNames(cfg *policy.Config) string {
	var names []string
	for _, p := range cfg.Policies {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
