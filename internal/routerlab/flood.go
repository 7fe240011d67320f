package routerlab

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/internal/livegen"
)

// UDPFrame returns an Ethernet frame the client sends to the router for
// dst: UDP from ClientAddr:srcPort with payload bytes of zeros, full
// checksums, TTL 64, addressed to the router's inside MAC.
func (r *Router) UDPFrame(srcPort uint16, dst netip.AddrPort, payload int) []byte {
	b := make([]byte, 14+20+8+payload)
	copy(b[0:6], r.Inside.MAC)
	copy(b[6:12], r.ClientEnd.MAC)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+payload))
	ip[8], ip[9] = 64, 17
	src, d := ClientAddr.As4(), dst.Addr().As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(0, ip))
	udp := b[34:]
	binary.BigEndian.PutUint16(udp[0:], srcPort)
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(8+payload))
	var pseudo uint32
	for _, w := range [][]byte{src[:], d[:]} {
		pseudo += uint32(binary.BigEndian.Uint16(w[0:])) + uint32(binary.BigEndian.Uint16(w[2:]))
	}
	pseudo += 17 + uint32(8+payload)
	c := checksum(pseudo, udp)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return b
}

// checksum is the Internet checksum of b, starting from sum.
func checksum(sum uint32, b []byte) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// maxBatch is the largest batch of live-frames mode.
const maxBatch = 256

// Flood is one run from the client through the router.
type Flood struct {
	livegen.Result
	// Delivered is how many frames reached the server's veth (its pass
	// program ran on them).
	Delivered uint64
}

// Ratio is the share of the frames sent that reached the server.
func (f Flood) Ratio() float64 {
	if f.Sent == 0 {
		return 0
	}
	return float64(f.Delivered) / float64(f.Sent)
}

// Flood sends frame from the client's veth with livegen, at most frames
// times and for at most d, and counts what reached the server. The
// router's inside veth must run an XDP program (an applied policy, or
// AttachPass for the stack's baselines): a veth takes such frames only
// then.
//
// Every frame is a fresh copy (livegen.Options.Fresh): the router
// rewrites the frames it forwards (MAC addresses, TTL, and NAT's
// addresses) in the pages live-frames mode recycles, so that without it
// only the first batch arrives as sent. A test run costs about 25 ms of
// setup on this kind of machine, so this sends some 10,000 frames a
// second: enough to count what a router delivers, not to measure its
// rate.
func (r *Router) Flood(ctx context.Context, frame []byte, frames uint64, d time.Duration) (Flood, error) {
	before, err := livegen.ReadVethStats(r.Server.Name, ServerIf)
	if err != nil {
		return Flood{}, err
	}
	res, err := livegen.Send(ctx, livegen.Options{Netns: r.Client.Name, Interface: ClientIf, Frame: frame, Frames: frames, Duration: d, Fresh: true, BatchSize: maxBatch})
	if err != nil {
		return Flood{}, fmt.Errorf("flood from the client: %w", err)
	}
	// What the stack forwards may still be on its way.
	var after livegen.VethStats
	for range 20 {
		time.Sleep(10 * time.Millisecond)
		if after, err = livegen.ReadVethStats(r.Server.Name, ServerIf); err != nil {
			return Flood{}, err
		}
		if after.XDPPackets-before.XDPPackets >= res.Sent {
			break
		}
	}
	return Flood{Result: res, Delivered: after.XDPPackets - before.XDPPackets}, nil
}

// restoreProgram is an XDP program that writes frame over the frame it
// runs on and drops it; a frame of another length is dropped as it is.
func restoreProgram(frame []byte) (*ebpf.Program, error) {
	n := len(frame)
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, int32(n)),
		asm.JGT.Reg(asm.R4, asm.R3, "drop"), // the verifier learns the bound
		asm.JNE.Reg(asm.R4, asm.R3, "drop"), // and the length must be frame's
	}
	off := 0
	for ; off+8 <= n; off += 8 {
		insns = append(insns,
			asm.LoadImm(asm.R5, int64(binary.NativeEndian.Uint64(frame[off:])), asm.DWord),
			asm.StoreMem(asm.R2, int16(off), asm.R5, asm.DWord))
	}
	for ; off+4 <= n; off += 4 {
		insns = append(insns, asm.StoreImm(asm.R2, int16(off), int64(int32(binary.NativeEndian.Uint32(frame[off:]))), asm.Word))
	}
	for ; off < n; off++ {
		insns = append(insns, asm.StoreImm(asm.R2, int16(off), int64(frame[off]), asm.Byte))
	}
	insns = append(insns, asm.Mov.Imm(asm.R0, 1).WithSymbol("drop"), asm.Return()) // XDP_DROP
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xdpc_lab_restore", Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		return nil, fmt.Errorf("load the restoring sink: %w", err)
	}
	return p, nil
}

// FloodRate sends frame from the client's veth at full rate (livegen),
// at most frames times and for at most d, and counts what reached the
// server, whose veth runs, meanwhile, a sink that writes the frame as
// sent back over every frame it gets and drops it. Live-frames mode
// recycles the pages of its frames within a run; a router rewrites what
// it forwards in place, and the sink undoes it, so each page comes back
// to the generator as it was sent when the router neither copied it nor
// dropped it after a rewrite (a redirect or forward that found the far
// ring full: that page's later frames are lost, and counted as such).
// Unlike Flood it measures a rate: compare rates of one run to
// another's, interleaved, as ratios.
//
// The generator runs on cpu when it is not negative.
func (r *Router) FloodRate(ctx context.Context, frame []byte, frames uint64, d time.Duration, cpu int) (Flood, error) {
	sink, err := restoreProgram(frame)
	if err != nil {
		return Flood{}, err
	}
	defer sink.Close()
	l := r.links[r.ServerEnd.key()]
	if l == nil {
		return Flood{}, fmt.Errorf("the server's veth has no pass program to replace")
	}
	if err := l.Update(sink); err != nil {
		return Flood{}, fmt.Errorf("put the restoring sink on the server's veth: %w", err)
	}
	defer l.Update(r.pass)
	before, err := livegen.ReadVethStats(r.Server.Name, ServerIf)
	if err != nil {
		return Flood{}, err
	}
	res, err := livegen.Send(ctx, livegen.Options{Netns: r.Client.Name, Interface: ClientIf, Frame: frame, Frames: frames, Duration: d, BatchSize: maxBatch, Pin: cpu >= 0, CPU: cpu})
	if err != nil {
		return Flood{}, fmt.Errorf("flood from the client: %w", err)
	}
	time.Sleep(20 * time.Millisecond) // the last frames on their way
	after, err := livegen.ReadVethStats(r.Server.Name, ServerIf)
	if err != nil {
		return Flood{}, err
	}
	return Flood{Result: res, Delivered: after.XDPPackets - before.XDPPackets}, nil
}

// ThreadedNAPI switches the NAPI instances of a veth end to kernel
// threads of their own (/sys/class/net/NAME/threaded) and pins those
// threads to cpu. A veth otherwise polls in the softirq of the CPU that
// queued the frames: the generator's, so that the generator and the
// router take turns and the generator's cost bounds the rate measured.
// Threaded and pinned away from the generator (FloodRate's cpu), the
// router's receive (its XDP program, and the stack behind it) runs
// beside the generator, and the frames it cannot keep up with overflow
// its ring (the client's XmitErrors).
func (r *Router) ThreadedNAPI(e End, cpu int) error {
	before, err := napiThreads(e.Name)
	if err != nil {
		return err
	}
	// ip netns exec mounts the namespace's own sysfs.
	cmd := exec.Command("ip", "netns", "exec", e.Netns.Name, "sh", "-c", "echo 1 > /sys/class/net/"+e.Name+"/threaded")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("threaded NAPI of %s in %s: %w: %s", e.Name, e.Netns.Name, err, strings.TrimSpace(string(out)))
	}
	after, err := napiThreads(e.Name)
	if err != nil {
		return err
	}
	var set unix.CPUSet
	set.Set(cpu)
	n := 0
	for pid := range after {
		if before[pid] {
			continue
		}
		if err := unix.SchedSetaffinity(pid, &set); err != nil {
			return fmt.Errorf("pin the NAPI thread %d of %s to CPU %d: %w", pid, e.Name, cpu, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("threaded NAPI of %s in %s: no new NAPI thread", e.Name, e.Netns.Name)
	}
	return nil
}

// napiThreads are the kernel's NAPI threads of interfaces named ifname,
// in any namespace ("napi/IFNAME-ID"), by pid.
func napiThreads(ifname string) (map[int]bool, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	pids := map[int]bool{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm"))
		if err == nil && strings.HasPrefix(string(b), "napi/"+ifname+"-") {
			pids[pid] = true
		}
	}
	return pids, nil
}
