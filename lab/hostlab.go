package lab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/runtime"
)

// TopologyHostRouter is the topology of a host case: a router namespace
// with one veth per interface of the case's file, named as the file names
// them, each paired with a peer namespace of its own.
const TopologyHostRouter = "host-router"

// hostLab runs a host case in the host-router topology: every interface's
// program attached to its router interface, all sharing one connection
// table and the NAT maps (loaded by a hostKernel, which also seeds the NAT
// settings map, ages the tables by the frames' times and reads ct_state
// with its status probes). A frame is injected from its interface's peer,
// decided by that interface's program counters and, when passed, awaited
// at whichever peer the router forwards it to.
type hostLab struct {
	k       *hostKernel
	topo    *Topology
	ports   map[string]*hostPort
	order   []*hostPort
	links   []link.Link
	egress  []*runtime.EgressLink
	passXDP *ebpf.Program
	timeout time.Duration

	closeOnce sync.Once
	closeErr  error
}

// hostPort is one interface of a host case: the router's end and its
// peer's, with the sockets that inject, send and capture there.
type hostPort struct {
	router, peer *Port
	prog         *hostProgram
	// inj injects from the peer; out sends the host's own frames from the
	// router's end through its qdisc; sent captures what leaves the
	// router's end, recv what reaches the peer.
	inj, out   *injector
	sent, recv *capture
}

// Addresses of the host-router topology's link networks: interface i of
// the file is 10.201.i.0/24, the router .1, its peer .2. Golden cases use
// none of them.
func hostLinkAddrs(i int) (router, peer *net.IPNet) {
	mask := net.CIDRMask(24, 32)
	return &net.IPNet{IP: net.IPv4(10, 201, byte(i), 1).To4(), Mask: mask}, &net.IPNet{IP: net.IPv4(10, 201, byte(i), 2).To4(), Mask: mask}
}

// hostRouterSysctls make the router forward IPv4 as apply has a NAT host
// do (docs/nat.md "Forwarding"), send no ICMP redirects (a frame routed
// back out of the interface it came in on is forwarded, not remarked on)
// and filter no reverse path.
var hostRouterSysctls = map[string]string{
	"net/ipv4/ip_forward":                  "1",
	"net/ipv4/conf/all/rp_filter":          "0",
	"net/ipv4/conf/default/rp_filter":      "0",
	"net/ipv4/conf/all/send_redirects":     "0",
	"net/ipv4/conf/default/send_redirects": "0",
}

// hostRoutes returns the router's routes of cfg: by interface name, the
// prefixes routed via its peer. The first nat block's outside interface
// (or, without one, the file's first interface) takes the default route;
// every nat block's inside takes its masquerades' sources, its statics'
// inside addresses and its forwards' targets.
func hostRoutes(cfg *policy.Config) (string, map[string][]netip.Prefix) {
	def := cfg.Interfaces[0].Name
	routes := map[string][]netip.Prefix{}
	for i, n := range cfg.NATs {
		if i == 0 {
			def = n.Outside.Name
		}
		in := n.Inside.Name
		for _, m := range n.Masquerades {
			routes[in] = append(routes[in], m.Src...)
		}
		for _, s := range n.Statics {
			routes[in] = append(routes[in], netip.PrefixFrom(s.Inside, s.Inside.BitLen()))
		}
		for _, f := range n.Forwards {
			routes[in] = append(routes[in], netip.PrefixFrom(f.To, f.To.BitLen()))
		}
	}
	return def, routes
}

// buildHostRouter builds the host-router topology for interfaces names:
// the router, one peer per interface, link addresses, permanent neighbours
// both ways, the default route via defaultVia's peer and routes via the
// peer of each interface of routes.
func (t *Topology) buildHostRouter(suffix string, names []string, defaultVia string, routes map[string][]netip.Prefix) error {
	routerNS, err := t.addNamespace(suffix, "router", hostRouterSysctls)
	if err != nil {
		return err
	}
	for i, name := range names {
		peerNS, err := t.addNamespace(suffix, fmt.Sprintf("peer%d", i), nil)
		if err != nil {
			return err
		}
		router, peer, err := t.addVeth(routerNS, name, macDUT, peerNS, "eth0", macPeer)
		if err != nil {
			return err
		}
		router.Address, peer.Address = hostLinkAddrs(i)
		for _, p := range []*Port{router, peer} {
			if err := p.ns.nl.AddrAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: p.Index}}, &netlink.Addr{IPNet: p.Address}); err != nil {
				return fmt.Errorf("add address %s to %s in %s: %w", p.Address, p.Name, p.ns.name, err)
			}
		}
		for _, n := range []struct{ at, of *Port }{{router, peer}, {peer, router}} {
			neigh := &netlink.Neigh{LinkIndex: n.at.Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: n.of.Address.IP, HardwareAddr: n.of.MAC}
			if err := n.at.ns.nl.NeighSet(neigh); err != nil {
				return fmt.Errorf("add neighbour %s on %s in %s: %w", n.of.Address.IP, n.at.Name, n.at.ns.name, err)
			}
		}
		// A masqueraded packet carries the router's public address when
		// the stack forwards it from the inside.
		if err := writeSysctls(routerNS.handle, map[string]string{"net/ipv4/conf/" + name + "/accept_local": "1"}); err != nil {
			return fmt.Errorf("configure %s in %s: %w", name, routerNS.name, err)
		}
		var dsts []*net.IPNet
		if name == defaultVia {
			dsts = append(dsts, nil)
		}
		for _, p := range routes[name] {
			if p.Addr().Is4() {
				dsts = append(dsts, &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)})
			}
		}
		for _, dst := range dsts {
			if err := routerNS.nl.RouteReplace(&netlink.Route{LinkIndex: router.Index, Dst: dst, Gw: peer.Address.IP}); err != nil {
				return fmt.Errorf("add route %v via %s in %s: %w", dst, name, routerNS.name, err)
			}
		}
		t.Ports[name], t.Ports["peer-"+name] = router, peer
	}
	return nil
}

// newHostLab builds the host-router topology for cfg and attaches every
// interface's program.
func newHostLab(cfg *policy.Config) (_ *hostLab, err error) {
	l := &hostLab{ports: map[string]*hostPort{}, timeout: time.Second}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if l.k, err = newHostKernel(cfg); err != nil {
		return nil, err
	}
	var names []string
	for _, i := range cfg.Interfaces {
		names = append(names, i.Name)
	}
	def, routes := hostRoutes(cfg)
	if l.topo, err = newTopologyWith(TopologyHostRouter, func(t *Topology, suffix string) error {
		return t.buildHostRouter(suffix, names, def, routes)
	}); err != nil {
		return nil, err
	}
	// A veth hands frames redirected into it to its peer only when the
	// peer runs XDP: the datapath forwards translated packets so.
	if l.passXDP, err = newActionProgram("xdpc_lab_peer", artifact.ActionPass); err != nil {
		return nil, fmt.Errorf("load the peers' pass program: %w", err)
	}
	for _, name := range names {
		hp := &hostPort{router: l.topo.Ports[name], peer: l.topo.Ports["peer-"+name], prog: l.k.progs[name]}
		l.ports[name] = hp
		l.order = append(l.order, hp)
		if err := l.attach(hp); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// attach attaches hp's programs and opens its sockets.
func (l *hostLab) attach(hp *hostPort) error {
	r, p := hp.router, hp.peer
	for _, a := range []struct {
		port *Port
		prog *ebpf.Program
	}{{r, hp.prog.xdp}, {p, l.passXDP}} {
		lk, err := attachXDP(a.port, a.prog)
		if err != nil {
			return err
		}
		l.links = append(l.links, lk)
	}
	if hp.prog.egress != nil {
		e, err := runtime.AttachEgress(runtime.EgressOptions{
			Netns: r.Namespace(), Interface: r.Name, Mechanism: runtime.EgressAuto, Program: hp.prog.egress,
		})
		if err != nil {
			return err
		}
		l.egress = append(l.egress, e)
	}
	var err error
	if hp.inj, err = newInjector(p.ns.handle, p.Index, true); err != nil {
		return fmt.Errorf("inject on %s: %w", p.ns.name, err)
	}
	if hp.out, err = newInjector(r.ns.handle, r.Index, false); err != nil {
		return fmt.Errorf("send from %s: %w", r.Name, err)
	}
	if hp.sent, err = newCapture(r.ns.handle, r.Index); err != nil {
		return fmt.Errorf("capture on %s: %w", r.Name, err)
	}
	hp.sent.outgoing = true
	if hp.recv, err = newCapture(p.ns.handle, p.Index); err != nil {
		return fmt.Errorf("capture on %s: %w", p.ns.name, err)
	}
	hp.recv.ignore = l.routerOwn
	return nil
}

// routerOwn reports whether frame, received at a peer, is one the router
// sent of its own accord: an ARP message, or an IPv4 packet from one of
// its link addresses (an ICMP error about a frame it kept).
func (l *hostLab) routerOwn(frame []byte) bool {
	if len(frame) < 14 || !bytes.Equal(frame[6:12], macDUT) {
		return false
	}
	et := binary.BigEndian.Uint16(frame[12:])
	if et == unix.ETH_P_ARP {
		return true
	}
	if et != unix.ETH_P_IP || len(frame) < 34 {
		return false
	}
	for _, hp := range l.order {
		if net.IP(frame[26:30]).Equal(hp.router.Address.IP) {
			return true
		}
	}
	return false
}

func (l *hostLab) Run(f Frame) (Verdict, error) {
	ifname, p, err := hostInterface(l.k.cfg, f)
	if err != nil {
		return Verdict{}, err
	}
	hp := l.ports[ifname]
	if len(f.Data) < runtime.MinTestFrame {
		return Verdict{}, ShortFrameError(len(f.Data))
	}
	if limit := hp.peer.MTU + 14 + 4; len(f.Data) > limit {
		return Verdict{}, FrameSizeError{Len: len(f.Data), Max: limit}
	}
	if err := l.expectQuiet(); err != nil {
		return Verdict{}, err
	}
	if err := l.k.age(f.Time); err != nil {
		return Verdict{}, err
	}
	tracks := p.TracksConnections()
	var st conntrack.Status
	var before ctSnapshot
	if tracks {
		probe := l.k.probe
		if hp.prog.nat {
			probe = l.k.natProbe
		}
		if st, err = l.k.statusOf(probe, f.Data); err != nil {
			return Verdict{}, err
		}
		if before, err = l.k.snapshot(); err != nil {
			return Verdict{}, err
		}
	}
	var v Verdict
	if f.Out {
		v, err = l.sendOut(hp, f.Data)
	} else {
		v, err = l.decide(hp, f.Data)
	}
	if err != nil {
		return Verdict{}, err
	}
	v.Iface = ifname
	if tracks {
		v.CTState = st.String()
		after, err := l.k.snapshot()
		if err != nil {
			return Verdict{}, err
		}
		if v.CTEntry, err = before.entryChanged(after); err != nil {
			return Verdict{}, err
		}
	}
	return v, nil
}

// sendOut sends a frame of the host's own out of hp's router interface,
// through its TC egress hook, and waits until it leaves and reaches the
// peer, unchanged.
func (l *hostLab) sendOut(hp *hostPort, frame []byte) (Verdict, error) {
	if err := hp.out.send(frame); err != nil {
		return Verdict{}, err
	}
	deadline := time.Now().Add(l.timeout)
	for _, c := range []struct {
		c     *capture
		where string
	}{{hp.sent, "leave " + hp.router.Name}, {hp.recv, "reach " + hp.router.Name + "'s peer"}} {
		got, err := c.c.next(deadline)
		if errors.Is(err, errNoFrame) {
			return Verdict{}, fmt.Errorf("sent out of %s, the frame did not %s within %s", hp.router.Name, c.where, l.timeout)
		}
		if err != nil {
			return Verdict{}, err
		}
		if !bytes.Equal(got, frame) {
			return Verdict{}, fmt.Errorf("sent out of %s, the frame did %s as another: %s", hp.router.Name, c.where, summarize(got))
		}
	}
	return outVerdict(frame), nil
}

// decide injects an arriving frame from hp's peer, reads the decision from
// hp's program counters and follows a passed frame to the peer the router
// forwards it to. One that reaches no peer by the deadline is a frame the
// router kept (addressed to it, TTL expired): its line is the pass, as the
// router topology's (docs/lab.md).
func (l *hostLab) decide(hp *hostPort, frame []byte) (Verdict, error) {
	before, err := readCounters(hp.prog.counters)
	if err != nil {
		return Verdict{}, err
	}
	if err := hp.inj.send(frame); err != nil {
		return Verdict{}, err
	}
	deadline := time.Now().Add(l.timeout)
	var v Verdict
	for {
		after, err := readCounters(hp.prog.counters)
		if err != nil {
			return Verdict{}, err
		}
		moved := runtime.MovedSlots(before, after)
		if v, err = hp.prog.slots.decide(frame, moved); err == nil {
			break
		}
		if len(moved) > 0 && !errors.Is(err, errNoDecision) {
			return Verdict{}, err
		}
		if time.Now().After(deadline) {
			return Verdict{}, fmt.Errorf("the program on %s did not count a decision within %s", hp.router.Name, l.timeout)
		}
		time.Sleep(20 * time.Microsecond)
	}
	if v.Action != artifact.ActionPass {
		return v, nil
	}
	at, got, err := l.awaitForwarded(deadline)
	if errors.Is(err, errNoFrame) {
		return v, nil
	}
	if err != nil {
		return Verdict{}, err
	}
	left, err := unforward(frame, got)
	if err != nil {
		return Verdict{}, fmt.Errorf("forwarded out of %s: %w: %s", at.router.Name, err, summarize(got))
	}
	if !bytes.Equal(left, frame) {
		v.Rewritten, v.Frame = summarize(left), left
	}
	return v, nil
}

// awaitForwarded waits until deadline for a frame at any peer.
func (l *hostLab) awaitForwarded(deadline time.Time) (*hostPort, []byte, error) {
	fds := make([]unix.PollFd, len(l.order))
	for {
		for i, hp := range l.order {
			got, err := hp.recv.next(time.Time{})
			if !errors.Is(err, errNoFrame) {
				return hp, got, err
			}
			fds[i] = unix.PollFd{Fd: int32(hp.recv.fd), Events: unix.POLLIN}
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, nil, errNoFrame
		}
		if _, err := unix.Poll(fds, int(wait/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			return nil, nil, fmt.Errorf("wait for frames: %w", err)
		}
	}
}

// unforward undoes what forwarding did to frame, sent as sent: it must
// leave from the router's MAC to its peer's, an IPv4 packet whose TTL is
// exactly one lower and whose header checksum verifies. The stack trims
// what follows the IPv4 packet (an Ethernet trailer, padding) when it
// forwards, XDP does not. It returns the frame with sent's MACs, TTL and
// trailer back and the header checksum recomputed: the frame as the
// program left it.
func unforward(sent, got []byte) ([]byte, error) {
	if len(got) < 34 || !bytes.Equal(got[0:6], macPeer) || !bytes.Equal(got[6:12], macDUT) {
		return nil, errors.New("it does not go from the router's MAC to its peer's")
	}
	if binary.BigEndian.Uint16(got[12:]) != unix.ETH_P_IP || binary.BigEndian.Uint16(sent[12:]) != unix.ETH_P_IP {
		return nil, errors.New("a forwarded frame that is not an untagged IPv4 packet")
	}
	out := bytes.Clone(got)
	copy(out, sent[:12])
	ip := out[14:]
	hl := int(ip[0]&0x0f) * 4
	if hl < 20 || len(ip) < hl {
		return nil, errors.New("its IPv4 header is cut short")
	}
	if ip[8]+1 != sent[14+8] {
		return nil, fmt.Errorf("it left with TTL %d, arrived with %d: not one hop", ip[8], sent[14+8])
	}
	if nat.Sum(0, ip[:hl]) != 0xffff {
		return nil, errors.New("its IPv4 header checksum does not verify")
	}
	if total := 14 + int(binary.BigEndian.Uint16(ip[2:])); len(out) < len(sent) {
		if len(out) != total || binary.BigEndian.Uint16(sent[16:]) != binary.BigEndian.Uint16(ip[2:]) {
			return nil, fmt.Errorf("it left %d bytes long, arrived %d: more than its trailer is gone", len(out), len(sent))
		}
		out = append(out, sent[total:]...)
		ip = out[14:]
	}
	ip[8]++
	binary.BigEndian.PutUint16(ip[10:], 0)
	binary.BigEndian.PutUint16(ip[10:], ^nat.Sum(0, ip[:hl]))
	return out, nil
}

// expectQuiet fails if a frame reached a peer that the backend did not
// wait for. What left the router's interfaces (the frames it forwarded) is
// passed over, so that a frame the host sends is the next to leave.
func (l *hostLab) expectQuiet() error {
	for _, hp := range l.order {
		got, err := hp.recv.next(time.Time{})
		if err == nil {
			return fmt.Errorf("an unexpected frame reached %s's peer before the frame was sent: %s", hp.router.Name, summarize(got))
		}
		if !errors.Is(err, errNoFrame) {
			return err
		}
		for range maxSkipped {
			if _, err := hp.sent.next(time.Time{}); err != nil {
				break
			}
		}
	}
	return nil
}

// Close detaches the programs, closes the sockets and deletes the
// topology. Calls after the first return the first's result.
func (l *hostLab) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		for _, hp := range l.order {
			for _, inj := range []*injector{hp.inj, hp.out} {
				if inj != nil {
					inj.close()
				}
			}
			for _, c := range []*capture{hp.sent, hp.recv} {
				if c != nil {
					c.close()
				}
			}
		}
		for _, e := range l.egress {
			errs = append(errs, e.Close())
		}
		for _, lk := range l.links {
			errs = append(errs, lk.Close())
		}
		if l.passXDP != nil {
			errs = append(errs, l.passXDP.Close())
		}
		if l.topo != nil {
			errs = append(errs, l.topo.Close())
		}
		if l.k != nil {
			errs = append(errs, l.k.Close())
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}
