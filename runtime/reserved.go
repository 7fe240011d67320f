package runtime

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/nat"
)

// NATAddresses are the outside addresses of a nat block, as the policy
// gives them. The manifest does not carry them: a caller that has the
// policy passes them (ApplyOptions.NAT).
type NATAddresses struct {
	// Block is the nat block's name (InterfaceBinding.NATBlock).
	Block string
	// Masquerade are the masquerade blocks' to addresses: the ports of
	// the host's sockets on them are reserved.
	Masquerade []netip.Addr
	// Forward are the forward blocks' dst addresses.
	Forward []netip.Addr
	// Static are the static blocks' outside addresses.
	Static []netip.Addr
}

// outside lists every outside address once, in order.
func (a *NATAddresses) outside() []netip.Addr {
	var out []netip.Addr
	for _, as := range [][]netip.Addr{a.Masquerade, a.Forward, a.Static} {
		for _, x := range as {
			if !slices.Contains(out, x) {
				out = append(out, x)
			}
		}
	}
	return out
}

// ReservedPort is a port masquerade never allocates: a host socket's.
type ReservedPort struct {
	Proto uint8
	Port  uint16
}

// tcpListen is TCP_LISTEN, a socket's state in sock_diag.
const tcpListen = 10

// ReservedPorts returns the ports of the listening TCP sockets and the
// bound UDP sockets of the named network namespace ("" is the caller's)
// whose local address is one of on, or a wildcard address (0.0.0.0, ::);
// of every socket when on is empty. It reads them with sock_diag, or from
// /proc/net when the kernel has no sock_diag for TCP or UDP (tcp_diag and
// udp_diag are modules a host may not load): the sockets open now, not
// those opened later.
func ReservedPorts(nsName string, on []netip.Addr) ([]ReservedPort, error) {
	socks, err := diagSockets(nsName)
	if errors.Is(err, unix.ENOENT) {
		socks, err = procSockets(nsName)
	}
	if err != nil {
		return nil, err
	}
	seen := map[ReservedPort]bool{}
	var out []ReservedPort
	for _, s := range socks {
		if s.port == 0 || (s.proto == unix.IPPROTO_TCP && s.state != tcpListen) {
			continue
		}
		if a := s.addr.Unmap(); len(on) > 0 && !a.IsUnspecified() && !slices.Contains(on, a) {
			continue
		}
		rp := ReservedPort{s.proto, s.port}
		if !seen[rp] {
			seen[rp] = true
			out = append(out, rp)
		}
	}
	slices.SortFunc(out, func(a, b ReservedPort) int {
		if a.Proto != b.Proto {
			return int(a.Proto) - int(b.Proto)
		}
		return int(a.Port) - int(b.Port)
	})
	return out, nil
}

// hostSocket is a socket of the host as ReservedPorts reads it.
type hostSocket struct {
	proto uint8
	addr  netip.Addr
	port  uint16
	state uint8
}

// diagSockets lists the namespace's TCP and UDP sockets with sock_diag.
// An error wrapping ENOENT means the kernel has no sock_diag handler for
// one of them.
func diagSockets(nsName string) ([]hostSocket, error) {
	h, err := diagHandle(nsName)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var out []hostSocket
	add := func(proto uint8, socks []*netlink.Socket) {
		for _, s := range socks {
			a, ok := netip.AddrFromSlice(s.ID.Source)
			if !ok {
				continue
			}
			out = append(out, hostSocket{proto, a, s.ID.SourcePort, s.State})
		}
	}
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		tcp, err := h.SocketDiagTCP(family)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("list TCP sockets: %w", err)
		}
		add(unix.IPPROTO_TCP, tcp)
		udp, err := h.SocketDiagUDP(family)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("list UDP sockets: %w", err)
		}
		add(unix.IPPROTO_UDP, udp)
	}
	return out, nil
}

// diagHandle is a sock_diag netlink handle in the named namespace.
func diagHandle(nsName string) (*netlink.Handle, error) {
	if nsName == "" {
		h, err := netlink.NewHandle(unix.NETLINK_INET_DIAG)
		if err != nil {
			return nil, fmt.Errorf("open sock_diag: %w", err)
		}
		return h, nil
	}
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", nsName, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_INET_DIAG)
	if err != nil {
		return nil, fmt.Errorf("open sock_diag in netns %s: %w", nsName, err)
	}
	return h, nil
}

// fillReserved makes m hold exactly ports, and says how many did not fit.
func fillReserved(m *ebpf.Map, ports []ReservedPort) (int, error) {
	want := map[string]bool{}
	for _, p := range ports {
		want[string(nat.ReservedKey(p.Proto, p.Port))] = true
	}
	var stale [][]byte
	key, value := make([]byte, m.KeySize()), make([]byte, m.ValueSize())
	it := m.Iterate()
	for it.Next(&key, &value) {
		if !want[string(key)] {
			stale = append(stale, slices.Clone(key))
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("read reserved ports: %w", err)
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0, fmt.Errorf("remove reserved port: %w", err)
		}
	}
	lost := 0
	for _, p := range ports {
		err := m.Put(nat.ReservedKey(p.Proto, p.Port), uint8(1))
		switch {
		case err == nil:
		case errors.Is(err, unix.E2BIG):
			lost++
		default:
			return lost, fmt.Errorf("reserve %d/%d: %w", p.Proto, p.Port, err)
		}
	}
	return lost, nil
}

// reserve fills the NAT table's reserved ports with the sockets of the
// namespace on the masquerade addresses (on every address when they are
// unknown) and returns a note when some did not fit.
func (p *natPlan) reserve(blocks []NATAddresses) (string, error) {
	var on []netip.Addr
	if blocks != nil {
		for _, b := range blocks {
			on = append(on, b.Masquerade...)
		}
		if len(on) == 0 {
			// Nothing is allocated: nothing to reserve.
			_, err := fillReserved(p.cur[natReserved], nil)
			return "", err
		}
	}
	ports, err := ReservedPorts(p.l.nsName, on)
	if err != nil {
		return "", fmt.Errorf("%s: reserved ports: %w", p.l.natTableName(), err)
	}
	lost, err := fillReserved(p.cur[natReserved], ports)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p.l.natTableName(), err)
	}
	if lost > 0 {
		return fmt.Sprintf("warning: %s: %d of the host's %d listening ports did not fit in the reserved-ports map (%d entries); masquerade may allocate them",
			p.l.natTableName(), lost, len(ports), p.cur[natReserved].MaxEntries()), nil
	}
	return "", nil
}
