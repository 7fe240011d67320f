package lab

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/lab/corpus"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/policy/eval"
	"github.com/xdpc/xdpc/runtime"
)

// The stateful differential: flowPolicies generated policies that track
// connections, each run on flowsPerPolicy generated conversations
// (corpus.Flows). -short runs a smaller one.
const (
	flowPolicies        = 40
	flowsPerPolicy      = 25
	flowShortPolicies   = 10
	flowsShortPerPolicy = 10
	// flowSeedOffset keeps the flows' seeds apart from the frames'.
	flowSeedOffset = 1_000_000
)

// flowProgram is one generated tracking policy, compiled and loaded in
// the kernel as the kernel backend runs it.
type flowProgram struct {
	gen    corpus.GeneratedPolicy
	cfg    *policy.Config
	pol    *policy.Policy
	kernel *kernelBackend
}

// loadFlowProgram loads, compiles and loads into the kernel one generated
// tracking policy. Any error is a bug: of the generator or of the compiler.
func loadFlowProgram(gp corpus.GeneratedPolicy, opts compiler.Options) (*flowProgram, error) {
	d, err := loadDiffProgram(gp, opts)
	if err != nil {
		return nil, err
	}
	if d.prog.Manifest().Conntrack == nil {
		d.prog.Close()
		return nil, fmt.Errorf("generated policy %s does not track connections\n%s", gp.Name, gp.Source)
	}
	kb, err := newKernelBackendOf(d.prog)
	if err != nil {
		return nil, err
	}
	return &flowProgram{gen: gp, cfg: d.cfg, pol: d.pol, kernel: kb}, nil
}

func (fp *flowProgram) close() { fp.kernel.Close() }

// frames are a flow's frames as a replay hands them to a backend.
func flowFrames(fl corpus.Flow) []Frame {
	fs := make([]Frame, len(fl.Frames))
	for i, f := range fl.Frames {
		fs[i] = Frame{Index: i + 1, Data: f.Data, Time: f.Time, Out: f.Out}
	}
	return fs
}

// outcome is what a backend's verdict says, field by field, for comparing:
// the decision by slot (never by name), the count rules by slot, the
// ct_state and the entry recorded.
type outcome struct {
	Verdict, To      string
	Slot             int
	Counted          []int
	CTState, CTEntry string
	Err              string
}

func outcomeOf(v Verdict, err error) outcome {
	if err != nil {
		return outcome{Err: err.Error()}
	}
	return outcome{Verdict: v.Verdict, To: v.To, Slot: v.Slot, Counted: v.CountedSlots, CTState: v.CTState, CTEntry: v.CTEntry}
}

func (o outcome) String() string {
	if o.Err != "" {
		return "error: " + o.Err
	}
	return fmt.Sprintf("%s slot %d counted %v (ct %s, entry %q)", o.Verdict, o.Slot, o.Counted, o.CTState, o.CTEntry)
}

func (o outcome) equal(p outcome) bool {
	return o.Verdict == p.Verdict && o.To == p.To && o.Slot == p.Slot && slices.Equal(o.Counted, p.Counted) &&
		o.CTState == p.CTState && o.CTEntry == p.CTEntry && o.Err == p.Err
}

// flowReport describes a flow the two sides disagree on: the policy, the
// flow as a list of frames with their times, and what differs.
func flowReport(fp *flowProgram, frames []Frame, classes []corpus.Class, what string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy %s: %s\nthe flow:\n", fp.gen.Name, what)
	for i, f := range frames {
		dir := "in "
		if f.Out {
			dir = "out"
		}
		fmt.Fprintf(&b, "  %2d  +%-12s %s  %s  [%s]\n      %s\n", f.Index, f.Time, dir, summarize(f.Data), classes[i], hex.EncodeToString(f.Data))
	}
	fmt.Fprintf(&b, "policy source:\n%s", fp.gen.Source)
	return b.String()
}

// explainFrame is the reference's explanation of frame i of frames,
// replayed on a fresh session up to it.
func explainFrame(fp *flowProgram, frames []Frame, i int) string {
	s := eval.NewSession(fp.pol, fp.cfg.Conntrack)
	for _, f := range frames[:i] {
		if f.Out {
			s.Egress(f.Data, uint64(f.Time))
		} else {
			s.Ingress(f.Data, uint64(f.Time))
		}
	}
	f := frames[i]
	if f.Out {
		x := s.ExplainEgress(f.Data, uint64(f.Time))
		return fmt.Sprintf("out: ct_state %s, commit %s, malformed %q", x.Result.CTState, x.Result.Commit, x.Result.Malformed)
	}
	return s.Explain(f.Data, uint64(f.Time)).String()
}

// flowTally counts agreement over flows.
type flowTally struct {
	policies, flows, frames, out, agreed, tables int
	// refused counts out frames the kernel cannot test-run
	// (EgressRefusedError) that the reference leaves alone.
	refused           int
	statuses, entries map[string]int
	reports           []string
	failures          int
}

func newFlowTally() *flowTally {
	return &flowTally{statuses: map[string]int{}, entries: map[string]int{}}
}

func (t *flowTally) fail(report string) {
	t.failures++
	if len(t.reports) < diffMaxReports {
		t.reports = append(t.reports, report)
	}
}

func (t *flowTally) summary() string {
	pct := 100.0
	if n := t.frames - t.refused; n > 0 {
		pct = 100 * float64(t.agreed) / float64(n)
	}
	return fmt.Sprintf("stateful differential: %d tracking policies, %d flows, %d frames (%d out, %d of them cut short in L3, reference only), %d agree (%.4f%%), tables agree after %d flows, %d failures",
		t.policies, t.flows, t.frames, t.out, t.refused, t.agreed, pct, t.tables, t.failures)
}

// runFlow replays one flow on the reference (a fresh session) and the
// kernel (the table flushed): every frame must get the same verdict,
// counter slots, ct_state and recorded entry, and the tables must hold
// the same afterwards. It returns the reference's verdicts.
func runFlow(fp *flowProgram, fl corpus.Flow, tally *flowTally) []Verdict {
	frames := flowFrames(fl)
	classes := make([]corpus.Class, len(fl.Frames))
	for i, f := range fl.Frames {
		classes[i] = f.Class
	}
	ref := newReferenceBackend(fp.cfg, fp.pol)
	if err := fp.kernel.ct.reset(); err != nil {
		tally.fail(fmt.Sprintf("policy %s: flush the table: %v", fp.gen.Name, err))
		return nil
	}
	tally.flows++
	start := time.Now()
	var verdicts []Verdict
	for i, f := range frames {
		tally.frames++
		if f.Out {
			tally.out++
		}
		rv, _ := ref.Run(f)
		kv, err := fp.kernel.Run(f)
		if _, refused := errors.AsType[EgressRefusedError](err); refused && rv.CTState == "untracked" && rv.CTEntry == "" {
			// The kernel cannot run it; the reference leaves it alone, as
			// the egress program leaves a malformed frame.
			tally.refused++
			verdicts = append(verdicts, rv)
			continue
		}
		want, got := outcomeOf(rv, nil), outcomeOf(kv, err)
		if !want.equal(got) {
			tally.fail(flowReport(fp, frames, classes, fmt.Sprintf("frame %d differs\nreference: %s\nkernel:    %s\nreference explanation:\n%s",
				f.Index, want, got, explainFrame(fp, frames, i))))
			tally.frames += len(frames) - i - 1 // the rest follow from it
			return nil
		}
		tally.agreed++
		tally.statuses[want.CTState]++
		tally.entries[want.CTEntry]++
		verdicts = append(verdicts, rv)
	}
	if diff := compareTables(ref.s, fp.kernel.prog, start); diff != "" {
		tally.fail(flowReport(fp, frames, classes, "the tables differ after the flow:\n"+diff))
		return nil
	}
	tally.tables++
	return verdicts
}

// tableSlack is how far the kernel's remaining lifetime of an entry may
// be above the reference's: the clock reads around the table's.
const tableSlack = time.Millisecond

// compareTables compares the kernel's live entries with the reference
// session's at its clock: the same keys, states and flags, each entry in
// the map its state belongs in, and remaining lifetimes that differ by no
// more than the real time since the replay started (the kernel's clock
// ran on by that much; the capture's did not).
func compareTables(s *eval.Session, prog *runtime.TestProgram, start time.Time) string {
	flows, err := prog.ConntrackFlows()
	if err != nil {
		return err.Error()
	}
	// The kernel's clock just after the read: remaining lifetimes by it
	// are at most a read's time short.
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return err.Error()
	}
	kNow := uint64(ts.Nano())
	elapsed := time.Since(start)
	kernel := map[conntrack.Key]runtime.ConntrackFlow{}
	var b strings.Builder
	for _, f := range flows {
		if prev, ok := kernel[f.Key]; ok {
			fmt.Fprintf(&b, "%v is live in both maps: %+v and %+v\n", f.Key, prev.Entry, f.Entry)
		}
		kernel[f.Key] = f
	}
	refNow := s.Now()
	ref := map[conntrack.Key]conntrack.Entry{}
	for _, f := range s.Flows(refNow) {
		ref[f.Key] = f.Entry
	}
	var keys []conntrack.Key
	for k := range kernel {
		keys = append(keys, k)
	}
	for k := range ref {
		if _, ok := kernel[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i].Encode(), keys[j].Encode()) < 0 })
	for _, k := range keys {
		kf, inKernel := kernel[k]
		re, inRef := ref[k]
		switch {
		case !inRef:
			fmt.Fprintf(&b, "the kernel has %v in %s (flags %#x), the reference none\n", k, kf.Entry.State, kf.Entry.Flags)
			continue
		case !inKernel:
			fmt.Fprintf(&b, "the reference has %v in %s (flags %#x), the kernel none\n", k, re.State, re.Flags)
			continue
		}
		ke := kf.Entry
		if ke.State != re.State || ke.Flags != re.Flags {
			fmt.Fprintf(&b, "%v is %s flags %#x in the kernel, %s flags %#x in the reference\n", k, ke.State, ke.Flags, re.State, re.Flags)
			continue
		}
		if kf.Assured != ke.State.Assured() {
			fmt.Fprintf(&b, "%v in %s is in the assured map: %v\n", k, ke.State, kf.Assured)
		}
		refRem, kRem := time.Duration(re.Expires-refNow), kf.Left(kNow)
		if d := refRem - kRem; d < -tableSlack || d > elapsed+tableSlack {
			fmt.Fprintf(&b, "%v expires in %s in the kernel, %s in the reference: %s apart, want 0 to %s\n", k, kRem, refRem, d, elapsed)
		}
	}
	return b.String()
}

// runFlowPolicy replays flows on one tracking policy and then compares
// the counters the kernel kept with what the reference decided.
func runFlowPolicy(gp corpus.GeneratedPolicy, opts compiler.Options, seed int64, nflows int, tally *flowTally) {
	fp, err := loadFlowProgram(gp, opts)
	if err != nil {
		tally.fail(err.Error())
		return
	}
	defer fp.close()
	tally.policies++
	failures := tally.failures
	want := make([]runtime.Counter, fp.pol.Slots())
	for _, fl := range corpus.Flows(seed, nflows, fp.cfg.Conntrack.Timeouts) {
		for _, v := range runFlow(fp, fl, tally) {
			if v.Verdict == VerdictOut {
				continue
			}
			for _, s := range append([]int{v.Slot}, v.CountedSlots...) {
				want[s].Packets++
				want[s].Bytes += uint64(v.Len)
			}
		}
	}
	if tally.failures > failures {
		return
	}
	got, err := fp.kernel.Counters()
	if err != nil {
		tally.fail(fmt.Sprintf("read counters of %s: %v", gp.Name, err))
		return
	}
	if !slices.Equal(want, got) {
		tally.fail(fmt.Sprintf("policy %s: counter totals differ after its flows\nreference: %v\nkernel:    %v\n%s", gp.Name, want, got, gp.Source))
	}
}

// testFlowDifferential runs the stateful differential and reports its
// size and agreement.
func testFlowDifferential(t *testing.T) {
	np, nf := flowPolicies, flowsPerPolicy
	if testing.Short() {
		np, nf = flowShortPolicies, flowsShortPerPolicy
	}
	start := time.Now()
	tally := newFlowTally()
	for i, gp := range corpus.TrackingPolicies(diffSeed, np) {
		runFlowPolicy(gp, diffOptions(i), diffSeed+flowSeedOffset+int64(i), nf, tally)
	}
	t.Logf("%s in %v", tally.summary(), time.Since(start).Round(time.Millisecond))
	t.Logf("ct_state of the frames: %v; entries recorded: %v", tally.statuses, tally.entries)
	for _, r := range tally.reports {
		t.Errorf("disagreement:\n%s", r)
	}
	if tally.failures > len(tally.reports) {
		t.Errorf("%d more disagreements not shown", tally.failures-len(tally.reports))
	}
	for _, s := range []string{"new", "established", "related", "invalid", "untracked"} {
		if tally.statuses[s] == 0 {
			t.Errorf("no frame of the flows was %s: the corpus no longer exercises it", s)
		}
	}
	for _, e := range []string{"syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack", "time_wait", "close", "unreplied", "replied", "requested"} {
		if tally.entries[e] == 0 {
			t.Errorf("no frame of the flows left an entry in %s", e)
		}
	}
	fmt.Println(tally.summary())
}
