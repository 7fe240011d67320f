package runtime_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/runtime"
)

// Addresses of the host's own traffic: dut0 is the namespace's interface
// with an address, and src0 stands for the peer it sends to.
const (
	hostAddr = "192.0.2.1"
	peerAddr = "192.0.2.2"
	hostPort = 40000
)

// hostSocket is a UDP socket of the namespace that sends out of dut0
// through its egress (the host's own traffic), to peerAddr.
type hostSocket struct{ fd int }

// hostSender gives ifname (dut0 unless given) the address hostAddr/24 and
// a permanent neighbour peerAddr with peer's MAC (src0 unless given), and
// returns a UDP socket bound to hostAddr:hostPort in the namespace: what
// it sends leaves through ifname's egress without asking ARP first.
func (e *env) hostSender(t testing.TB) *hostSocket {
	t.Helper()
	return e.hostSenderOn(t, "dut0", "src0", hostAddr, peerAddr)
}

func (e *env) hostSenderOn(t testing.TB, ifname, peer, addr, peerIP string) *hostSocket {
	t.Helper()
	h := e.ns.Handle
	dut, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	src, err := h.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := netlink.ParseAddr(addr + "/24")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(dut, ip); err != nil {
		t.Fatalf("add address to %s: %v", ifname, err)
	}
	neigh := &netlink.Neigh{
		LinkIndex: dut.Attrs().Index, IP: net.ParseIP(peerIP), HardwareAddr: src.Attrs().HardwareAddr,
		State: netlink.NUD_PERMANENT, Family: unix.AF_INET,
	}
	if err := h.NeighAdd(neigh); err != nil {
		t.Fatalf("add neighbour %s on %s: %v", peerIP, ifname, err)
	}
	s := &hostSocket{fd: -1}
	e.ns.Do(t, func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			t.Errorf("open udp socket: %v", err)
			return
		}
		a := netip.MustParseAddr(addr).As4()
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: a, Port: hostPort}); err != nil {
			unix.Close(fd)
			t.Errorf("bind udp socket: %v", err)
			return
		}
		s.fd = fd
	})
	if s.fd < 0 {
		t.FailNow()
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

// send sends one datagram to peerIP:port; when it returns, the egress
// programs of the interface have run on it (veth has no queue).
func (s *hostSocket) send(t testing.TB, peerIP string, port int) {
	t.Helper()
	to := &unix.SockaddrInet4{Addr: netip.MustParseAddr(peerIP).As4(), Port: port}
	if err := unix.Sendto(s.fd, []byte("xdpc"), 0, to); err != nil {
		t.Fatalf("send to port %d: %v", port, err)
	}
}

// udpKey is the table's key of the host's datagrams to peerIP:port.
func udpKey(host, peerIP string, port int) conntrack.Key {
	k, _ := conntrack.NewKey(4, 17, endpoint(host, hostPort), endpoint(peerIP, uint16(port)))
	return k
}

// table reads the namespace's pinned connection table.
func (e *env) table(t testing.TB) []runtime.ConntrackFlow {
	t.Helper()
	tbl, err := runtime.OpenConntrack(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	flows, _, err := tbl.Flows()
	if err != nil {
		t.Fatal(err)
	}
	return flows
}

// tableIDs returns the ids of the namespace's pinned table maps.
func (e *env) tableIDs(t testing.TB) [2]ebpf.MapID {
	t.Helper()
	tbl, err := runtime.OpenConntrack(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	var ids [2]ebpf.MapID
	for i, m := range []*ebpf.Map{tbl.Assured, tbl.Unassured} {
		info, err := m.Info()
		if err != nil {
			t.Fatal(err)
		}
		ids[i], _ = info.ID()
	}
	return ids
}

// keysOf returns the keys of flows, as a set.
func keysOf(flows []runtime.ConntrackFlow) map[conntrack.Key]bool {
	keys := map[conntrack.Key]bool{}
	for _, f := range flows {
		keys[f.Key] = true
	}
	return keys
}

// kernelEgress is what the kernel runs on an interface's egress, read
// without xdpc's records: tcx programs, and the BPF filters of a clsact
// qdisc.
type kernelEgress struct {
	TCX     []ebpf.ProgramID
	Clsact  bool
	Filters []kernelFilter
}

type kernelFilter struct {
	Handle   uint32
	Priority uint16
	Program  int
	Name     string
}

func (e *env) kernelEgress(t testing.TB, ifname string) kernelEgress {
	t.Helper()
	l, err := e.ns.Handle.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	var k kernelEgress
	e.ns.Do(t, func() {
		// Kernels before 6.6 have no tcx to query.
		if res, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: ebpf.AttachTCXEgress}); err == nil {
			for _, p := range res.Programs {
				k.TCX = append(k.TCX, p.ID)
			}
		}
	})
	qs, err := e.ns.Handle.QdiscList(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Type() == "clsact" {
			k.Clsact = true
		}
	}
	if k.Clsact {
		fs, err := e.ns.Handle.FilterList(l, netlink.HANDLE_MIN_EGRESS)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if bf, ok := f.(*netlink.BpfFilter); ok {
				k.Filters = append(k.Filters, kernelFilter{bf.Handle, bf.Priority, bf.Id, bf.Name})
			}
		}
		sort.Slice(k.Filters, func(i, j int) bool { return k.Filters[i].Priority < k.Filters[j].Priority })
	}
	return k
}

// programs returns the ids of every program on the egress.
func (k kernelEgress) programs() []ebpf.ProgramID {
	ids := append([]ebpf.ProgramID(nil), k.TCX...)
	for _, f := range k.Filters {
		ids = append(ids, ebpf.ProgramID(f.Program))
	}
	return ids
}

// haveTCX reports whether this kernel has tcx links (6.6 on).
func haveTCX(t testing.TB) bool {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL", Instructions: tcUnspec()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	lk, err := link.AttachTCX(link.TCXOptions{Program: p, Attach: ebpf.AttachTCXEgress, Interface: 1 << 30})
	if err == nil {
		lk.Close()
	}
	return err == nil || !isNotSupported(err)
}

// addForeignFilter adds a clsact qdisc (unless there is one) and a
// direct-action BPF filter running p at prio, handle 1, to ifname's
// egress, as another tool would.
func addForeignFilter(h *netlink.Handle, ifname string, prio uint16, p *ebpf.Program) error {
	l, err := h.LinkByName(ifname)
	if err != nil {
		return err
	}
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := h.QdiscAdd(q); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add clsact: %w", err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: l.Attrs().Index, Parent: netlink.HANDLE_MIN_EGRESS, Handle: 1, Priority: prio, Protocol: unix.ETH_P_ALL},
		Fd:          p.FD(), Name: "other", DirectAction: true,
	}
	if err := h.FilterAdd(f); err != nil {
		return fmt.Errorf("add filter: %w", err)
	}
	return nil
}
