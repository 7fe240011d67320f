package lab

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"

	"github.com/xdpc/xdpc/policy"
)

// The tests of a policy file (its test blocks) run here, where the packet
// parser is: package policy keeps their packets as text with its range,
// and every diagnostic below points back at that range.

// TestFrames builds the frames of test t of cfg, one per step, 1 ms apart
// and each after its step's wait. A packet that does not parse is an
// error diagnostic at its text (at the word that is wrong, when the
// source holds the text as it is); frames are returned only when there is
// none.
func TestFrames(cfg *policy.Config, t *policy.Test) ([]Frame, hcl.Diagnostics) {
	var (
		frames []Frame
		diags  hcl.Diagnostics
		clock  time.Duration
	)
	for i, s := range t.Steps {
		clock += s.Wait
		data, err := stepFrame(s)
		if err != nil {
			diags = append(diags, diagBadTestPacket(t, i+1, badWordRange(cfg.Source, s, err), err))
		}
		frames = append(frames, Frame{Index: i + 1, Line: s.PacketRange.Start.Line, Data: data, Time: clock, Out: s.Out})
		clock += frameGap
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return frames, nil
}

// stepFrame builds the frame of a step's packet text.
func stepFrame(s *policy.TestStep) ([]byte, error) {
	spec, err := parsePacketSpec(s.Packet)
	if err != nil {
		return nil, err
	}
	return spec.build()
}

// CheckTests parses the packets of every test of cfg and returns a
// diagnostic for each that does not parse.
func CheckTests(cfg *policy.Config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, t := range cfg.Tests {
		_, ds := TestFrames(cfg, t)
		diags = append(diags, ds...)
	}
	return diags
}

// TestResult is what running one test of a policy file gave.
type TestResult struct {
	Test *policy.Test
	// Verdicts are the backend's, one per step; nil when the test could
	// not run.
	Verdicts []Verdict
	// Failures are the expectations the backend did not meet, one error
	// diagnostic each, at the attribute that states it; or the test's bad
	// packets, when it could not be built.
	Failures hcl.Diagnostics
	// Err is set when the backend could not run the test (a host failure,
	// not a wrong policy).
	Err error
}

// Passed reports whether the test ran and met every expectation.
func (r TestResult) Passed() bool { return r.Err == nil && len(r.Failures) == 0 }

// RunTests runs every test of cfg on the named backend, each as its own
// conversation from an empty connection table, in file order.
func RunTests(backend string, cfg *policy.Config) []TestResult {
	results := make([]TestResult, 0, len(cfg.Tests))
	for _, t := range cfg.Tests {
		results = append(results, RunTest(backend, cfg, t))
	}
	return results
}

// RunTest runs test t of cfg on the named backend and holds each packet's
// verdict against the step's expectations.
func RunTest(backend string, cfg *policy.Config, t *policy.Test) TestResult {
	r := TestResult{Test: t}
	frames, diags := TestFrames(cfg, t)
	if diags.HasErrors() {
		r.Failures = diags
		return r
	}
	b, err := NewBackend(backend, cfg, t.Policy)
	if err != nil {
		r.Err = fmt.Errorf("test %q: start %s backend: %w", t.Name, backend, err)
		return r
	}
	defer b.Close()
	r.Verdicts = Replay(b, frames)
	for i, v := range r.Verdicts {
		if v.Error != "" {
			r.Err = fmt.Errorf("test %q: packet %d: the %s backend could not run it: %s", t.Name, i+1, backend, v.Error)
			return r
		}
		r.Failures = append(r.Failures, stepFailures(t, i+1, t.Steps[i], v)...)
	}
	return r
}

// stepFailures holds verdict v of packet n against its step's
// expectations: the verdict, then the rule, the interface of a redirect
// and the ct_state.
func stepFailures(t *policy.Test, n int, s *policy.TestStep, v Verdict) hcl.Diagnostics {
	if v.Verdict != s.Expect {
		got := v.Verdict
		if v.Rule != "" {
			got += " (rule " + v.Rule + ")"
		}
		return hcl.Diagnostics{diagTestFailed(t, n, s.ExpectRange, v, "expected %s, got %s", s.Expect, got)}
	}
	var diags hcl.Diagnostics
	if s.Rule != "" && v.Rule != s.Rule {
		diags = append(diags, diagTestFailed(t, n, s.RuleRange, v, "expected rule %s, got %s (%s)", s.Rule, v.Rule, v.Verdict))
	}
	if s.To != "" && v.To != s.To {
		diags = append(diags, diagTestFailed(t, n, s.ToRange, v, "expected redirect to %s, got %s", s.To, cmp.Or(v.To, "none")))
	}
	if s.CTState != "" && v.CTState != s.CTState {
		diags = append(diags, diagTestFailed(t, n, s.CTStateRange, v, "expected ct_state %s, got %s", s.CTState, cmp.Or(v.CTState, "none")))
	}
	return diags
}

func diagTestFailed(t *policy.Test, n int, rng hcl.Range, v Verdict, format string, args ...any) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("test %q: packet %d ", t.Name, n) + fmt.Sprintf(format, args...),
		Detail:   "The backend decided: " + strings.TrimSpace(v.String()),
		Subject:  &rng,
	}
}

func diagBadTestPacket(t *policy.Test, n int, rng hcl.Range, err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid packet",
		Detail:   fmt.Sprintf("Packet %d of test %q: %v; see docs/packets.md for the syntax.", n, t.Name, err),
		Subject:  &rng,
	}
}

// badWordRange is where err, about the packet of step s, points in src:
// the word it names, or the whole packet text when it names none or src
// does not hold the text as it is (escapes).
func badWordRange(src []byte, s *policy.TestStep, err error) hcl.Range {
	rng := s.PacketRange
	var we *specWordError
	if !errors.As(err, &we) || rng.Start.Line != rng.End.Line || rng.Start.Byte < 0 || rng.End.Byte > len(src) || rng.Start.Byte > rng.End.Byte {
		return rng
	}
	lit := string(src[rng.Start.Byte:rng.End.Byte])
	at := strings.Index(lit, s.Packet)
	spans := wordSpans(s.Packet)
	if at < 0 || we.Word >= len(spans) {
		return rng
	}
	from, to := at+spans[we.Word][0], at+spans[we.Word][1]
	rng.Start.Byte, rng.End.Byte = rng.Start.Byte+from, rng.Start.Byte+to
	rng.Start.Column, rng.End.Column = rng.Start.Column+utf8.RuneCountInString(lit[:from]), rng.Start.Column+utf8.RuneCountInString(lit[:to])
	return rng
}

// wordSpans are the byte spans of a packet line's words as the packet
// parser splits them: runs of non-space, with every ">" a word of its own.
func wordSpans(line string) [][2]int {
	var spans [][2]int
	start := -1
	end := func(i int) {
		if start >= 0 {
			spans = append(spans, [2]int{start, i})
			start = -1
		}
	}
	for i, r := range line {
		switch {
		case r == '>':
			end(i)
			spans = append(spans, [2]int{i, i + 1})
		case unicode.IsSpace(r):
			end(i)
		case start < 0:
			start = i
		}
	}
	end(len(line))
	return spans
}
