package main

import (
	_ "embed"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/lab"
	"github.com/xdpc/xdpc/policy"
)

var (
	//go:embed demo/policy.hcl
	demoPolicy []byte
	//go:embed demo/packets.txt
	demoPackets string
)

func newDemoCommand() *cobra.Command {
	var backend string
	c := &cobra.Command{
		Use:   "demo",
		Short: "Build the embedded example policy, replay its bundled packets, print verdicts and counters",
		Long: `Run the whole pipeline on the example policy and packets built into xdpc:
decode and check the policy, compile it to XDP, load it into the kernel,
replay every bundled packet through it, and print each verdict and the
per-rule counters the program kept. Nothing is attached to any interface and
nothing is left behind.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			return runDemo(c.OutOrStdout(), c.ErrOrStderr(), backend)
		},
	}
	c.Flags().StringVar(&backend, "backend", lab.BackendKernel, "reference or kernel")
	return c
}

func runDemo(stdout, stderr io.Writer, backend string) error {
	cfg, diags := policy.Load("demo/policy.hcl", demoPolicy, policy.LoadOptions{})
	if err := policy.WriteDiagnostics(stderr, map[string][]byte{"demo/policy.hcl": demoPolicy}, diags); err != nil {
		return err
	}
	if diags.HasErrors() {
		return silentExit(exitPolicy)
	}
	p := cfg.Policies[0]
	frames, err := demoFrames()
	if err != nil {
		return err
	}
	b, err := lab.NewBackend(backend, cfg, p)
	if err != nil {
		return backendError(stderr, err)
	}
	defer b.Close()
	fmt.Fprintf(stdout, "policy %q: %d rules, default %s; replaying %d packets on the %s backend\n\n",
		p.Name, len(p.Rules), p.Default, len(frames), backend)
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
	return tw.Flush()
}

// demoFrames builds the bundled packets.
func demoFrames() ([]lab.Frame, error) {
	return lab.ReadPacketList("demo/packets.txt", strings.NewReader(demoPackets))
}
