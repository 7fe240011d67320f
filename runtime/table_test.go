package runtime_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/internal/cttest"
	"github.com/xdpc/xdpc/runtime"
)

// hostConnect starts a TCP connection from the namespace to peerIP:port:
// its SYN leaves through the egress of the interface the route goes out
// of (the tracking artifact records it in the assured map). No answer
// comes; the socket is closed when the test ends.
func (e *env) hostConnect(t testing.TB, peerIP string, port int) conntrack.Key {
	t.Helper()
	var key conntrack.Key
	e.ns.Do(t, func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Errorf("open tcp socket: %v", err)
			return
		}
		t.Cleanup(func() { unix.Close(fd) })
		err = unix.Connect(fd, &unix.SockaddrInet4{Addr: netip.MustParseAddr(peerIP).As4(), Port: port})
		if err != nil && !errors.Is(err, unix.EINPROGRESS) {
			t.Errorf("connect to %s:%d: %v", peerIP, port, err)
			return
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			t.Errorf("getsockname: %v", err)
			return
		}
		local := sa.(*unix.SockaddrInet4)
		key, _ = conntrack.NewKey(4, 6,
			conntrack.Endpoint{Addr: netip.AddrFrom4(local.Addr), Port: uint16(local.Port)},
			endpoint(peerIP, uint16(port)))
	})
	if t.Failed() {
		t.FailNow()
	}
	return key
}

// flowsByKey returns flows by key, for comparing tables.
func flowsByKey(flows []runtime.ConntrackFlow) map[string]runtime.ConntrackFlow {
	out := map[string]runtime.ConntrackFlow{}
	for _, f := range flows {
		out[fmt.Sprintf("%v %v", f.Key, f.Assured)] = f
	}
	return out
}

// TestTableSurvivesApply fills the namespace's table through dut0's
// egress and checks it holds the same entries, in the same pinned maps,
// across a re-apply, an apply of another policy that tracks, the detach
// of one of two interfaces that track and an apply of a policy that
// does not track on the other; it goes when no interface tracks.
func TestTableSurvivesApply(t *testing.T) {
	e := newEnv(t)
	e.ns.Veth(t, "src1", "dut1")
	host := e.hostSender(t)
	e.apply(t, trackingELF(t, cttest.Options{Policy: "a", Mark: 1}))
	e.apply(t, trackingELF(t, cttest.Options{Policy: "b", Interfaces: []string{"dut1"}}))
	for port := 1; port <= 5; port++ {
		host.send(t, peerAddr, 9000+port)
	}
	e.hostConnect(t, peerAddr, 22)
	before, ids := e.table(t), e.tableIDs(t)
	if len(before) != 6 {
		t.Fatalf("table holds %d flows, want 6", len(before))
	}
	same := func(step string) {
		t.Helper()
		if got := e.tableIDs(t); got != ids {
			t.Errorf("%s: table maps %v, want %v", step, got, ids)
		}
		if diff := cmp.Diff(flowsByKey(before), flowsByKey(e.table(t)), addrs); diff != "" {
			t.Errorf("%s: table changed (-before +after):\n%s", step, diff)
		}
	}
	e.apply(t, trackingELF(t, cttest.Options{Policy: "a", Mark: 2}))
	same("re-apply")
	e.apply(t, trackingELF(t, cttest.Options{Policy: "c", Mark: 3}))
	same("another policy")
	if _, err := runtime.Detach(e.opts, "dut0"); err != nil {
		t.Fatal(err)
	}
	same("detach of dut0")
	e.apply(t, trackingELF(t, cttest.Options{Policy: "a", Mark: 1}))
	same("apply to dut0 again")
	e.apply(t, compileSrc(t, policySrc("plain", "native", []string{"dut1"}, "", webRule)))
	same("dut1 no longer tracks")
	if _, err := runtime.Detach(e.opts, "dut0"); err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.OpenConntrack(e.opts); !errors.Is(err, runtime.ErrNoConntrack) {
		t.Errorf("the table once no interface tracks: %v, want ErrNoConntrack", err)
	}
}

// TestTableMigratesWhenCapacityChanges applies a tracking policy whose
// table is smaller than the pinned one, while the namespace sends: the
// table is recreated with the live entries (dead ones dropped, assured
// ones the small assured map cannot take in the unassured one), the note
// says so, and every datagram sent during the apply has its entry.
func TestTableMigratesWhenCapacityChanges(t *testing.T) {
	e := newEnv(t)
	host := e.hostSender(t)
	e.apply(t, trackingELF(t, cttest.Options{}))
	// Dead ones: made, then aged past their minute.
	for port := 1; port <= 3; port++ {
		host.send(t, peerAddr, 100+port)
	}
	tbl, err := runtime.OpenConntrack(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Age(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	tbl.Close()
	want := map[conntrack.Key]bool{}
	for port := 1; port <= 3; port++ {
		host.send(t, peerAddr, 200+port)
		want[udpKey(hostAddr, peerAddr, 200+port)] = true
	}
	for port := 1; port <= 4; port++ {
		want[e.hostConnect(t, peerAddr, 300+port)] = true
	}
	oldIDs := e.tableIDs(t)

	stop, sent := make(chan struct{}), make(chan int)
	go func() {
		port := 10000
		defer func() { sent <- port }()
		for ; port < 60000; port++ {
			select {
			case <-stop:
				return
			default:
			}
			to := &unix.SockaddrInet4{Addr: netip.MustParseAddr(peerAddr).As4(), Port: port}
			if err := unix.Sendto(host.fd, []byte("xdpc"), 0, to); err != nil {
				t.Errorf("send: %v", err)
				return
			}
			if port%32 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	rep, err := runtime.Apply(trackingELF(t, cttest.Options{Assured: 2, Unassured: 8192}), runtime.ApplyOptions{Options: e.opts})
	time.Sleep(20 * time.Millisecond)
	close(stop)
	end := <-sent
	if err != nil {
		t.Fatal(err)
	}
	note := strings.Join(rep.Notes, "\n")
	t.Logf("notes: %s", note)
	for _, w := range []string{
		"the connection table of network namespace " + e.ns.Name + ": map layout changed (assured capacity 4096, now 2; unassured capacity 4096, now 8192); recreated it and copied ",
		"3 dead ones dropped, 2 assured in the unassured map, the assured one being full)",
	} {
		if !strings.Contains(note, w) {
			t.Errorf("notes %q, want them to say %q", note, w)
		}
	}
	if ids := e.tableIDs(t); ids[0] == oldIDs[0] || ids[1] == oldIDs[1] {
		t.Errorf("table maps %v after a migration, want new ones (were %v)", ids, oldIDs)
	}
	tbl, err = runtime.OpenConntrack(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Assured.MaxEntries() != 2 || tbl.Unassured.MaxEntries() != 8192 {
		t.Errorf("table capacity %d/%d, want 2/8192", tbl.Assured.MaxEntries(), tbl.Unassured.MaxEntries())
	}
	tbl.Close()
	for port := 10000; port < end; port++ {
		want[udpKey(hostAddr, peerAddr, port)] = true
	}
	got := keysOf(e.table(t))
	missing := 0
	for k := range want {
		if !got[k] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d flows (%d sent during the apply) missing after the migration", missing, len(want), end-10000)
	}
	for port := 1; port <= 3; port++ {
		if got[udpKey(hostAddr, peerAddr, 100+port)] {
			t.Errorf("dead flow to port %d copied", 100+port)
		}
	}
}

// TestTableRecreatedWhenLayoutChanges applies an artifact whose entry
// layout differs (same sizes, another field): the old entries cannot be
// read as the new programs would, so the table starts empty, and says so.
func TestTableRecreatedWhenLayoutChanges(t *testing.T) {
	e := newEnv(t)
	host := e.hostSender(t)
	e.apply(t, trackingELF(t, cttest.Options{}))
	host.send(t, peerAddr, 53)
	if n := len(e.table(t)); n != 1 {
		t.Fatalf("table holds %d flows, want 1", n)
	}
	a := cttest.Artifact(cttest.Options{})
	for i := range a.Maps {
		v := btf.Copy(a.Maps[i].Value).(*btf.Struct)
		v.Members[2].Name = "status"
		a.Maps[i].Value = v
	}
	rep := e.apply(t, elfBytes(t, a))
	note := strings.Join(rep.Notes, "\n")
	want := "warning: the connection table of network namespace " + e.ns.Name + ": its entry layout changed (40-byte keys and 32-byte entries, now 40 and 32); recreated it empty, so connections count as new again until their next packets"
	if note != want {
		t.Errorf("notes:\n%s\nwant:\n%s", note, want)
	}
	if n := len(e.table(t)); n != 0 {
		t.Errorf("table holds %d flows after a layout change, want none", n)
	}
	host.send(t, peerAddr, 53)
	if n := len(e.table(t)); n != 1 {
		t.Errorf("the new table holds %d flows, want 1", n)
	}
}

// TestTableSharedKeepsCapacity: a policy asking for another capacity
// while another interface still tracks in the table gets the table as it
// is, rather than a table of its own.
func TestTableSharedKeepsCapacity(t *testing.T) {
	e := newEnv(t)
	e.ns.Veth(t, "src1", "dut1")
	host := e.hostSender(t)
	e.apply(t, trackingELF(t, cttest.Options{Policy: "a"}))
	host.send(t, peerAddr, 53)
	ids := e.tableIDs(t)
	rep := e.apply(t, trackingELF(t, cttest.Options{Policy: "b", Interfaces: []string{"dut1"}, Assured: 1024, Unassured: 1024}))
	note := strings.Join(rep.Notes, "\n")
	want := "warning: the connection table of network namespace " + e.ns.Name + " is shared with dut0: kept its capacity (assured 4096, unassured 4096) rather than split it; apply them with the same conntrack settings, or detach them, to resize it"
	if note != want {
		t.Errorf("notes:\n%s\nwant:\n%s", note, want)
	}
	if got := e.tableIDs(t); got != ids {
		t.Errorf("table maps %v, want %v", got, ids)
	}
	if n := len(e.table(t)); n != 1 {
		t.Errorf("table holds %d flows, want 1", n)
	}
}

// TestFailedApplyKeepsEgress applies a tracking policy to dut0, then one
// to dut0 and lo, which has no native XDP: lo's XDP attach fails after
// dut0 and lo's own egress were changed, and every egress is given back
// what it had, the table too.
func TestFailedApplyKeepsEgress(t *testing.T) {
	for _, m := range egressMechanisms(t)[:2] {
		t.Run(m.ask, func(t *testing.T) {
			e := newEnv(t)
			host := e.hostSender(t)

			// Nothing before: nothing after.
			both := trackingELF(t, cttest.Options{Mark: 2, Interfaces: []string{"dut0", "lo"}})
			if _, err := runtime.Apply(both, runtime.ApplyOptions{Options: e.opts, Egress: m.ask}); err == nil {
				t.Fatal("apply to an interface without native XDP succeeded")
			}
			for _, ifname := range []string{"dut0", "lo"} {
				if k := e.kernelEgress(t, ifname); len(k.programs()) != 0 || k.Clsact {
					t.Errorf("%s's egress after a failed first apply: %+v", ifname, k)
				}
			}
			if _, err := runtime.OpenConntrack(e.opts); !errors.Is(err, runtime.ErrNoConntrack) {
				t.Errorf("a failed first apply left a table: %v", err)
			}

			rep := e.applyEgress(t, trackingELF(t, cttest.Options{Mark: 1}), m.ask)
			host.send(t, peerAddr, 53)
			before, ids := e.table(t), e.tableIDs(t)
			k0 := e.kernelEgress(t, "dut0")
			_, err := runtime.Apply(both, runtime.ApplyOptions{Options: e.opts, Egress: m.ask})
			if err == nil || !strings.Contains(err.Error(), "attach xdp to lo in native mode") {
				t.Fatalf("apply error %v, want the native attach to lo to fail", err)
			}
			if diff := cmp.Diff(k0, e.kernelEgress(t, "dut0")); diff != "" {
				t.Errorf("dut0's egress changed (-before +after):\n%s", diff)
			}
			if got := e.kernelEgress(t, "dut0").programs(); len(got) != 1 || uint32(got[0]) != rep.Attachments[0].Egress.ProgramID {
				t.Errorf("dut0's egress runs %v, want the previous program %d", got, rep.Attachments[0].Egress.ProgramID)
			}
			if k := e.kernelEgress(t, "lo"); len(k.programs()) != 0 || k.Clsact {
				t.Errorf("lo's egress after the failed apply: %+v", k)
			}
			if got := e.tableIDs(t); got != ids {
				t.Errorf("table maps %v, want %v", got, ids)
			}
			if diff := cmp.Diff(flowsByKey(before), flowsByKey(e.table(t)), addrs); diff != "" {
				t.Errorf("table changed (-before +after):\n%s", diff)
			}
			st := e.status(t)
			if len(st) != 1 || st[0].Egress == nil || st[0].Egress.ProgramID != rep.Attachments[0].Egress.ProgramID {
				t.Errorf("status after the failed apply: %+v", st)
			}
		})
	}
}

// programTag returns the tag (a hash of the instructions) of program id.
func programTag(t testing.TB, id ebpf.ProgramID) string {
	t.Helper()
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.Tag
}

// TestConfirmRollbackRestoresEgress applies with a confirmation deadline
// that passes, over nothing, over a policy that does not track and over
// a tracking one attached with clsact: the rollback restores the egress
// side as it was (none, or the previous program with its mechanism), and
// the table as the previous state needs it.
func TestConfirmRollbackRestoresEgress(t *testing.T) {
	tests := []struct {
		name   string
		before func(t *testing.T, e *env) []byte
	}{
		{"nothing before", func(t *testing.T, e *env) []byte { return nil }},
		{"no tracking before", func(t *testing.T, e *env) []byte {
			return compileSrc(t, policySrc("plain", "native", []string{"dut0"}, "", webRule))
		}},
		{"clsact before", func(t *testing.T, e *env) []byte {
			return trackingELF(t, cttest.Options{Mark: 1})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			host := e.hostSender(t)
			var prev *runtime.Attachment
			prevTag := ""
			if elf := tt.before(t, e); elf != nil {
				rep := e.applyEgress(t, elf, runtime.EgressClsact)
				prev = &rep.Attachments[0]
				if prev.Egress != nil {
					prevTag = programTag(t, ebpf.ProgramID(prev.Egress.ProgramID))
				}
			}
			host.send(t, peerAddr, 53)
			// Where it can, the apply changes the mechanism too.
			mech := runtime.EgressAuto
			if haveTCX(t) {
				mech = runtime.EgressTCX
			}
			rep, err := runtime.Apply(trackingELF(t, cttest.Options{Mark: 2}), runtime.ApplyOptions{Options: e.opts, Confirm: 200 * time.Millisecond, Egress: mech})
			if err != nil {
				t.Fatal(err)
			}
			host.send(t, peerAddr, 54)
			ok, err := runtime.WaitConfirm(e.opts, rep.Pending, nil)
			if err != nil || ok {
				t.Fatalf("wait = %v, %v; want a rollback", ok, err)
			}
			k := e.kernelEgress(t, "dut0")
			st := e.status(t)
			switch {
			case prev == nil:
				if len(st) != 0 || len(k.programs()) != 0 || k.Clsact {
					t.Errorf("after rollback to nothing: status %+v, egress %+v", st, k)
				}
			case prev.Egress == nil:
				if len(st) != 1 || st[0].Egress != nil || len(k.programs()) != 0 || k.Clsact {
					t.Errorf("after rollback to no tracking: status %+v, egress %+v", st, k)
				}
			default:
				if len(st) != 1 || st[0].Egress == nil || st[0].Egress.Mechanism != runtime.EgressClsact || len(k.TCX) != 0 || len(k.Filters) != 1 {
					t.Fatalf("after rollback to clsact: status %+v, egress %+v", st, k)
				}
				if got, want := programTag(t, ebpf.ProgramID(k.Filters[0].Program)), prevTag; got != want {
					t.Errorf("egress runs a program tagged %s after rollback, want the previous one's %s", got, want)
				}
				// The table stayed, with what both versions recorded.
				got := keysOf(e.table(t))
				for _, port := range []int{53, 54} {
					if !got[udpKey(hostAddr, peerAddr, port)] {
						t.Errorf("no entry of the datagram to port %d after rollback", port)
					}
				}
			}
			if prev == nil || prev.Egress == nil {
				if _, err := runtime.OpenConntrack(e.opts); !errors.Is(err, runtime.ErrNoConntrack) {
					t.Errorf("table after rollback to a state without tracking: %v", err)
				}
			}
		})
	}
}
