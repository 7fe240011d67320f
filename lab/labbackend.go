package lab

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf/link"

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
type labBackend struct {
	p       *policy.Policy
	prog    *runtime.TestProgram
	topo    *Topology
	xdp     link.Link
	inj     *injector
	recv    *capture
	timeout time.Duration

	closeOnce sync.Once
	closeErr  error
}

// NewLabBackend builds a topology, attaches p's compiled program to its DUT
// and returns a backend that replays frames through it. Close tears it all
// down.
func NewLabBackend(cfg *policy.Config, p *policy.Policy, opts LabOptions) (b Backend, err error) {
	if opts.Topology == "" {
		opts.Topology = TopologyHost
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	prog, err := loadProgram(cfg, p)
	if err != nil {
		return nil, err
	}
	l := &labBackend{p: p, prog: prog, timeout: opts.Timeout}
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
	if l.inj, err = newInjector(l.topo.Sender.ns.handle, l.topo.Sender.Index); err != nil {
		return nil, fmt.Errorf("inject on %s: %w", l.topo.Sender.Name, err)
	}
	return l, nil
}

// Topology returns the topology the backend runs in.
func (l *labBackend) Topology() *Topology { return l.topo }

func (l *labBackend) Run(frame []byte) (Verdict, error) {
	if len(frame) < runtime.MinTestFrame {
		return Verdict{}, ShortFrameError(len(frame))
	}
	if limit := l.topo.Sender.MTU + 14 + 4; len(frame) > limit {
		return Verdict{}, FrameSizeError{Len: len(frame), Max: limit}
	}
	if err := l.expectQuiet("before the frame was sent"); err != nil {
		return Verdict{}, err
	}
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
	if v.Action != policy.ActionPass {
		return v, nil
	}
	got, err := l.recv.next(deadline)
	if errors.Is(err, errNoFrame) {
		return Verdict{}, fmt.Errorf("counted as passed by %q but did not reach %s within %s", v.Rule, l.topo.Receiver.Name, l.timeout)
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
		moved := movedSlots(before, after)
		v, err := decide(l.p, frame, moved)
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
	got, err := l.recv.next(time.Time{})
	if errors.Is(err, errNoFrame) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("an unexpected frame reached %s %s: %s", l.topo.Receiver.Name, when, summarize(got))
}

// movedSlots returns the slots whose packet count differs, ascending.
func movedSlots(before, after []runtime.Counter) []int {
	var moved []int
	for i := range after {
		if i >= len(before) || before[i].Packets != after[i].Packets {
			moved = append(moved, i)
		}
	}
	return moved
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
	if l.recv != nil {
		l.recv.close()
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
