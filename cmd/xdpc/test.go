package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/internal/atomicfile"
	"github.com/xdpc/xdpc/lab"
	"github.com/xdpc/xdpc/policy"
)

// defaultCaseDir is where `xdpc test` looks for cases when given none.
const defaultCaseDir = "testdata/lab"

func newTestCommand() *cobra.Command {
	var opts testOptions
	c := &cobra.Command{
		Use:   "test [-update] [--backend reference|kernel|lab] [--junit FILE] [DIR|POLICY.hcl...]",
		Short: "Run golden lab cases and in-policy tests; print a per-packet diff of any mismatch",
		Long: `Run the golden lab cases under each DIR (default testdata/lab), and the test
blocks of each POLICY.hcl given and of each case's policy.hcl. A DIR that
holds no case stands for the .hcl files in it. A case is a
directory holding policy.hcl, packets.txt, in.pcap and expected.txt. Each
case's capture is replayed on the backend (default lab: real namespaces and
veths, the program attached with XDP) and compared line by line with
expected.txt; a mismatch prints the packets that differ.

Before replaying, each case's in.pcap must be byte for byte what its
packets.txt generates: a stale capture fails the case, with the packet that
differs and the command that regenerates it (xdpc pcap -o DIR/in.pcap
DIR/packets.txt, or xdpc test -update DIR). A case without a packets.txt
replays its in.pcap as it is.

Each test block runs as a conversation of its own on the same backend; an
expectation it does not meet is printed as a diagnostic at that line of
the policy file. A POLICY.hcl given without test blocks fails.

-update first regenerates in.pcap from packets.txt, then rewrites
expected.txt with what the backend printed. Review golden diffs like code.

--junit FILE writes a JUnit XML report of every case and test. In GitHub
Actions (GITHUB_ACTIONS=true) each failure is also printed as an
annotation: ::error file=F,line=L,col=C::message.

Exit codes: 0 every case and test passed, 1 one differs or is broken, 3
the backend could not run.`,
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(lab.Backends(), opts.backend) {
				return usageError(lab.UnknownBackendError(opts.backend))
			}
			if err := requireBackendCaps(c, opts.backend); err != nil {
				return err
			}
			if len(args) == 0 {
				args = []string{defaultCaseDir}
			}
			return runTests(c.OutOrStdout(), args, opts)
		},
	}
	c.Flags().BoolVar(&opts.update, "update", false, "regenerate in.pcap and rewrite expected.txt")
	c.Flags().StringVar(&opts.backend, "backend", lab.BackendLab, "reference, kernel or lab")
	c.Flags().StringVar(&opts.junit, "junit", "", "write a JUnit XML report to `FILE`")
	return c
}

// testOptions are the flags of xdpc test.
type testOptions struct {
	backend string
	update  bool
	junit   string
}

// caseOutcome is what running one case gave.
type caseOutcome int

const (
	caseMatched caseOutcome = iota
	caseDiffers
	caseBroken // the case's files are wrong
	caseFailed // the backend could not run
	// caseSkipped: the backend does not run cases of this kind yet (a
	// case of several interfaces whose policies have sets or redirects, on
	// the kernel or lab backend).
	caseSkipped
)

// runTests runs the cases under the directories of args and the tests of
// the policy files among them, then prints the totals and writes the
// JUnit report.
func runTests(w io.Writer, args []string, opts testOptions) error {
	cases, files, err := findTests(args)
	if err != nil {
		return policyError(err)
	}
	run := &testRun{w: w, opts: opts, report: newJUnitReport("xdpc test --backend " + opts.backend)}
	start := time.Now()
	for _, c := range cases {
		run.golden(c)
		run.fileTests(filepath.Join(c.Dir, lab.CasePolicyFile), false)
	}
	for _, f := range files {
		run.fileTests(f, true)
	}
	if run.skipped > 0 {
		fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", run.passed, run.failed, run.skipped)
	} else {
		fmt.Fprintf(w, "%d passed, %d failed\n", run.passed, run.failed)
	}
	fmt.Fprintf(w, "%s on the %s backend in %s\n", run.ran(len(cases)), opts.backend, time.Since(start).Round(10*time.Millisecond))
	if opts.junit != "" {
		if err := run.report.write(opts.junit); err != nil {
			return err
		}
	}
	switch {
	case run.hostFailures > 0:
		return silentExit(exitSystem)
	case run.failed > 0:
		return silentExit(exitPolicy)
	}
	return nil
}

// findTests finds what args name: golden cases under directories, and
// policy files whose tests run. A directory without cases stands for the
// .hcl files in it, as a policy repository's directory of policies.
func findTests(args []string) (cases []lab.Case, files []string, err error) {
	for _, a := range args {
		fi, err := os.Stat(a)
		if err == nil && !fi.IsDir() {
			files = append(files, a)
			continue
		}
		cs, err := lab.FindCases(a)
		if err != nil && fi == nil {
			return nil, nil, err
		}
		if err != nil {
			policies, _ := filepath.Glob(filepath.Join(a, "*.hcl"))
			if len(policies) == 0 {
				return nil, nil, fmt.Errorf("%w, nor any .hcl file", err)
			}
			files = append(files, policies...)
			continue
		}
		cases = append(cases, cs...)
	}
	slices.SortFunc(cases, func(a, b lab.Case) int { return strings.Compare(a.Dir, b.Dir) })
	return cases, files, nil
}

// testRun is one xdpc test: where it prints, and how its cases and tests
// went.
type testRun struct {
	w      io.Writer
	opts   testOptions
	report *junitReport

	passed, failed, hostFailures int
	skipped, tests               int
}

// ran says what the run ran: "3 cases", "2 cases and 4 tests".
func (r *testRun) ran(cases int) string {
	switch {
	case r.tests == 0:
		return plural(cases, "case", "cases")
	case cases == 0:
		return plural(r.tests, "test", "tests")
	}
	return plural(cases, "case", "cases") + " and " + plural(r.tests, "test", "tests")
}

// count records an outcome in the totals.
func (r *testRun) count(outcome caseOutcome) {
	switch outcome {
	case caseMatched:
		r.passed++
	case caseSkipped:
		r.skipped++
	case caseFailed:
		r.hostFailures++
		r.failed++
	default:
		r.failed++
	}
}

// golden runs one golden case, printing its report, and records it.
func (r *testRun) golden(c lab.Case) {
	var out bytes.Buffer
	start := time.Now()
	outcome := runCase(&out, c, r.opts.backend, r.opts.update)
	r.w.Write(out.Bytes())
	r.count(outcome)
	expected := filepath.Join(c.Dir, lab.CaseExpectedFile)
	jc := junitCase{Name: c.Name, Classname: "golden", File: expected, Time: junitSeconds(time.Since(start))}
	if outcome == caseSkipped {
		jc.Skipped = &junitResult{Message: firstLine(out.String())}
	} else if outcome != caseMatched {
		res := &junitResult{Message: firstLine(out.String()), Text: out.String()}
		if outcome == caseFailed {
			jc.Error = res
		} else {
			jc.Failure = res
		}
		if annotating() {
			writeAnnotation(r.w, "error", annotationPlace{File: expected}, strings.TrimRight(out.String(), "\n"))
		}
	}
	r.report.add("golden cases", jc)
}

// fileTests runs the tests of the policy file at path. given says the
// file was named on the command line: then a file that does not load or
// has no tests fails; a case's policy.hcl without tests is passed over,
// and one that does not load is reported by its case.
func (r *testRun) fileTests(path string, given bool) {
	cfg, src, diags := loadTestFile(path)
	if cfg == nil && !given {
		return
	}
	files := map[string][]byte{path: src}
	switch {
	case diags.HasErrors():
		r.broken(path, files, diags, "FAIL "+path+": the policy does not load")
		return
	case len(cfg.Tests) == 0:
		if given {
			r.broken(path, files, nil, "FAIL "+path+": no test blocks to run")
		}
		return
	}
	for _, t := range cfg.Tests {
		r.fileTest(path, files, cfg, t)
	}
}

// loadTestFile loads the policy file at path and parses its tests'
// packets. The Config is nil when the policy itself does not load; the
// diagnostics are its errors, or its tests'.
func loadTestFile(path string) (*policy.Config, []byte, hcl.Diagnostics) {
	src, diags := policy.ReadFile(path)
	if diags.HasErrors() {
		return nil, nil, diags
	}
	cfg, diags := policy.Load(path, src, policy.LoadOptions{})
	if cfg == nil {
		return nil, src, diags
	}
	return cfg, src, lab.CheckTests(cfg)
}

// broken reports a policy file whose tests cannot run: its headline, then
// its diagnostics.
func (r *testRun) broken(path string, files map[string][]byte, diags hcl.Diagnostics, headline string) {
	text := r.failure(headline, files, diags)
	r.count(caseBroken)
	r.report.add(path, junitCase{Name: path, Classname: path, File: path, Failure: &junitResult{Message: headline, Text: text}})
	if len(diags) == 0 && annotating() {
		writeAnnotation(r.w, "error", annotationPlace{File: path}, headline)
	}
}

// failure prints a failure's headline and diagnostics, and their
// annotations in GitHub Actions, and returns the text it printed.
func (r *testRun) failure(headline string, files map[string][]byte, diags hcl.Diagnostics) string {
	var out bytes.Buffer
	out.WriteString(headline + "\n")
	if err := policy.WriteDiagnostics(&out, files, diags); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	r.w.Write(out.Bytes())
	if annotating() {
		writeAnnotations(r.w, diags)
	}
	return out.String()
}

// fileTest runs test t of the policy file at path and records it.
func (r *testRun) fileTest(path string, files map[string][]byte, cfg *policy.Config, t *policy.Test) {
	r.tests++
	start := time.Now()
	res := lab.RunTest(r.opts.backend, cfg, t)
	name := fmt.Sprintf("%s: test %q", path, t.Name)
	jc := junitCase{Name: t.Name, Classname: path, File: path, Line: t.DeclRange.Start.Line}
	switch {
	case res.Err != nil:
		headline := fmt.Sprintf("FAIL %s: %v", path, res.Err)
		fmt.Fprintln(r.w, headline)
		if annotating() {
			writeAnnotation(r.w, "error", annotationPlace{File: path, Line: t.DeclRange.Start.Line, Col: t.DeclRange.Start.Column}, res.Err.Error())
		}
		jc.Error = &junitResult{Message: res.Err.Error(), Text: headline}
		r.count(caseFailed)
	case len(res.Failures) > 0:
		text := r.failure("FAIL "+name, files, res.Failures)
		jc.Failure = &junitResult{Message: res.Failures[0].Summary, Text: text}
		r.count(caseDiffers)
	default:
		fmt.Fprintf(r.w, "ok   %s (%s)\n", name, plural(len(res.Verdicts), "packet", "packets"))
		r.count(caseMatched)
	}
	jc.Time = junitSeconds(time.Since(start))
	r.report.add(path, jc)
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
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
	if errors.Is(err, lab.ErrHostUnsupported) {
		fmt.Fprintf(w, "skip %s: %v\n", c.Name, err)
		return caseSkipped
	}
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
