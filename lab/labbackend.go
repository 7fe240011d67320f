package lab

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/runtime"
)

// LabOptions configures the lab backend.
type LabOptions struct {
	// Topology is TopologyHost (the default) or TopologyRouter.
	Topology string
	// Timeout bounds the wait for one frame's counters to move and, when it
	// passed, for it to arrive (default 1 s).
	Timeout time.Duration
}

// ShortFrameError is returned by the lab backend for a frame shorter than an
// Ethernet header: no kernel path delivers one to an XDP program (AF_PACKET
// and BPF_PROG_TEST_RUN both refuse it), so the lab cannot observe a
// verdict on it and does not invent one.
type ShortFrameError int

func (e ShortFrameError) Error() string {
	return fmt.Sprintf("a %d-byte frame is shorter than an Ethernet header; no kernel path delivers it to XDP", int(e))
}

// FrameSizeError is returned by the lab backend for a frame longer than the
// sender's veth carries (its MTU plus an Ethernet header and one VLAN tag):
// the kernel drops it before the DUT's XDP program could see it.
type FrameSizeError struct{ Len, Max int }

func (e FrameSizeError) Error() string {
	return fmt.Sprintf("a %d-byte frame is longer than the %d bytes the lab's veth delivers", e.Len, e.Max)
}

// labBackend runs frames through the compiled program attached to a veth in
// a throwaway topology. Frames go one at a time: each is injected from the
// sender's side, the program's counters are polled until its decision
// shows, and a passed frame is awaited where it leaves the DUT (its stack,
// or the server behind the router). The counters that moved are the
// decision, as in the kernel backend; the frame's arrival or absence
// confirms it.
//
// Only the injected frame's own fate counts. In the router topology the
// router also sends frames of its own (answers to the frames it keeps, ICMP
// errors, ARP): those reaching the server are passed over, and the client's
// veth drops everything it receives, so its stack never answers the router
// through the DUT.
//
// A frame the host sends (Frame.Out) is sent out of the DUT's interface
// the way the host's own traffic goes, through its TC egress hook, and
// awaited as it leaves. For a policy that tracks connections the
// program's TC egress program is attached there with the runtime's
// attach, as apply attaches it (unpinned: it goes with the lab);
// the table ages by the frames' times and ct observes what tracking made
// of each frame, as in the kernel backend.
type labBackend struct {
	prog  *runtime.TestProgram
	slots slotTable
	topo  *Topology
	xdp   link.Link
	inj   *injector
	// out sends the host's own frames out of the DUT's interface, and sent
	// captures what leaves it.
	out    *injector
	sent   *capture
	egress *runtime.EgressLink
	ct     *ctObserver
	// recv captures where passed frames leave: the DUT (host) or the server
	// (router). ingress, in the router topology only, captures what the
	// program passed into the router's stack.
	recv    *capture
	ingress *capture
	timeout time.Duration
	// mute is the drop program on the router topology's client.
	mute    link.Link
	muteXDP *ebpf.Program
	// targets capture what leaves through each redirect target; sinks are
	// the pass programs on their far ends.
	targets map[string]*capture
	sinks   []link.Link
	sinkXDP *ebpf.Program

	closeOnce sync.Once
	closeErr  error
}

// NewLabBackend builds a topology, attaches p's compiled program to its DUT
// and returns a backend that replays frames through it. Close tears it all
// down.
func NewLabBackend(cfg *policy.Config, p *policy.Policy, opts LabOptions) (Backend, error) {
	prog, err := loadProgram(cfg, p)
	if err != nil {
		return nil, err
	}
	return newLabBackendOf(prog, opts)
}

// newLabBackendOf attaches prog in a new topology; it owns prog from then
// on.
func newLabBackendOf(prog *runtime.TestProgram, opts LabOptions) (b Backend, err error) {
	if opts.Topology == "" {
		opts.Topology = TopologyHost
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	l := &labBackend{prog: prog, slots: newSlotTable(prog.Manifest().Counters), timeout: opts.Timeout}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if l.topo, err = NewTopology(opts.Topology); err != nil {
		return nil, err
	}
	if l.xdp, err = attachXDP(l.topo.DUT, prog.Program()); err != nil {
		return nil, err
	}
	if l.recv, err = newCapture(l.topo.Receiver.ns.handle, l.topo.Receiver.Index); err != nil {
		return nil, fmt.Errorf("capture on %s: %w", l.topo.Receiver.Name, err)
	}
	if l.inj, err = newInjector(l.topo.Sender.ns.handle, l.topo.Sender.Index, true); err != nil {
		return nil, fmt.Errorf("inject on %s: %w", l.topo.Sender.Name, err)
	}
	if err := l.sendFromDUT(); err != nil {
		return nil, err
	}
	if l.topo.Receiver != l.topo.DUT {
		if err := l.followThroughRouter(); err != nil {
			return nil, err
		}
	}
	if err := l.addRedirectTargets(); err != nil {
		return nil, err
	}
	return l, nil
}

// followThroughRouter sets the router topology up to tell the injected
// frame's fate from the router's own traffic: it captures the router's
// ingress, where a passed frame shows before the router decides what to do
// with it; it ignores the router's own frames at the server; and it mutes
// the client, so that no frame the router sends back (an echo reply, an
// ICMP error, a frame routed back out) makes the client's stack send one
// more through the DUT's program.
func (l *labBackend) followThroughRouter() error {
	var err error
	if l.ingress, err = newCapture(l.topo.DUT.ns.handle, l.topo.DUT.Index); err != nil {
		return fmt.Errorf("capture on %s: %w", l.topo.DUT.Name, err)
	}
	l.recv.ignore = l.topo.routerOwn
	if l.muteXDP, err = newActionProgram("xdpc_lab_mute", artifact.ActionDrop); err != nil {
		return fmt.Errorf("load the client's drop program: %w", err)
	}
	if l.mute, err = attachXDP(l.topo.Sender, l.muteXDP); err != nil {
		return err
	}
	return nil
}

// sendFromDUT sets the DUT up to send the host's own frames: a socket that
// sends through the qdisc layer and so the TC egress hook, a capture of
// what leaves the DUT, and for a policy that tracks connections its egress
// program attached there and the observer of its table.
func (l *labBackend) sendFromDUT() error {
	dut := l.topo.DUT
	var err error
	if l.out, err = newInjector(dut.ns.handle, dut.Index, false); err != nil {
		return fmt.Errorf("send from %s: %w", dut.Name, err)
	}
	if l.sent, err = newCapture(dut.ns.handle, dut.Index); err != nil {
		return fmt.Errorf("capture on %s: %w", dut.Name, err)
	}
	l.sent.outgoing = true
	if l.prog.Egress() == nil {
		return nil
	}
	l.egress, err = runtime.AttachEgress(runtime.EgressOptions{
		Netns: dut.Namespace(), Interface: dut.Name, Mechanism: runtime.EgressAuto, Program: l.prog.Egress(),
	})
	if err != nil {
		return err
	}
	l.ct, err = newCTObserver(l.prog)
	return err
}

// newActionProgram loads an XDP program that returns action for every frame.
func newActionProgram(name string, action artifact.Action) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: name, Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, int32(action)), asm.Return()},
	})
}

// addRedirectTargets gives the DUT an interface for every redirect target
// of the policy, points the program's redirects at them and captures what
// leaves through each. A veth hands redirected frames to its peer only when
// the peer runs XDP, so each far end gets a program that passes everything.
func (l *labBackend) addRedirectTargets() error {
	redirects := l.prog.Manifest().Redirects
	if len(redirects) == 0 {
		return nil
	}
	var err error
	l.sinkXDP, err = newActionProgram("xdpc_lab_sink", artifact.ActionPass)
	if err != nil {
		return fmt.Errorf("load the redirect targets' pass program: %w", err)
	}
	l.targets = map[string]*capture{}
	for _, r := range redirects {
		port, err := l.topo.AddRedirectTarget(r.Interface)
		if err != nil {
			return fmt.Errorf("add redirect target %s: %w", r.Interface, err)
		}
		lk, err := attachXDP(port, l.sinkXDP)
		if err != nil {
			return err
		}
		l.sinks = append(l.sinks, lk)
		if l.targets[r.Interface], err = newCapture(port.ns.handle, port.Index); err != nil {
			return fmt.Errorf("capture on %s: %w", port.Name, err)
		}
	}
	if err := l.prog.RedirectIn(l.topo.DUT.Namespace()); err != nil {
		return fmt.Errorf("point redirects at the lab's targets: %w", err)
	}
	return nil
}

// Topology returns the topology the backend runs in.
func (l *labBackend) Topology() *Topology { return l.topo }

func (l *labBackend) Run(f Frame) (Verdict, error) {
	frame := f.Data
	if len(frame) < runtime.MinTestFrame {
		return Verdict{}, ShortFrameError(len(frame))
	}
	if limit := l.topo.Sender.MTU + 14 + 4; len(frame) > limit {
		return Verdict{}, FrameSizeError{Len: len(frame), Max: limit}
	}
	if err := l.expectQuiet("before the frame was sent"); err != nil {
		return Verdict{}, err
	}
	var before ctBefore
	if l.ct != nil {
		var err error
		if before, err = l.ct.before(f); err != nil {
			return Verdict{}, err
		}
	}
	var v Verdict
	var err error
	if f.Out {
		v, err = l.sendOut(frame)
	} else {
		v, err = l.decide(frame)
	}
	if err != nil || l.ct == nil {
		return v, err
	}
	v.CTState = before.status.String()
	if v.CTEntry, err = l.ct.after(before); err != nil {
		return Verdict{}, err
	}
	return v, nil
}

// sendOut sends a frame of the host's own out of the DUT's interface and
// waits until it leaves, past the TC egress hook: the egress program lets
// every frame go. In the router topology frames the router sends of itself
// out of the same interface are passed over; in the host topology nothing
// else may leave.
func (l *labBackend) sendOut(frame []byte) (Verdict, error) {
	if err := l.out.send(frame); err != nil {
		return Verdict{}, err
	}
	deadline := time.Now().Add(l.timeout)
	for {
		got, err := l.sent.next(deadline)
		if errors.Is(err, errNoFrame) {
			return Verdict{}, fmt.Errorf("sent out of %s, the frame did not leave it within %s", l.topo.DUT.Name, l.timeout)
		}
		if err != nil {
			return Verdict{}, err
		}
		if bytes.Equal(got, frame) {
			return outVerdict(frame), nil
		}
		if l.topo.Kind == TopologyHost {
			return Verdict{}, fmt.Errorf("an unexpected frame left %s while the host's frame was sent: %s", l.topo.DUT.Name, summarize(got))
		}
	}
}

// decide injects an arriving frame and follows it to its fate.
func (l *labBackend) decide(frame []byte) (Verdict, error) {
	before, err := l.prog.Counters()
	if err != nil {
		return Verdict{}, err
	}
	if err := l.inj.send(frame); err != nil {
		return Verdict{}, err
	}
	deadline := time.Now().Add(l.timeout)
	v, err := l.awaitDecision(frame, before, deadline)
	if err != nil {
		return Verdict{}, err
	}
	recv, where := l.recv, l.topo.Receiver.Name
	switch v.Action {
	case artifact.ActionPass:
		if l.ingress != nil {
			return l.awaitRouted(v, frame, deadline)
		}
	case artifact.ActionRedirect:
		recv, where = l.targets[v.To], l.topo.Targets[v.To].Name
	default:
		return v, nil
	}
	got, err := recv.next(deadline)
	if errors.Is(err, errNoFrame) {
		return Verdict{}, fmt.Errorf("counted as %s by %q but did not reach %s within %s", v.Verdict, v.Rule, where, l.timeout)
	}
	if err != nil {
		return Verdict{}, err
	}
	if !bytes.Equal(got, frame) {
		v.Rewritten = summarize(got)
	}
	return v, nil
}

// awaitRouted follows a frame the program passed into the router's stack:
// it must show on the router's ingress, and is then awaited at the server
// until deadline. One that does not arrive is a frame the router kept: it
// delivered it to itself (a ping, an ARP request), answered it with an ICMP
// error (TTL expired, no route, no neighbour) or discarded it. Its fate as
// far as the policy goes is the pass, so its line is the pass, without a
// rewritten frame.
func (l *labBackend) awaitRouted(v Verdict, frame []byte, deadline time.Time) (Verdict, error) {
	_, err := l.ingress.next(deadline)
	if errors.Is(err, errNoFrame) {
		return Verdict{}, fmt.Errorf("counted as %s by %q but did not reach the router's stack on %s within %s", v.Verdict, v.Rule, l.topo.DUT.Name, l.timeout)
	}
	if err != nil {
		return Verdict{}, err
	}
	got, err := l.recv.next(deadline)
	if errors.Is(err, errNoFrame) {
		return v, nil
	}
	if err != nil {
		return Verdict{}, err
	}
	if !bytes.Equal(got, frame) {
		v.Rewritten = summarize(got)
	}
	return v, nil
}

// awaitDecision polls the counters until a deciding slot moved, or until
// deadline.
func (l *labBackend) awaitDecision(frame []byte, before []runtime.Counter, deadline time.Time) (Verdict, error) {
	for {
		after, err := l.prog.Counters()
		if err != nil {
			return Verdict{}, err
		}
		moved := runtime.MovedSlots(before, after)
		v, err := l.slots.decide(frame, moved)
		if err == nil {
			return v, nil
		}
		if len(moved) > 0 && !errors.Is(err, errNoDecision) {
			return Verdict{}, err
		}
		if time.Now().After(deadline) {
			return Verdict{}, fmt.Errorf("the program's counters did not show a decision within %s", l.timeout)
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// expectQuiet fails if a frame arrived at the receiver that the backend
// did not wait for: a frame the program dropped that reached the stack
// anyway, or traffic the lab did not send.
func (l *labBackend) expectQuiet(when string) error {
	check := func(c *capture, where string) error {
		got, err := c.next(time.Time{})
		if errors.Is(err, errNoFrame) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("an unexpected frame reached %s %s: %s", where, when, summarize(got))
	}
	if err := check(l.recv, l.topo.Receiver.Name); err != nil {
		return err
	}
	// Whatever the DUT's stack sent of itself would go through its egress
	// program, into the table; in the host topology it sends nothing.
	if l.sent != nil && l.topo.Kind == TopologyHost {
		if err := check(l.sent, "the wire from "+l.topo.DUT.Name); err != nil {
			return err
		}
	}
	if l.ingress != nil {
		if err := check(l.ingress, l.topo.DUT.Name); err != nil {
			return err
		}
	}
	for name, c := range l.targets {
		if err := check(c, l.topo.Targets[name].Name); err != nil {
			return err
		}
	}
	return nil
}

// Counters reads the attached program's counters.
func (l *labBackend) Counters() ([]runtime.Counter, error) { return l.prog.Counters() }

// Close detaches the program, closes the sockets and deletes the topology.
// Calls after the first return the first's result.
func (l *labBackend) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *labBackend) close() error {
	var errs []error
	if l.inj != nil {
		l.inj.close()
	}
	if l.out != nil {
		l.out.close()
	}
	if l.sent != nil {
		l.sent.close()
	}
	if l.ct != nil {
		errs = append(errs, l.ct.close())
	}
	if l.egress != nil {
		errs = append(errs, l.egress.Close())
	}
	if l.recv != nil {
		l.recv.close()
	}
	if l.ingress != nil {
		l.ingress.close()
	}
	if l.mute != nil {
		errs = append(errs, l.mute.Close())
	}
	if l.muteXDP != nil {
		errs = append(errs, l.muteXDP.Close())
	}
	for _, c := range l.targets {
		c.close()
	}
	for _, lk := range l.sinks {
		errs = append(errs, lk.Close())
	}
	if l.sinkXDP != nil {
		errs = append(errs, l.sinkXDP.Close())
	}
	if l.xdp != nil {
		errs = append(errs, l.xdp.Close())
	}
	if l.topo != nil {
		errs = append(errs, l.topo.Close())
	}
	if l.prog != nil {
		errs = append(errs, l.prog.Close())
	}
	return errors.Join(errs...)
}
