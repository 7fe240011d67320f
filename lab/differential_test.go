package lab

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/lab/corpus"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/policy/eval"
	"github.com/xdpc/xdpc/runtime"
)

// The differential corpus: diffPolicies generated policies, each run on its
// own diffPackets generated frames. -short runs a smaller one.
const (
	diffSeed          = corpus.DifferentialSeed
	diffPolicies      = 200
	diffPackets       = 2000
	diffShortPolicies = 20
	diffShortPackets  = 500
	diffMaxReports    = 10
)

// diffProgram is one generated policy loaded both ways.
type diffProgram struct {
	gen  corpus.GeneratedPolicy
	cfg  *policy.Config
	pol  *policy.Policy
	prog *runtime.TestProgram
}

// diffOptions are the compiler options of the i-th generated policy, so
// every way of compiling meets the reference: every other policy looks up
// all its address and port lists of two or more values in maps (implicit
// sets), and every other pair uses the plain linear classifier instead of
// the default, which skips rules that share a failed test.
func diffOptions(i int) compiler.Options {
	var o compiler.Options
	if i%2 == 1 {
		o.InlineValues = 1
	}
	if i/2%2 == 1 {
		o.Strategy = "linear"
	}
	return o
}

// loadDiffProgram loads, compiles and loads into the kernel one generated
// policy. Any error is a bug: of the generator (Load) or of the compiler.
func loadDiffProgram(gp corpus.GeneratedPolicy, opts compiler.Options) (*diffProgram, error) {
	cfg, diags := policy.Load(gp.Name, gp.Source, policy.LoadOptions{})
	if diags.HasErrors() {
		return nil, fmt.Errorf("load generated policy %s: %s\n%s", gp.Name, diags.Error(), gp.Source)
	}
	p := cfg.Policy(gp.Policy)
	if p == nil {
		return nil, fmt.Errorf("generated policy %s has no policy %q", gp.Name, gp.Policy)
	}
	art, err := compiler.Compile(cfg, p, opts)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w\n%s", gp.Name, err, gp.Source)
	}
	var elf bytes.Buffer
	if err := art.WriteELF(&elf); err != nil {
		return nil, fmt.Errorf("write ELF of %s: %w\n%s", gp.Name, err, gp.Source)
	}
	prog, err := runtime.NewTestProgram(elf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("load %s into the kernel: %w\n%s", gp.Name, err, gp.Source)
	}
	return &diffProgram{gen: gp, cfg: cfg, pol: p, prog: prog}, nil
}

// wantOutcome is what docs/datapath.md says the kernel must do with frame:
// the reference verdict as an XDP action, and the counter slots that move.
func wantOutcome(res eval.Result) runtime.Outcome {
	action, ok := res.Verdict.XDP()
	if !ok {
		panic("reference decided " + res.Verdict.String())
	}
	moved := append(slices.Clone(res.Counted), res.Slot)
	sort.Ints(moved)
	return runtime.Outcome{Action: action, Moved: slices.Compact(moved)}
}

// disagreement is one frame on which the reference and the kernel differ.
type disagreement struct {
	policy string
	source []byte
	class  corpus.Class
	frame  []byte
	want   runtime.Outcome
	got    runtime.Outcome
	err    error
	why    string
}

func (d disagreement) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy %s, %s frame (%d bytes):\n%s\n", d.policy, d.class, len(d.frame), hex.EncodeToString(d.frame))
	if d.err != nil {
		fmt.Fprintf(&b, "kernel: error %v\n", d.err)
	} else {
		fmt.Fprintf(&b, "kernel: action %d, moved %v\n", d.got.Action, d.got.Moved)
	}
	fmt.Fprintf(&b, "reference: action %d, moved %v\n", d.want.Action, d.want.Moved)
	fmt.Fprintf(&b, "reference explanation:\n%s\n", d.why)
	fmt.Fprintf(&b, "policy source:\n%s", d.source)
	return b.String()
}

// compare runs frame through the kernel and the reference and returns the
// disagreement, if any. Frames shorter than an Ethernet header cannot run in
// the kernel; for them it checks that the reference calls them malformed.
func (d *diffProgram) compare(class corpus.Class, frame []byte) *disagreement {
	res := eval.Evaluate(d.pol, frame)
	want := wantOutcome(res)
	if len(frame) < runtime.MinTestFrame {
		if res.Rule == eval.RuleMalformed && res.Slot == d.pol.MalformedSlot() && len(res.Counted) == 0 {
			return nil
		}
		return &disagreement{policy: d.gen.Name, source: d.gen.Source, class: class, frame: frame, want: want,
			err: fmt.Errorf("not run: the reference does not call a %d-byte frame malformed", len(frame)),
			why: eval.Explain(d.pol, frame).String()}
	}
	got, err := d.prog.Run(frame)
	if err == nil && got.Action == want.Action && slices.Equal(got.Moved, want.Moved) {
		return nil
	}
	return &disagreement{policy: d.gen.Name, source: d.gen.Source, class: class, frame: frame,
		want: want, got: got, err: err, why: eval.Explain(d.pol, frame).String()}
}

// referenceCounters sums what the reference counts for frames, per slot.
func referenceCounters(p *policy.Policy, frames [][]byte) []runtime.Counter {
	cs := make([]runtime.Counter, p.Slots())
	for _, f := range frames {
		if len(f) < runtime.MinTestFrame {
			continue
		}
		res := eval.Evaluate(p, f)
		for _, s := range wantOutcome(res).Moved {
			cs[s].Packets++
			cs[s].Bytes += uint64(len(f))
		}
	}
	return cs
}

// diffTally counts agreement, overall and per class.
type diffTally struct {
	policies, frames, agreed, shortFrames int
	// implicitSets counts address and port lists compiled to maps (diffOptions).
	implicitSets             int
	classFrames, classAgreed map[corpus.Class]int
	reports                  []string
	failures                 int
}

func (t *diffTally) add(class corpus.Class, d *disagreement) {
	t.frames++
	t.classFrames[class]++
	if d == nil {
		t.agreed++
		t.classAgreed[class]++
		return
	}
	t.fail(d.String())
}

func (t *diffTally) fail(report string) {
	t.failures++
	if len(t.reports) < diffMaxReports {
		t.reports = append(t.reports, report)
	}
}

func (t *diffTally) summary() string {
	pct := 100.0
	if t.frames > 0 {
		pct = 100 * float64(t.agreed) / float64(t.frames)
	}
	return fmt.Sprintf("differential: %d policies (%d address and port lists compiled to maps), %d frames (%d under 14 bytes, reference only), %d agree (%.4f%%), %d failures",
		t.policies, t.implicitSets, t.frames, t.shortFrames, t.agreed, pct, t.failures)
}

// TestDifferential runs every generated frame through the compiled program in
// the kernel and through the reference evaluator, and requires the same
// verdict and the same counter slots to move: the deciding slot and every
// matching count rule's. It also checks the packet and byte totals of every
// counter after each policy's frames. Its flows subtest does the same for
// conversations through policies that track connections, ct_state and
// connection tables included (testFlowDifferential).
func TestDifferential(t *testing.T) {
	np, nf := diffPolicies, diffPackets
	if testing.Short() {
		np, nf = diffShortPolicies, diffShortPackets
	}
	start := time.Now()
	tally := &diffTally{classFrames: map[corpus.Class]int{}, classAgreed: map[corpus.Class]int{}}
	for i, gp := range corpus.Policies(diffSeed, np) {
		packets := corpus.Generate(diffSeed+int64(i)+1, nf)
		runDiffPolicy(gp, diffOptions(i), packets, tally)
	}
	t.Logf("%s in %v", tally.summary(), time.Since(start).Round(time.Millisecond))
	if testing.Verbose() {
		var classes []string
		for c, n := range tally.classFrames {
			classes = append(classes, fmt.Sprintf("%s %d/%d", c, tally.classAgreed[c], n))
		}
		sort.Strings(classes)
		t.Logf("agreement per class: %s", strings.Join(classes, ", "))
	}
	for _, r := range tally.reports {
		t.Errorf("disagreement:\n%s", r)
	}
	if tally.implicitSets == 0 {
		t.Error("no generated list was compiled to a map: the corpus no longer tests implicit sets")
	}
	if tally.failures > len(tally.reports) {
		t.Errorf("%d more disagreements not shown", tally.failures-len(tally.reports))
	}
	fmt.Println(tally.summary())
	t.Run("flows", testFlowDifferential)
}

// runDiffPolicy compares one policy on its frames and tallies the result.
func runDiffPolicy(gp corpus.GeneratedPolicy, opts compiler.Options, packets []corpus.Packet, tally *diffTally) {
	d, err := loadDiffProgram(gp, opts)
	if err != nil {
		tally.fail(err.Error())
		return
	}
	defer d.prog.Close()
	tally.policies++
	for _, s := range d.prog.Manifest().Sets {
		if s.Implicit {
			tally.implicitSets++
		}
	}
	failuresBefore := tally.failures
	frames := make([][]byte, len(packets))
	for j, pk := range packets {
		frames[j] = pk.Frame
		if len(pk.Frame) < runtime.MinTestFrame {
			tally.shortFrames++
		}
		tally.add(pk.Class, d.compare(pk.Class, pk.Frame))
	}
	if tally.failures > failuresBefore {
		return // the totals differ too; the frames say where
	}
	got, err := d.prog.Counters()
	if err != nil {
		tally.fail(fmt.Sprintf("read counters of %s: %v", gp.Name, err))
		return
	}
	if want := referenceCounters(d.pol, frames); !slices.Equal(want, got) {
		tally.fail(fmt.Sprintf("policy %s: counter totals differ after %d frames\nreference: %v\nkernel:    %v\n%s",
			gp.Name, len(frames), want, got, gp.Source))
	}
}

// TestReferenceShortFramesMalformed checks, on the reference alone, the
// frames the kernel cannot run: every frame under 14 bytes is malformed,
// gets the malformed verdict and moves only the malformed counter.
func TestReferenceShortFramesMalformed(t *testing.T) {
	for _, verdict := range []string{"pass", "drop"} {
		src := fmt.Sprintf("policy \"short\" {\n  default = \"pass\"\n  malformed = %q\n  rule \"all\" {\n    action = \"count\"\n  }\n}\n", verdict)
		cfg, diags := policy.Load("short.hcl", []byte(src), policy.LoadOptions{})
		if diags.HasErrors() {
			t.Fatalf("load: %v", diags)
		}
		p := cfg.Policy("short")
		seen := 0
		for _, pk := range corpus.Generate(diffSeed, 3000) {
			if len(pk.Frame) >= runtime.MinTestFrame {
				continue
			}
			seen++
			want := eval.Result{Verdict: p.Malformed, Rule: eval.RuleMalformed, Slot: p.MalformedSlot(), Malformed: "ethernet header cut short"}
			if diff := cmp.Diff(want, eval.Evaluate(p, pk.Frame)); diff != "" {
				t.Errorf("%s frame %x (-want +got):\n%s", pk.Class, pk.Frame, diff)
			}
		}
		if seen == 0 {
			t.Fatal("the corpus has no frame under 14 bytes")
		}
	}
}
