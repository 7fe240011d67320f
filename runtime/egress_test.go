package runtime_test

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/internal/cttest"
	"github.com/xdpc/xdpc/runtime"
)

func tcUnspec() asm.Instructions { return asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()} }

func isNotSupported(err error) bool { return errors.Is(err, ebpf.ErrNotSupported) }

// egressMechanisms are the ways to attach an egress program a test runs
// with: what ApplyOptions.Egress asks, and what it gets on this kernel.
func egressMechanisms(t *testing.T) []struct{ ask, want string } {
	auto := runtime.EgressClsact
	if haveTCX(t) {
		auto = runtime.EgressTCX
	}
	return []struct{ ask, want string }{
		{runtime.EgressAuto, auto},
		{runtime.EgressClsact, runtime.EgressClsact},
		{runtime.EgressTCX, runtime.EgressTCX},
	}
}

func (e *env) applyEgress(t *testing.T, elf []byte, mech string) *runtime.ApplyReport {
	t.Helper()
	rep, err := runtime.Apply(elf, runtime.ApplyOptions{Options: e.opts, Egress: mech})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return rep
}

// TestEgressAttachReplaceDetach applies a policy that tracks with each
// way of attaching its egress program: apply attaches it to dut0 beside
// the XDP program (tcx where the kernel has it, else clsact), status
// shows it as the kernel runs it, the host's own datagrams land in the
// namespace's table, a re-apply replaces it in place (the same tcx link,
// the same filter handle), a policy that no longer tracks removes it and
// the table, and detach leaves dut0's egress as it found it. A kernel
// without tcx refuses an explicit tcx, changing nothing.
func TestEgressAttachReplaceDetach(t *testing.T) {
	for _, m := range egressMechanisms(t) {
		t.Run(m.ask, func(t *testing.T) {
			e := newEnv(t)
			host := e.hostSender(t)
			v1 := trackingELF(t, cttest.Options{Mark: 1})
			v2 := trackingELF(t, cttest.Options{Mark: 2})
			if m.want == runtime.EgressTCX && !haveTCX(t) {
				_, err := runtime.Apply(v1, runtime.ApplyOptions{Options: e.opts, Egress: m.ask})
				if !isNotSupported(err) {
					t.Fatalf("apply with tcx on a kernel without: %v, want ErrNotSupported", err)
				}
				if st := e.status(t); len(st) != 0 {
					t.Errorf("status after the refused apply: %+v", st)
				}
				if k := e.kernelEgress(t, "dut0"); len(k.programs()) != 0 || k.Clsact {
					t.Errorf("dut0's egress after the refused apply: %+v", k)
				}
				return
			}

			rep := e.applyEgress(t, v1, m.ask)
			att := rep.Attachments[0]
			if att.Egress == nil || att.Egress.Mechanism != m.want {
				t.Fatalf("apply attached egress %+v, want %s", att.Egress, m.want)
			}
			st := e.status(t)[0]
			if st.Egress == nil || st.Egress.ProgramID != att.Egress.ProgramID || st.Egress.Gone {
				t.Fatalf("status egress %+v, want program %d", st.Egress, att.Egress.ProgramID)
			}
			k := e.kernelEgress(t, "dut0")
			if got := k.programs(); !slices.Equal(got, []ebpf.ProgramID{ebpf.ProgramID(att.Egress.ProgramID)}) {
				t.Fatalf("dut0's egress runs %v (%+v), want the applied program %d only", got, k, att.Egress.ProgramID)
			}
			if m.want == runtime.EgressClsact {
				if f := k.Filters[0]; f.Priority != 1 || f.Name != cttest.EgressProg {
					t.Errorf("egress filter %+v", f)
				}
			} else if k.Clsact {
				t.Errorf("a clsact qdisc was added for a tcx attach")
			}

			for port := 1; port <= 3; port++ {
				host.send(t, peerAddr, 7000+port)
			}
			got := keysOf(e.table(t))
			for port := 1; port <= 3; port++ {
				if !got[udpKey(hostAddr, peerAddr, 7000+port)] {
					t.Errorf("no entry for the datagram to port %d; table %v", 7000+port, got)
				}
			}

			rep = e.applyEgress(t, v2, runtime.EgressAuto)
			att2 := rep.Attachments[0]
			if att2.Egress == nil || att2.Egress.Mechanism != m.want || att2.Egress.ProgramID == att.Egress.ProgramID {
				t.Fatalf("re-apply: egress %+v, want a new program with %s", att2.Egress, m.want)
			}
			if m.want == runtime.EgressTCX && att2.Egress.LinkID != att.Egress.LinkID {
				t.Errorf("re-apply made tcx link %d, want link %d updated", att2.Egress.LinkID, att.Egress.LinkID)
			}
			k = e.kernelEgress(t, "dut0")
			if got := k.programs(); !slices.Equal(got, []ebpf.ProgramID{ebpf.ProgramID(att2.Egress.ProgramID)}) {
				t.Fatalf("after re-apply dut0's egress runs %v, want %d only", got, att2.Egress.ProgramID)
			}
			host.send(t, peerAddr, 7001)
			for _, f := range e.table(t) {
				if f.Key == udpKey(hostAddr, peerAddr, 7001) && f.Entry.State != conntrack.UDPUnreplied {
					t.Errorf("entry %+v", f)
				}
			}

			// A policy that does not track: its egress program goes, and
			// the table with it.
			plain := compileSrc(t, policySrc("plain", "native", []string{"dut0"}, "", webRule))
			rep = e.applyEgress(t, plain, m.ask)
			if rep.Attachments[0].Egress != nil {
				t.Errorf("a policy that does not track got egress %+v", rep.Attachments[0].Egress)
			}
			if k := e.kernelEgress(t, "dut0"); len(k.programs()) != 0 || k.Clsact {
				t.Errorf("dut0's egress after a policy that does not track: %+v", k)
			}
			if _, err := runtime.OpenConntrack(e.opts); !errors.Is(err, runtime.ErrNoConntrack) {
				t.Errorf("the table after no program tracks: %v, want ErrNoConntrack", err)
			}

			// Tracking again, then detach.
			e.applyEgress(t, v1, m.ask)
			if _, err := runtime.Detach(e.opts, "dut0"); err != nil {
				t.Fatal(err)
			}
			if k := e.kernelEgress(t, "dut0"); len(k.programs()) != 0 || k.Clsact {
				t.Errorf("dut0's egress after detach: %+v", k)
			}
			if _, err := runtime.OpenConntrack(e.opts); !errors.Is(err, runtime.ErrNoConntrack) {
				t.Errorf("the table after detach: %v, want ErrNoConntrack", err)
			}
			if ents, err := os.ReadDir(e.opts.PinRoot + "/links"); err == nil && len(ents) > 0 {
				t.Errorf("pins left after detach: %v", ents)
			}
		})
	}
}

// TestEgressKeepsForeignClsact: a clsact qdisc xdpc did not add, with a
// filter of someone else's, stays as it was through attach, replace and
// detach; xdpc's filter goes before it.
func TestEgressKeepsForeignClsact(t *testing.T) {
	e := newEnv(t)
	other := e.foreignFilter(t, "dut0", 10)
	e.applyEgress(t, trackingELF(t, cttest.Options{Mark: 1}), runtime.EgressClsact)
	rep := e.applyEgress(t, trackingELF(t, cttest.Options{Mark: 2}), runtime.EgressClsact)
	k := e.kernelEgress(t, "dut0")
	if len(k.Filters) != 2 || k.Filters[0].Program != int(rep.Attachments[0].Egress.ProgramID) || k.Filters[1].Program != other {
		t.Fatalf("egress filters %+v, want xdpc's %d first, then %d", k.Filters, rep.Attachments[0].Egress.ProgramID, other)
	}
	if rep.Attachments[0].Egress.QdiscAdded {
		t.Errorf("xdpc says it added the qdisc that was there before")
	}
	if _, err := runtime.Detach(e.opts, ""); err != nil {
		t.Fatal(err)
	}
	k = e.kernelEgress(t, "dut0")
	if !k.Clsact || len(k.Filters) != 1 || k.Filters[0].Program != other {
		t.Errorf("after detach: %+v, want the clsact qdisc with the other filter only", k)
	}
}

// foreignFilter adds a clsact qdisc and a BPF filter at prio to ifname,
// as another tool would, and returns its program's id.
func (e *env) foreignFilter(t *testing.T, ifname string, prio uint16) int {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "other", Type: ebpf.SchedCLS, License: "GPL", Instructions: tcUnspec()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := addForeignFilter(e.ns.Handle, ifname, prio, p); err != nil {
		t.Fatal(err)
	}
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return int(id)
}

// egressRounds is how many applies TestEgressReplaceUnderTraffic runs.
const egressRounds = 20

// TestEgressReplaceUnderTraffic re-applies a tracking policy
// egressRounds times, two versions in turn, while a socket of the
// namespace sends datagrams out of dut0 without pause, each to a port of
// its own: every datagram sent has its entry in the table afterwards, so
// no packet met a moment without an egress program (tcx: BPF_LINK_UPDATE;
// clsact: the filter replaced at its handle).
func TestEgressReplaceUnderTraffic(t *testing.T) {
	for _, m := range egressMechanisms(t)[:2] {
		t.Run(m.ask, func(t *testing.T) {
			e := newEnv(t)
			host := e.hostSender(t)
			versions := [][]byte{
				trackingELF(t, cttest.Options{Mark: 1, Unassured: 65536}),
				trackingELF(t, cttest.Options{Mark: 2, Unassured: 65536}),
			}
			e.applyEgress(t, versions[0], m.ask)

			const first, last = 2000, 60000
			stop := make(chan struct{})
			sent := make(chan int)
			go func() {
				port := first
				defer func() { sent <- port }()
				for ; port < last; port++ {
					select {
					case <-stop:
						return
					default:
					}
					to := &unix.SockaddrInet4{Addr: netip.MustParseAddr(peerAddr).As4(), Port: port}
					if err := unix.Sendto(host.fd, []byte("xdpc"), 0, to); err != nil {
						t.Errorf("send to port %d: %v", port, err)
						return
					}
					if port%64 == 0 {
						time.Sleep(500 * time.Microsecond)
					}
				}
			}()
			var programs []uint32
			for i := range egressRounds {
				rep, err := runtime.Apply(versions[(i+1)%2], runtime.ApplyOptions{Options: e.opts, Egress: m.ask})
				if err != nil {
					close(stop)
					<-sent
					t.Fatalf("apply %d: %v", i, err)
				}
				if eg := rep.Attachments[0].Egress; eg == nil || eg.Mechanism != m.want {
					t.Fatalf("apply %d: egress %+v, want %s", i, eg, m.want)
				} else {
					programs = append(programs, eg.ProgramID)
				}
				time.Sleep(2 * time.Millisecond)
			}
			close(stop)
			end := <-sent
			if t.Failed() {
				return
			}
			got := keysOf(e.table(t))
			var missing []int
			for port := first; port < end; port++ {
				if !got[udpKey(hostAddr, peerAddr, port)] {
					missing = append(missing, port)
				}
			}
			t.Logf("%d datagrams over %d applies (%s), programs %v", end-first, egressRounds, m.want, programs[:3])
			if end-first < 10*egressRounds {
				t.Errorf("only %d datagrams sent during %d applies: the test proves little", end-first, egressRounds)
			}
			if len(missing) > 0 {
				t.Errorf("%d of %d datagrams have no entry, e.g. ports %v", len(missing), end-first, missing[:min(len(missing), 10)])
			}
			if k := e.kernelEgress(t, "dut0"); len(k.programs()) != 1 {
				t.Errorf("dut0's egress after the applies: %+v, want one program", k)
			}
		})
	}
}

// TestEgressRejectedByVerifier: a verifier rejection of the egress
// program names that program and its source line, and changes nothing.
func TestEgressRejectedByVerifier(t *testing.T) {
	e := newEnv(t)
	a := cttest.Artifact(cttest.Options{})
	a.Egress.Instructions = asm.Instructions{
		asm.Mov.Imm(asm.R0, -1).WithSymbol(a.Egress.Name).WithSource(asm.Comment("egress: entry")),
		asm.Mov.Reg(asm.R0, asm.R5).WithSource(asm.Comment(`9:3 egress: commit`)),
		asm.Return(),
	}
	_, err := runtime.Apply(elfBytes(t, a), runtime.ApplyOptions{Options: e.opts})
	var rej *runtime.VerifierRejection
	if !errors.As(err, &rej) {
		t.Fatalf("apply error %v, want a verifier rejection", err)
	}
	if rej.Program != cttest.EgressProg || rej.Source != "9:3 egress: commit" {
		t.Errorf("rejection of program %q at %q, want %q at the egress commit", rej.Program, rej.Source, cttest.EgressProg)
	}
	if st := e.status(t); len(st) != 0 {
		t.Errorf("status after the rejection: %+v", st)
	}
	if _, err := runtime.OpenConntrack(e.opts); !errors.Is(err, runtime.ErrNoConntrack) {
		t.Errorf("a rejected apply left a table: %v", err)
	}
}

// TestAttachEgressForTheLab attaches a TestProgram's XDP and egress
// programs to dut0 without pinning anything, as the lab does: what the
// namespace sends lands in the program's own table, which ages and reads
// as under BPF_PROG_TEST_RUN, and closing the links leaves dut0 bare.
func TestAttachEgressForTheLab(t *testing.T) {
	for _, m := range egressMechanisms(t)[:2] {
		t.Run(m.ask, func(t *testing.T) {
			e := newEnv(t)
			host := e.hostSender(t)
			prog, err := runtime.NewTestProgram(trackingELF(t, cttest.Options{}))
			if err != nil {
				t.Fatal(err)
			}
			defer prog.Close()
			xdp, _, _, err := runtime.AttachXDP(runtime.XDPAttachment{Netns: e.ns.Name, Interface: "dut0", Mode: runtime.ModeNative, Program: prog.Program()})
			if err != nil {
				t.Fatal(err)
			}
			defer xdp.Close()
			eg, err := runtime.AttachEgress(runtime.EgressOptions{Netns: e.ns.Name, Interface: "dut0", Mechanism: m.ask, Program: prog.Egress()})
			if err != nil {
				t.Fatal(err)
			}
			if eg.Mechanism() != m.want {
				t.Errorf("attached with %s, want %s", eg.Mechanism(), m.want)
			}
			host.send(t, peerAddr, 53)
			flows, err := prog.ConntrackFlows()
			if err != nil {
				t.Fatal(err)
			}
			if len(flows) != 1 || flows[0].Key != udpKey(hostAddr, peerAddr, 53) {
				t.Fatalf("the program's table holds %+v, want the datagram to port 53", flows)
			}
			if err := prog.AgeConntrack(time.Hour); err != nil {
				t.Fatal(err)
			}
			if flows, _ := prog.ConntrackFlows(); len(flows) != 0 {
				t.Errorf("after an hour: %+v, want nothing live", flows)
			}
			if _, err := runtime.OpenConntrack(e.opts); !errors.Is(err, runtime.ErrNoConntrack) {
				t.Errorf("the lab's attach made a pinned table: %v", err)
			}
			if err := eg.Close(); err != nil {
				t.Fatal(err)
			}
			if k := e.kernelEgress(t, "dut0"); len(k.programs()) != 0 || k.Clsact {
				t.Errorf("dut0's egress after Close: %+v", k)
			}
		})
	}
}
