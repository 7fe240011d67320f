// Package livegen sends frames into a veth pair as fast as the kernel can
// make them, for tests and benchmarks of programs attached to the far end.
//
// It runs a two-instruction XDP program that returns XDP_TX under
// BPF_PROG_TEST_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES, Linux
// 5.18): the kernel runs it Repeat times on copies of one frame, "received"
// on the sending veth (xdp_md.ingress_ifindex), and turns every XDP_TX into
// a transmission out of that veth, in batches, with no socket, no skb and no
// copy through user space. The frames arrive at the peer veth, where the
// program under test is attached. A veth accepts such frames only while its
// peer has an XDP program attached: without one they are freed unsent and no
// counter says so.
//
// How many frames arrived is the receiver's business: Send returns how many
// repetitions the kernel reported done, a lower bound when a signal
// restarted a run (Result.Interrupted), and a veth whose receive ring (256
// frames) is full refuses frames. ReadVethStats reads the veth's own
// counters, which say exactly how many frames its XDP program ran on.
//
// Errors name the operation and wrap the cause; a kernel without live-frames
// mode fails Send with an error wrapping the kernel's EINVAL.
package livegen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/internal/nsrun"
)

// Options say where to send, what and for how long. Frames and Duration
// both bound a run: it ends at whichever comes first (or when the context
// is done), within about a tenth of a second, so a generator always stops
// on its own.
type Options struct {
	// Netns is the network namespace of Interface, a name under
	// /run/netns; "" is the caller's.
	Netns string
	// Interface is the sending veth; its peer receives the frames.
	Interface string
	// Frame is sent as it is: Ethernet header first, at least 14 bytes.
	Frame []byte
	// Frames is how many frames to send at most; it must be positive.
	Frames uint64
	// Duration is how long to send at most; it must be positive.
	Duration time.Duration
	// BatchSize is how many frames the kernel makes and transmits at a
	// time; 0 is the kernel's default (64).
	BatchSize uint32
	// Fresh makes every frame a fresh copy of Frame. Within one test run
	// the kernel recycles the pages of the frames it made (as many as a
	// batch) without copying Frame into them again, so that what a
	// receiver wrote into a frame is what a later one carries: the stack
	// forwarding a frame an XDP program passed rewrites its Ethernet
	// header and TTL in place, and NAT its addresses. Fresh runs one
	// batch per run, at the cost of a system call per batch.
	Fresh bool
	// Pin runs the sending thread on CPU alone while it sends, so that
	// what receives the frames (a NAPI thread pinned elsewhere) does not
	// share its CPU.
	Pin bool
	CPU int
}

// Result is what a run sent.
type Result struct {
	// Sent is how many frames the kernel reported made and transmitted
	// (or refused by a full ring: see VethStats.XmitErrors).
	Sent uint64
	// Interrupted counts runs a signal cut short and that were started
	// again from the beginning: each sent an unknown number of frames
	// besides those in Sent.
	Interrupted int
	Elapsed     time.Duration
}

// Rate is frames per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// xdpMD is struct xdp_md, the context of an XDP program.
type xdpMD struct {
	Data, DataEnd, DataMeta uint32
	IngressIfindex          uint32
	RxQueueIndex            uint32
	EgressIfindex           uint32
}

// sliceTarget is about how long one BPF_PROG_TEST_RUN takes: every run
// pays a fixed setup and teardown (tens of milliseconds: the kernel makes
// and destroys a page pool), so runs must be long for the rate to be the
// datapath's, and short enough for a run to end soon after its deadline or
// context.
const sliceTarget = 100 * time.Millisecond

// Send transmits opts.Frame out of opts.Interface until opts.Frames are
// sent, opts.Duration has passed or ctx is done.
func Send(ctx context.Context, opts Options) (Result, error) {
	if opts.Frames == 0 || opts.Duration <= 0 {
		return Result{}, errors.New("live frames: give both a number of frames and a duration")
	}
	if len(opts.Frame) < 14 {
		return Result{}, fmt.Errorf("live frames: frame of %d bytes is shorter than an Ethernet header", len(opts.Frame))
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "livegen_tx",
		Type: ebpf.XDP,
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 3), // XDP_TX
			asm.Return(),
		},
		License: "GPL",
	})
	if err != nil {
		return Result{}, fmt.Errorf("live frames: load transmitter: %w", err)
	}
	defer prog.Close()

	var res Result
	err = inNetns(opts.Netns, func() error {
		// ingress_ifindex is resolved in the calling thread's namespace.
		ifc, err := net.InterfaceByName(opts.Interface)
		if err != nil {
			return fmt.Errorf("live frames: find %s: %w", opts.Interface, err)
		}
		if opts.Pin {
			var was, set unix.CPUSet
			if err := unix.SchedGetaffinity(0, &was); err != nil {
				return fmt.Errorf("live frames: CPU affinity: %w", err)
			}
			set.Set(opts.CPU)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				return fmt.Errorf("live frames: pin to CPU %d: %w", opts.CPU, err)
			}
			defer unix.SchedSetaffinity(0, &was)
		}
		res, err = send(ctx, prog, ifc.Index, opts)
		return err
	})
	return res, err
}

// defaultBatch is the kernel's batch size in live-frames mode.
const defaultBatch = 64

// send runs prog in slices of about sliceTarget each, sized by the
// slices before.
func send(ctx context.Context, prog *ebpf.Program, ifindex int, opts Options) (Result, error) {
	var res Result
	start := time.Now()
	deadline := start.Add(opts.Duration)
	repeat := uint64(1 << 14)
	md := xdpMD{DataEnd: uint32(len(opts.Frame)), IngressIfindex: uint32(ifindex)}
	for res.Sent < opts.Frames && ctx.Err() == nil {
		now := time.Now()
		left := deadline.Sub(now)
		if left <= 0 {
			break
		}
		n := min(repeat, opts.Frames-res.Sent)
		if opts.Fresh {
			n = min(uint64(cmp.Or(opts.BatchSize, defaultBatch)), opts.Frames-res.Sent)
		}
		_, err := prog.Run(&ebpf.RunOptions{
			Data:      opts.Frame,
			Context:   md,
			Repeat:    uint32(n),
			Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
			BatchSize: opts.BatchSize,
			// Called when a signal restarted the run.
			Reset: func() { res.Interrupted++ },
		})
		if err != nil {
			res.Elapsed = time.Since(start)
			return res, fmt.Errorf("live frames out of %s: %w", opts.Interface, err)
		}
		res.Sent += n
		took := max(time.Since(now), time.Microsecond)
		switch {
		case took < sliceTarget/2:
			repeat = min(n*2, 1<<31)
		case took > sliceTarget*2:
			repeat = max(n/2, 64)
		}
		// took/n overestimates the cost of a frame (it includes the
		// fixed cost), so this stays short of the deadline.
		if left -= took; left < time.Duration(repeat)*took/time.Duration(n) {
			repeat = max(uint64(float64(n)*float64(left)/float64(took)), 64)
		}
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// inNetns runs fn on a thread in the named network namespace ("" is the
// caller's).
func inNetns(name string, fn func() error) error { return nsrun.Named(name, fn) }
