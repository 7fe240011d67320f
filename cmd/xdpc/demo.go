package main

import (
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/lab"
	"github.com/xdpc/xdpc/policy"
)

//go:generate go run ../../lab/internal/gencases demo

var (
	//go:embed demo/policy.hcl
	demoPolicy []byte
	//go:embed demo/in.pcap
	demoCapture []byte
)

func newDemoCommand() *cobra.Command {
	var backend string
	c := &cobra.Command{
		Use:   "demo [--backend lab|kernel|reference]",
		Short: "Build the embedded example policy, replay its bundled capture in a throwaway lab, print verdicts and counters",
		Long: `Run the whole pipeline on the example policy and capture built into xdpc:
decode and check the policy, compile it to XDP, bring up a throwaway lab (two
network namespaces joined by a veth pair), attach the program to the DUT's
veth, inject every packet of the bundled capture from the peer, print each
verdict and the per-rule counters the attached program kept, and tear the lab
down: nothing is left behind.

--backend kernel runs the program under BPF_PROG_TEST_RUN instead, without
attaching it anywhere; --backend reference needs no privileges at all.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(lab.Backends(), backend) {
				return usageError(lab.UnknownBackendError(backend))
			}
			if err := requireBackendCaps(c, backend); err != nil {
				return err
			}
			return runDemo(c.OutOrStdout(), c.ErrOrStderr(), backend)
		},
	}
	c.Flags().StringVar(&backend, "backend", lab.BackendLab, "lab, kernel or reference")
	return c
}

// topologyHolder is a backend that runs in a lab topology.
type topologyHolder interface{ Topology() *lab.Topology }

func runDemo(stdout, stderr io.Writer, backend string) error {
	cfg, diags := policy.Load("demo/policy.hcl", demoPolicy, policy.LoadOptions{})
	if err := policy.WriteDiagnostics(stderr, map[string][]byte{"demo/policy.hcl": demoPolicy}, diags); err != nil {
		return err
	}
	if diags.HasErrors() {
		return silentExit(exitPolicy)
	}
	p := cfg.Policies[0]
	frames, err := lab.ReadPcap(bytes.NewReader(demoCapture))
	if err != nil {
		return &exitError{exitSystem, fmt.Errorf("read the bundled capture: %w", err)}
	}
	b, err := lab.NewBackend(backend, cfg, p)
	if err != nil {
		return backendError(stderr, err, cfg.Filename)
	}
	closed := false
	defer func() {
		if !closed {
			b.Close()
		}
	}()
	fmt.Fprintf(stdout, "policy %q: %d rules, default %s; replaying %d packets on the %s backend\n",
		p.Name, len(p.Rules), p.Default, len(frames), backend)
	var namespaces []string
	if th, ok := b.(topologyHolder); ok {
		topo := th.Topology()
		namespaces = topo.Namespaces()
		fmt.Fprintf(stdout, "lab: %s topology, namespaces %s; program attached to %s (XDP, driver mode), packets sent from %s\n",
			topo.Kind, strings.Join(namespaces, ", "), topo.DUT.Name, topo.Sender.Name)
	}
	fmt.Fprintln(stdout)
	verdicts := lab.Replay(b, frames)
	for _, v := range verdicts {
		fmt.Fprintln(stdout, v)
	}
	counters, err := lab.Counters(b, p, verdicts)
	if err != nil {
		return &exitError{exitSystem, err}
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "counter\tpackets\tbytes\t")
	for _, r := range counters {
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", r.Name, r.Packets, r.Bytes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	closed = true
	if err := b.Close(); err != nil {
		return &exitError{exitSystem, fmt.Errorf("tear down: %w", err)}
	}
	if namespaces != nil {
		left, err := lab.LeftoverNamespaces()
		if err != nil {
			return &exitError{exitSystem, err}
		}
		for _, n := range namespaces {
			if slices.Contains(left, n) {
				return &exitError{exitSystem, fmt.Errorf("tear down: namespace %s is still there", n)}
			}
		}
		fmt.Fprintln(stdout, "\nlab torn down: program detached, namespaces and veths deleted")
	}
	for _, v := range verdicts {
		if v.Error != "" {
			return &exitError{exitSystem, fmt.Errorf("%s backend could not run packet %d: %s", backend, v.Index, v.Error)}
		}
	}
	return nil
}
