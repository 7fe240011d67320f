package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/runtime"
)

func newStatsCommand() *cobra.Command {
	var (
		rf     runtimeFlags
		asJSON bool
		watch  time.Duration
		count  int
	)
	c := &cobra.Command{
		Use:   "stats [--json] [--watch INTERVAL [--count N]] [--netns NAME]",
		Short: "Show per-rule packet and byte counters of the applied policies",
		Long: `Show the packets and bytes each rule of every applied policy counted (and
the default and malformed verdicts). A policy's counters are shared by the
interfaces that run it and kept across applies for rules that still exist.
--watch repeats every INTERVAL with rates (packets and bytes per second)
until interrupted or --count reports. --netns shows the policies attached in
that namespace (their counters still count every interface running them).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if c.Flags().Changed("count") && watch == 0 {
				return usageError(errors.New("--count counts the reports of --watch; give --watch INTERVAL too"))
			}
			if count < 0 {
				return usageError(fmt.Errorf("--count %d: want a number of reports, 0 for until interrupted", count))
			}
			if watch == 0 {
				stats, err := runtime.Stats(rf.options())
				if err != nil {
					return runtimeError(err)
				}
				return writeStats(c.OutOrStdout(), stats, nil, 0, asJSON)
			}
			return watchStats(c, rf.options(), watch, count, asJSON)
		},
	}
	rf.register(c, runtimeUse{noLockWait: readsOnly})
	c.Flags().BoolVar(&asJSON, "json", false, "one JSON object per policy")
	durationVar(c.Flags(), &watch, "watch", 0, false, "repeat every interval, with rates")
	c.Flags().IntVar(&count, "count", 0, "with --watch, stop after this many reports (0: until interrupted)")
	return c
}

// watchStats reports every interval with rates against the previous read.
func watchStats(c *cobra.Command, opts runtime.Options, every time.Duration, count int, asJSON bool) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	prev, err := runtime.Stats(opts)
	if err != nil {
		return runtimeError(err)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := time.Now()
	for n := 0; count == 0 || n < count; n++ {
		select {
		case <-sigs:
			return nil
		case <-tick.C:
		}
		cur, err := runtime.Stats(opts)
		if err != nil {
			return runtimeError(err)
		}
		now := time.Now()
		if err := writeStats(c.OutOrStdout(), cur, prev, now.Sub(last), asJSON); err != nil {
			return err
		}
		prev, last = cur, now
	}
	return nil
}

// ruleRate is a rule's counters with rates, as --json --watch prints it.
type ruleRate struct {
	runtime.RuleStats
	PacketsPerSecond float64 `json:"packets_per_second"`
	BytesPerSecond   float64 `json:"bytes_per_second"`
}

// writeStats prints stats; with prev and elapsed it adds rates.
func writeStats(out io.Writer, stats, prev []runtime.PolicyStats, elapsed time.Duration, asJSON bool) error {
	before := map[[2]string]runtime.RuleStats{}
	for _, ps := range prev {
		for _, r := range ps.Rules {
			before[[2]string{ps.Policy, r.Rule}] = r
		}
	}
	rate := func(policy string, r runtime.RuleStats) ruleRate {
		rr := ruleRate{RuleStats: r}
		if b, ok := before[[2]string{policy, r.Rule}]; ok && elapsed > 0 && r.Packets >= b.Packets {
			rr.PacketsPerSecond = float64(r.Packets-b.Packets) / elapsed.Seconds()
			rr.BytesPerSecond = float64(r.Bytes-b.Bytes) / elapsed.Seconds()
		}
		return rr
	}
	if asJSON {
		enc := json.NewEncoder(out)
		for _, ps := range stats {
			if prev == nil {
				if err := enc.Encode(ps); err != nil {
					return err
				}
				continue
			}
			v := struct {
				runtime.PolicyStats
				Rules []ruleRate `json:"rules"`
			}{PolicyStats: ps}
			for _, r := range ps.Rules {
				v.Rules = append(v.Rules, rate(ps.Policy, r))
			}
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
		return nil
	}
	if len(stats) == 0 {
		fmt.Fprintln(out, "nothing attached")
		return nil
	}
	for _, ps := range stats {
		fmt.Fprintf(out, "policy %q (%s) on %v\n", ps.Policy, shortHash(ps.Hash), ps.Interfaces)
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		if prev == nil {
			fmt.Fprintln(w, "RULE\tPACKETS\tBYTES\t")
		} else {
			fmt.Fprintln(w, "RULE\tPACKETS\tBYTES\tPKT/S\tBYTES/S\t")
		}
		for _, r := range ps.Rules {
			if prev == nil {
				fmt.Fprintf(w, "%s\t%d\t%d\t\n", r.Rule, r.Packets, r.Bytes)
				continue
			}
			rr := rate(ps.Policy, r)
			fmt.Fprintf(w, "%s\t%d\t%d\t%.0f\t%.0f\t\n", r.Rule, r.Packets, r.Bytes, rr.PacketsPerSecond, rr.BytesPerSecond)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}
