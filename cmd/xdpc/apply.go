package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/runtime"
)

func newApplyCommand() *cobra.Command {
	var (
		pf      policyFlags
		rf      runtimeFlags
		confirm time.Duration
		egress  string
	)
	c := &cobra.Command{
		Use:   "apply [--confirm DURATION] [--netns NAME] POLICY|ARTIFACT",
		Short: "Load a policy and attach it to the interfaces it names",
		Long: `Compile POLICY (or read an artifact written by 'xdpc build') and attach its
program to every interface an interface block binds to the policy, through a
bpf_link pinned under --pin-root so it outlives this command. Re-applying
replaces the program atomically: every packet meets the old or the new one.
Counters of rules that still exist and the contents of dynamic sets are kept.
When anything fails the previous program stays attached.

A policy that tracks connections (ct_state) also gets a TC egress program
on the same interfaces, which records what the host sends: with a tcx link
where the kernel has them (6.6 on), else with a clsact qdisc and a BPF
filter (--egress-attach forces one; auto keeps what an interface has). Its
interfaces share the network namespace's connection table, which outlives
applies ('xdpc ct list' shows it).

With --confirm DURATION the command waits: unless 'xdpc confirm' runs within
DURATION, the previous programs are restored, or detached when there were
none, and the exit code is 1. Ctrl-C, SIGTERM and a hang-up (the terminal or
SSH session is gone) roll back at once, and further signals do not stop the
rollback. Without a terminal ('ssh host xdpc apply --confirm 60s ...') a
dropped connection sends no signal: the rollback comes at the deadline, and
output nobody reads cannot stop it. 'xdpc status' shows the pending
confirmation; 'xdpc confirm --help' says what to do when the waiting
command was killed.

A signal before the apply began stops it (exit 130 for SIGINT, 143 for
SIGTERM, 129 for a hang-up); once it began, the apply is completed (or
rolled back with --confirm) first.`,
		Args: exactArgs(1, "one policy file or artifact"),
		RunE: func(c *cobra.Command, args []string) error {
			in := holdInterruptions(c.ErrOrStderr())
			defer in.stop()
			elf, source, natAddrs, err := readPolicyOrArtifact(c, args[0], &pf)
			if err != nil {
				return err
			}
			if sig := in.came(); sig != nil {
				return in.exitAfter(sig, "nothing applied")
			}
			start := time.Now()
			rep, err := runtime.Apply(elf, runtime.ApplyOptions{Options: rf.options(), Confirm: confirm, Egress: egress, NAT: natAddrs})
			if err != nil {
				return applyError(c, err, source)
			}
			for _, n := range rep.Notes {
				fmt.Fprintln(c.ErrOrStderr(), "xdpc:", n)
			}
			for _, a := range rep.Attachments {
				fmt.Fprintf(c.OutOrStdout(), "applied policy %q (%s) to %s in %s mode: program %d",
					a.Policy, shortHash(a.Hash), ifaceName(a), a.Mode, a.ProgramID)
				if a.Egress != nil {
					fmt.Fprintf(c.OutOrStdout(), ", egress program %d with %s", a.Egress.ProgramID, a.Egress.Mechanism)
				}
				fmt.Fprintln(c.OutOrStdout())
			}
			fmt.Fprintf(c.ErrOrStderr(), "applied in %s\n", time.Since(start).Round(time.Millisecond))
			if rep.Pending != nil {
				return waitConfirm(c, rf.options(), rep.Pending, confirm, in)
			}
			if sig := in.came(); sig != nil {
				return in.exitAfter(sig, "came while applying; the apply was completed")
			}
			return nil
		},
	}
	holdSignals(c)
	pf.register(c)
	rf.register(c, runtimeUse{})
	durationVar(c.Flags(), &confirm, "confirm", 0, false, "restore the previous policy unless 'xdpc confirm' runs within this time")
	c.Flags().StringVar(&egress, "egress-attach", runtime.EgressAuto, "how a tracking policy's egress program is attached: auto, tcx or clsact")
	prev := c.PreRunE
	c.PreRunE = func(c *cobra.Command, args []string) error {
		switch egress {
		case runtime.EgressAuto, runtime.EgressTCX, runtime.EgressClsact:
		default:
			return usageError(fmt.Errorf("apply: --egress-attach %q: want auto, tcx or clsact", egress))
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
	return c
}

// waitConfirm waits for 'xdpc confirm' and reports the outcome. The
// first signal (in) rolls back at once.
func waitConfirm(c *cobra.Command, opts runtime.Options, p *runtime.Pending, d time.Duration, in *interruptions) error {
	fmt.Fprintf(c.ErrOrStderr(), "run 'xdpc confirm' within %s or the previous policy is restored\n", d)
	ok, err := runtime.WaitConfirm(opts, p, in.first)
	if err != nil {
		return &exitError{exitSystem, fmt.Errorf("roll back: %w; the previous programs stay saved: 'xdpc confirm --rollback' tries again", err)}
	}
	if ok {
		fmt.Fprintln(c.OutOrStdout(), "confirmed")
		return nil
	}
	if sig := in.came(); sig != nil {
		fmt.Fprintf(c.ErrOrStderr(), "xdpc: %s while waiting for 'xdpc confirm'\n", signalName(sig))
	}
	fmt.Fprintln(c.OutOrStdout(), "not confirmed: restored the previous policy")
	return silentExit(exitPolicy)
}

// readPolicyOrArtifact returns the artifact at path, or compiles the
// policy there; source is the policy file and natAddrs the outside
// addresses of its nat blocks when it compiled one.
func readPolicyOrArtifact(c *cobra.Command, path string, pf *policyFlags) (elf []byte, source string, natAddrs []runtime.NATAddresses, err error) {
	elf, err = readArtifact(c, path, pf)
	if err != nil || elf != nil {
		return elf, "", nil, err
	}
	cfg, p, err := loadPolicy(c, path, pf)
	if err != nil {
		return nil, "", nil, err
	}
	elf, _, err = compilePolicy(c, cfg, p)
	return elf, path, natAddresses(cfg), err
}

// natAddresses are the outside addresses of the policy file's nat
// blocks, for apply's reserved ports and ARP check.
func natAddresses(cfg *policy.Config) []runtime.NATAddresses {
	out := []runtime.NATAddresses{}
	for _, n := range cfg.NATs {
		a := runtime.NATAddresses{Block: n.Name}
		for _, m := range n.Masquerades {
			a.Masquerade = append(a.Masquerade, m.To)
		}
		for _, f := range n.Forwards {
			a.Forward = append(a.Forward, f.Dst)
		}
		for _, s := range n.Statics {
			a.Static = append(a.Static, s.Outside)
		}
		out = append(out, a)
	}
	return out
}

// readArtifact returns the artifact at path, or nil when path holds no
// ELF object (a policy, then). -var and --policy are refused for an
// artifact: they would do nothing.
func readArtifact(c *cobra.Command, path string, pf *policyFlags) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, policyError(err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte("\x7fELF")) {
		return nil, nil // not an artifact; the policy loader reports what it is
	}
	if err := pf.refuseForArtifact(c, path); err != nil {
		return nil, err
	}
	rest, err := io.ReadAll(f)
	if err != nil {
		return nil, policyError(err)
	}
	return append(magic, rest...), nil
}

// applyError reports a failed apply; a verifier rejection gets its log,
// naming the policy file (source, when the command compiled one).
func applyError(c *cobra.Command, err error, source string) error {
	err = nameSourceFile(err, source)
	if rej, ok := errors.AsType[*runtime.VerifierRejection](err); ok {
		fmt.Fprint(c.ErrOrStderr(), rej.Report())
	}
	return confirmationError(fmt.Errorf("%w; the previous policy stays in place", err))
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "no hash"
	}
	return h
}

// ifaceName names an interface with its namespace when it has one.
func ifaceName(a runtime.Attachment) string {
	if a.Netns == "" || a.Netns == "host" {
		return a.Interface
	}
	return a.Netns + "/" + a.Interface
}
