package lab

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/policy/eval"
	"github.com/xdpc/xdpc/runtime"
	"github.com/xdpc/xdpc/wire"
)

// Backend names, as `xdpc replay --backend` takes them.
const (
	BackendReference = "reference"
	BackendKernel    = "kernel"
	BackendLab       = "lab"
)

// Backends lists the replay backends available in this release.
func Backends() []string { return []string{BackendReference, BackendKernel, BackendLab} }

// Verdict is what one backend decided for one frame. Every backend fills the
// same fields the same way, so their text and JSON are comparable line by line.
type Verdict struct {
	Index   int             `json:"index"`
	Summary string          `json:"summary"`
	Action  artifact.Action `json:"-"`
	// Verdict is "pass", "drop" or "redirect"; "out" for a frame the host
	// sent (Frame.Out), which no policy filters.
	Verdict string `json:"verdict"`
	// To is the interface of a redirect.
	To string `json:"to,omitempty"`
	// Rule is the deciding rule's name, "default" or "malformed".
	Rule string `json:"rule"`
	// Counted names the count rules that matched before the decision.
	Counted []string `json:"counted,omitempty"`
	Len     int      `json:"len"`
	// CTState is the frame's ct_state as the rules saw it (for an out
	// frame, as the tracker read it): "new", "established", "related",
	// "invalid" or "untracked"; empty when the policy does not track
	// connections.
	CTState string `json:"ct_state,omitempty"`
	// CTEntry is the state of the connection-table entry the frame
	// created or moved ("syn_sent", "established", "time_wait", ...);
	// empty when it recorded nothing (dropped, related, invalid, not
	// tracked).
	CTEntry string `json:"ct_entry,omitempty"`
	// Rewritten is the summary of the frame as it left the device under
	// test, when the datapath changed it; empty when it left unchanged or
	// did not leave.
	Rewritten string `json:"rewritten,omitempty"`
	// Frame is the rewritten frame's bytes, when Rewritten is set by a
	// host backend: what the backends compare byte by byte.
	Frame []byte `json:"-"`
	// Iface is the interface the frame arrived on (or left from), set by
	// host backends only: a host case's lines say it.
	Iface string `json:"iface,omitempty"`
	// Error is set, and the other fields empty, when the backend could not run the frame.
	Error string `json:"error,omitempty"`
	// Slot is the counter slot of the decision and CountedSlots those of
	// the count rules in Counted, numbered as the program numbers them:
	// counters are attributed by these, never by name.
	Slot         int   `json:"-"`
	CountedSlots []int `json:"-"`
}

// String renders v as one golden-file line: index, verdict, rule, packet
// (after "on IFACE" when the line names its interface),
// the count rules that matched, the ct_state and the entry recorded (when
// the policy tracks connections: "(ct established, entry fin_wait)") and
// the rewritten frame, if any.
func (v Verdict) String() string {
	if v.Error != "" {
		return fmt.Sprintf("%4d  error  %s", v.Index, v.Error)
	}
	summary := v.Summary
	if v.Iface != "" {
		summary = "on " + v.Iface + " " + summary
	}
	s := fmt.Sprintf("%4d  %-8s  %-16s  %s", v.Index, v.Verdict, v.Rule, summary)
	if v.To != "" {
		s += "  (to " + v.To + ")"
	}
	if len(v.Counted) > 0 {
		s += fmt.Sprintf("  (counted by %s)", joinNames(v.Counted))
	}
	if v.CTState != "" {
		s += "  (ct " + v.CTState
		if v.CTEntry != "" {
			s += ", entry " + v.CTEntry
		}
		s += ")"
	}
	if v.Rewritten != "" {
		s += "  rewritten to " + v.Rewritten
	}
	return s
}

func joinNames(names []string) string {
	var b bytes.Buffer
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n)
	}
	return b.String()
}

// A Backend decides verdicts for the frames of one conversation, in order,
// with one policy: each frame in its turn, at its time, arriving or (Out)
// sent by the host.
type Backend interface {
	// Run decides one frame: an arriving one with the policy, one the
	// host sends (f.Out) only as connection tracking records it. An error
	// means the backend could not run it.
	Run(f Frame) (Verdict, error)
	Close() error
}

// NewBackend returns the named backend for policy p of cfg.
func NewBackend(name string, cfg *policy.Config, p *policy.Policy) (Backend, error) {
	switch name {
	case BackendReference:
		return newReferenceBackend(cfg, p), nil
	case BackendKernel:
		return newKernelBackend(cfg, p)
	case BackendLab:
		return NewLabBackend(cfg, p, LabOptions{})
	}
	return nil, UnknownBackendError(name)
}

// UnknownBackendError is returned by NewBackend for a name it does not know.
type UnknownBackendError string

func (e UnknownBackendError) Error() string {
	return fmt.Sprintf("unknown backend %q (want one of %v)", string(e), Backends())
}

// VerdictOut is the verdict of a frame the host sent: no policy filters it.
const VerdictOut = "out"

// Replay runs every frame through b, in order: a conversation. A frame the
// host sent (Frame.Out) is not filtered: its line says "out".
func Replay(b Backend, frames []Frame) []Verdict {
	out := make([]Verdict, 0, len(frames))
	for _, f := range frames {
		v, err := b.Run(f)
		if err != nil {
			v = Verdict{Error: err.Error()}
		}
		v.Index = f.Index
		out = append(out, v)
	}
	return out
}

// outVerdict is the line of a frame the host sent, before connection
// tracking says what it made of it.
func outVerdict(frame []byte) Verdict {
	return Verdict{Verdict: VerdictOut, Summary: summarize(frame), Len: len(frame), Slot: -1}
}

// referenceBackend decides a conversation with one eval.Session, whose
// clock is the frames' times.
type referenceBackend struct {
	p *policy.Policy
	s *eval.Session
}

func newReferenceBackend(cfg *policy.Config, p *policy.Policy) *referenceBackend {
	return &referenceBackend{p: p, s: eval.NewSession(p, cfg.Conntrack)}
}

func (r *referenceBackend) Run(f Frame) (Verdict, error) {
	now := uint64(f.Time)
	if f.Out {
		v := outVerdict(f.Data)
		res := r.s.Egress(f.Data, now)
		if r.s.Tracks() {
			v.CTState, v.CTEntry = res.CTState.String(), referenceEntry(r.s, f.Data, res.Commit)
		}
		return v, nil
	}
	res := r.s.Ingress(f.Data, now)
	v := referenceVerdict(r.p, f.Data, res.Slot, res.Counted)
	if r.s.Tracks() {
		v.CTState, v.CTEntry = res.CTState.String(), referenceEntry(r.s, f.Data, res.CTCommit)
	}
	return v, nil
}

func (*referenceBackend) Close() error { return nil }

// referenceVerdict builds the Verdict of the reference's decision at slot
// with the count-rule slots counted: the policy's slot numbering, rules
// named from the policy.
func referenceVerdict(p *policy.Policy, frame []byte, slot int, counted []int) Verdict {
	v := Verdict{Summary: summarize(frame), Len: len(frame), Slot: slot, CountedSlots: counted}
	var a policy.Action
	switch slot {
	case p.DefaultSlot():
		a, v.Rule = p.Default, "default"
	case p.MalformedSlot():
		a, v.Rule = p.Malformed, "malformed"
	case p.NATExhaustedSlot(), p.NATFragmentSlot():
		a, v.Rule = policy.ActionDrop, eval.RuleNATExhausted
		if slot == p.NATFragmentSlot() {
			v.Rule = eval.RuleNATFragment
		}
	default:
		r := p.Rules[slot]
		a, v.Rule, v.To = r.Action, r.Name, r.To
	}
	v.Action, _ = a.XDP()
	v.Verdict = v.Action.String()
	for _, c := range counted {
		v.Counted = append(v.Counted, p.Rules[c].Name)
	}
	return v
}

// summarize is the one-line packet text shared by every backend.
func summarize(frame []byte) string {
	pkt, bad := eval.Parse(frame)
	if bad != nil {
		return fmt.Sprintf("malformed (%s), %d bytes", bad.Reason, len(frame))
	}
	return pkt.Summary()
}

// kernelBackend runs the compiled program under BPF_PROG_TEST_RUN and reads
// the decision back from the counters that moved. For a policy that
// tracks connections, the host's own frames run through its TC egress
// program, the table ages by the frames' times, and ct observes what
// tracking made of each frame.
type kernelBackend struct {
	prog  *runtime.TestProgram
	slots slotTable
	probe *linearProbe
	ct    *ctObserver // nil when the policy does not track
}

func newKernelBackend(cfg *policy.Config, p *policy.Policy) (*kernelBackend, error) {
	prog, err := loadProgram(cfg, p)
	if err != nil {
		return nil, err
	}
	return newKernelBackendOf(prog)
}

// newKernelBackendOf runs prog; it owns prog from then on.
func newKernelBackendOf(prog *runtime.TestProgram) (*kernelBackend, error) {
	probe, err := newLinearProbe()
	if err != nil {
		prog.Close()
		return nil, err
	}
	ct, err := newCTObserver(prog)
	if err != nil {
		probe.close()
		prog.Close()
		return nil, err
	}
	return &kernelBackend{prog: prog, slots: newSlotTable(prog.Manifest().Counters), probe: probe, ct: ct}, nil
}

// CompileError is a policy the compiler cannot express (a list too long to
// compare inline, say): the policy's problem, not the host's.
type CompileError struct{ Err error }

func (e CompileError) Error() string { return e.Err.Error() }
func (e CompileError) Unwrap() error { return e.Err }

// loadProgram compiles p and loads it into the kernel with its sets filled.
func loadProgram(cfg *policy.Config, p *policy.Policy) (*runtime.TestProgram, error) {
	art, err := compiler.Compile(cfg, p, compiler.Options{})
	if err != nil {
		return nil, CompileError{err}
	}
	var elf bytes.Buffer
	if err := art.WriteELF(&elf); err != nil {
		return nil, err
	}
	return runtime.NewTestProgram(elf.Bytes())
}

func (k *kernelBackend) Run(f Frame) (Verdict, error) {
	frame := f.Data
	if len(frame) >= runtime.MinTestFrame {
		seen, err := k.probe.seen(frame)
		if err != nil {
			return Verdict{}, err
		}
		if seen != len(frame) {
			return Verdict{}, SplitFrameError{Len: len(frame), Seen: seen}
		}
	}
	if k.ct == nil {
		if f.Out {
			return outVerdict(frame), nil
		}
		return k.decide(frame)
	}
	before, err := k.ct.before(f)
	if err != nil {
		return Verdict{}, err
	}
	var v Verdict
	if f.Out {
		v = outVerdict(frame)
		ret, err := k.prog.RunEgress(frame)
		if err != nil {
			if cut, ok := cutL3(frame); ok && errors.Is(err, unix.EINVAL) {
				return Verdict{}, EgressRefusedError{Len: len(frame), EtherType: cut}
			}
			return Verdict{}, err
		}
		if ret != tcActUnspec {
			return Verdict{}, fmt.Errorf("the egress program returned %d, not TC_ACT_UNSPEC (%d): it must let every frame go", ret, tcActUnspec)
		}
	} else if v, err = k.decide(frame); err != nil {
		return Verdict{}, err
	}
	v.CTState = before.status.String()
	if v.CTEntry, err = k.ct.after(before); err != nil {
		return Verdict{}, err
	}
	return v, nil
}

// decide runs an arriving frame through the XDP program.
func (k *kernelBackend) decide(frame []byte) (Verdict, error) {
	out, err := k.prog.Run(frame)
	if err != nil {
		return Verdict{}, err
	}
	v, err := k.slots.decide(frame, out.Moved)
	if err != nil {
		return Verdict{}, fmt.Errorf("%w (program returned %s)", err, out.Action)
	}
	if out.Action != v.Action {
		return Verdict{}, fmt.Errorf("program returned %s but counted the packet on %q (%s)", out.Action, v.Rule, v.Verdict)
	}
	return v, nil
}

// tcActUnspec is TC_ACT_UNSPEC, what the egress program returns for every
// frame: the packet goes on.
const tcActUnspec = -1

// EgressRefusedError is returned by the kernel backend for a frame the
// host sends whose IPv4 or IPv6 header is cut short: BPF_PROG_TEST_RUN
// refuses such a frame to a TC program (EINVAL), so the egress program
// cannot be run on it. The reference calls it malformed, which the egress
// program leaves alone; the differential test checks that it does.
type EgressRefusedError struct {
	Len       int
	EtherType uint16
}

func (e EgressRefusedError) Error() string {
	return fmt.Sprintf("BPF_PROG_TEST_RUN refuses a %d-byte frame of ether type %#04x to a TC program: its IP header is cut short", e.Len, e.EtherType)
}

// cutL3 reports whether frame is an untagged IPv4 or IPv6 frame too short
// for the fixed IP header, and its ether type.
func cutL3(frame []byte) (uint16, bool) {
	if len(frame) < 14 {
		return 0, false
	}
	et := uint16(frame[12])<<8 | uint16(frame[13])
	switch {
	case et == wire.EtherTypeIPv4 && len(frame) < 14+20, et == wire.EtherTypeIPv6 && len(frame) < 14+40:
		return et, true
	}
	return 0, false
}

// errNoDecision is returned by decide when no deciding counter moved.
var errNoDecision = errors.New("no deciding counter moved")

// slotTable is the artifact's counter slots by slot number: what the
// kernel and lab backends attribute a decision by.
type slotTable []*artifact.CounterSlot

func newSlotTable(t artifact.CounterTable) slotTable {
	var st slotTable
	for i := range t.Slots {
		s := &t.Slots[i]
		for len(st) <= s.Slot {
			st = append(st, nil)
		}
		st[s.Slot] = s
	}
	return st
}

// decide reads the decision on frame from the counter slots that moved
// while the program ran it, by slot number and the artifact's slot kinds:
// exactly one deciding slot (a terminal rule, the default or the
// malformed verdict), and any number of count rules.
func (st slotTable) decide(frame []byte, moved []int) (Verdict, error) {
	var decision *artifact.CounterSlot
	var counted []*artifact.CounterSlot
	for _, n := range moved {
		if n < 0 || n >= len(st) || st[n] == nil {
			return Verdict{}, fmt.Errorf("counter slot %d moved, the artifact names no such slot", n)
		}
		s := st[n]
		if !s.Kind.Decides() {
			counted = append(counted, s)
			continue
		}
		if decision != nil {
			return Verdict{}, fmt.Errorf("two deciding counters moved (slots %d and %d)", decision.Slot, s.Slot)
		}
		decision = s
	}
	if decision == nil {
		return Verdict{}, errNoDecision
	}
	slices.SortFunc(counted, func(a, b *artifact.CounterSlot) int { return a.Slot - b.Slot })
	v := Verdict{
		Summary: summarize(frame), Len: len(frame),
		Action: decision.Action, Verdict: decision.Action.String(),
		Rule: decision.Name, To: decision.To, Slot: decision.Slot,
	}
	for _, c := range counted {
		v.Counted = append(v.Counted, c.Name)
		v.CountedSlots = append(v.CountedSlots, c.Slot)
	}
	return v, nil
}

func (k *kernelBackend) Close() error {
	var errs []error
	if k.ct != nil {
		errs = append(errs, k.ct.close())
	}
	return errors.Join(append(errs, k.probe.close(), k.prog.Close())...)
}
