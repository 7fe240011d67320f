package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/internal/atomicfile"
	"github.com/xdpc/xdpc/lab"
)

// defaultCaseDir is where `xdpc test` looks for cases when given none.
const defaultCaseDir = "testdata/lab"

func newTestCommand() *cobra.Command {
	var (
		update  bool
		backend string
	)
	c := &cobra.Command{
		Use:   "test [-update] [--backend reference|kernel|lab] [DIR...]",
		Short: "Run golden lab cases and print a per-packet diff of any mismatch",
		Long: `Run the golden lab cases under each DIR (default testdata/lab). A case is a
directory holding policy.hcl, packets.txt, in.pcap and expected.txt. Each
case's capture is replayed on the backend (default lab: real namespaces and
veths, the program attached with XDP) and compared line by line with
expected.txt; a mismatch prints the packets that differ.

Before replaying, each case's in.pcap must be byte for byte what its
packets.txt generates: a stale capture fails the case, with the packet that
differs and the command that regenerates it (xdpc pcap -o DIR/in.pcap
DIR/packets.txt, or xdpc test -update DIR). A case without a packets.txt
replays its in.pcap as it is.

-update first regenerates in.pcap from packets.txt, then rewrites
expected.txt with what the backend printed. Review golden diffs like code.

Exit codes: 0 every case matched, 1 a case differs or is broken, 3 the
backend could not run.`,
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(lab.Backends(), backend) {
				return usageError(lab.UnknownBackendError(backend))
			}
			if err := requireBackendCaps(c, backend); err != nil {
				return err
			}
			if len(args) == 0 {
				args = []string{defaultCaseDir}
			}
			return runCases(c.OutOrStdout(), args, backend, update)
		},
	}
	c.Flags().BoolVar(&update, "update", false, "regenerate in.pcap and rewrite expected.txt")
	c.Flags().StringVar(&backend, "backend", lab.BackendLab, "reference, kernel or lab")
	return c
}

// caseOutcome is what running one case gave.
type caseOutcome int

const (
	caseMatched caseOutcome = iota
	caseDiffers
	caseBroken // the case's files are wrong
	caseFailed // the backend could not run
)

func runCases(w io.Writer, dirs []string, backend string, update bool) error {
	cases, err := lab.FindCases(dirs...)
	if err != nil {
		return policyError(err)
	}
	start := time.Now()
	var passed, failed, hostFailures int
	for _, c := range cases {
		outcome := runCase(w, c, backend, update)
		switch outcome {
		case caseMatched:
			passed++
		case caseFailed:
			hostFailures++
			failed++
		default:
			failed++
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", passed, failed)
	fmt.Fprintf(w, "%s on the %s backend in %s\n", plural(len(cases), "case", "cases"), backend, time.Since(start).Round(10*time.Millisecond))
	switch {
	case hostFailures > 0:
		return silentExit(exitSystem)
	case failed > 0:
		return silentExit(exitPolicy)
	}
	return nil
}

// runCase runs one case and prints its result line and any diff.
func runCase(w io.Writer, c lab.Case, backend string, update bool) caseOutcome {
	if update {
		if _, err := os.Stat(filepath.Join(c.Dir, lab.CasePacketsFile)); err == nil {
			if _, err := c.GenerateCapture(); err != nil {
				fmt.Fprintf(w, "FAIL %s: %v\n", c.Name, err)
				return caseBroken
			}
		}
	} else if err := c.CheckCapture(); err != nil {
		// A capture that is not what its list generates would test packets
		// nobody reviewed.
		fmt.Fprintf(w, "FAIL %s: %v\n", c.Name, err)
		if _, ok := errors.AsType[*lab.StaleCaptureError](err); ok {
			return caseBroken
		}
		if _, ok := errors.AsType[*lab.CaseError](err); ok {
			return caseBroken
		}
		return caseFailed
	}
	got, err := c.Replay(backend)
	if err != nil {
		fmt.Fprintf(w, "FAIL %s: %v\n", c.Name, err)
		if _, ok := errors.AsType[*lab.CaseError](err); ok {
			return caseBroken
		}
		return caseFailed
	}
	for _, v := range got {
		if v.Error != "" {
			fmt.Fprintf(w, "FAIL %s: packet %d: the %s backend could not run it: %s\n", c.Name, v.Index, backend, v.Error)
			return caseFailed
		}
	}
	text := lab.Golden(got)
	expected := filepath.Join(c.Dir, lab.CaseExpectedFile)
	if update {
		if err := atomicfile.Write(expected, []byte(text), 0o644); err != nil {
			fmt.Fprintf(w, "FAIL %s: %v\n", c.Name, err)
			return caseFailed
		}
		fmt.Fprintf(w, "ok   %s (%s, updated)\n", c.Name, plural(len(got), "packet", "packets"))
		return caseMatched
	}
	want, err := os.ReadFile(expected)
	if err != nil {
		fmt.Fprintf(w, "FAIL %s: %v\n", c.Name, err)
		return caseBroken
	}
	if diff := lab.GoldenDiff(string(want), text); diff != "" {
		fmt.Fprintf(w, "FAIL %s: the %s backend differs from %s\n%s", c.Name, backend, expected, diff)
		return caseDiffers
	}
	fmt.Fprintf(w, "ok   %s (%s)\n", c.Name, plural(len(got), "packet", "packets"))
	return caseMatched
}
