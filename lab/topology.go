package lab

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/policy/eval"
	"github.com/xdpc/xdpc/wire"
)

// Topology kinds.
const (
	// TopologyHost is peer ⇄ dut: frames sent by the peer arrive at the
	// DUT's ingress; what the program passes goes to the DUT's stack.
	TopologyHost = "host"
	// TopologyRouter is client ⇄ router[outside, inside] ⇄ server: the
	// router forwards what its outside ingress passes on to the server.
	TopologyRouter = "router"
)

// Port is one end of a veth pair inside a lab namespace.
type Port struct {
	ns      *namespace
	Name    string
	Index   int
	MAC     net.HardwareAddr
	MTU     int
	Address *net.IPNet // nil when the port has no address
}

// Namespace returns the name of the network namespace the port is in.
func (p *Port) Namespace() string { return p.ns.name }

// Topology is a set of namespaces and veth pairs the lab created. Close
// removes all of it.
type Topology struct {
	Kind string
	// Ports by role: "peer", "dut" for host; "client", "outside", "inside",
	// "server" for router.
	Ports map[string]*Port
	// DUT is the port whose ingress runs the policy's program.
	DUT *Port
	// Sender is the port frames are injected from, facing DUT.
	Sender *Port
	// Receiver is where frames passed by the DUT leave the topology: the
	// DUT itself (host) or the server (router).
	Receiver *Port
	// Targets are the far ends of the redirect targets AddRedirectTarget
	// made, by target name.
	Targets map[string]*Port

	// mu guards namespaces and closed, and is held while the topology is
	// built: an interrupt may close it meanwhile.
	mu         sync.Mutex
	namespaces []*namespace
	suffix     string     // of every namespace name
	sink       *namespace // of the redirect targets, once one is added
	closed     bool
	closeOnce  sync.Once
	closeErr   error
}

// errTornDown is returned when a topology is closed while being built.
var errTornDown = errors.New("the lab was torn down while it was being built")

// live holds every topology not yet closed, so an interrupt can tear them
// all down.
var live = struct {
	sync.Mutex
	set map[*Topology]struct{}
}{set: map[*Topology]struct{}{}}

// MACs of the lab's ports. The host peer and DUT use the packet syntax's
// default source and destination MACs, so a frame written without an
// `ether` prefix is addressed from the peer to the DUT.
var (
	macPeer    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	macDUT     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	macInside  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x03}
	macServer  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x04}
	clientAddr = &net.IPNet{IP: net.IPv4(10, 200, 1, 2).To4(), Mask: net.CIDRMask(24, 32)}
	outsideIP  = &net.IPNet{IP: net.IPv4(10, 200, 1, 1).To4(), Mask: net.CIDRMask(24, 32)}
	insideIP   = &net.IPNet{IP: net.IPv4(10, 200, 2, 1).To4(), Mask: net.CIDRMask(24, 32)}
	serverAddr = &net.IPNet{IP: net.IPv4(10, 200, 2, 2).To4(), Mask: net.CIDRMask(24, 32)}
)

// baseSysctls quiet a namespace: no IPv6 (no router solicitations, no
// duplicate address detection, no MLD), so the only frames on its veths are
// the ones the lab sends.
var baseSysctls = map[string]string{
	"net/ipv6/conf/all/disable_ipv6":     "1",
	"net/ipv6/conf/default/disable_ipv6": "1",
}

// routerSysctls make the router namespace forward IPv4, with no reverse
// path filter: what the router does with a frame from an address behind
// its inside must not depend on the settings the namespace inherits from
// the host.
var routerSysctls = map[string]string{
	"net/ipv4/ip_forward":             "1",
	"net/ipv4/conf/all/rp_filter":     "0",
	"net/ipv4/conf/default/rp_filter": "0",
}

// NewTopology builds a topology of kind (TopologyHost or TopologyRouter).
// Its namespaces are named NamespacePrefix, this process's id, a random
// suffix and the role. On error nothing is left behind.
func NewTopology(kind string) (*Topology, error) {
	return newTopologyWith(kind, func(t *Topology, suffix string) error {
		switch kind {
		case TopologyHost:
			return t.buildHost(suffix)
		case TopologyRouter:
			return t.buildRouter(suffix)
		}
		return fmt.Errorf("unknown topology %q (want %s or %s)", kind, TopologyHost, TopologyRouter)
	})
}

// newTopologyWith builds a topology of kind with build, which adds its
// namespaces and veths. On error nothing is left behind.
func newTopologyWith(kind string, build func(t *Topology, suffix string) error) (t *Topology, err error) {
	suffix, err := randomSuffix()
	if err != nil {
		return nil, err
	}
	t = &Topology{Kind: kind, Ports: map[string]*Port{}, suffix: suffix}
	live.Lock()
	live.set[t] = struct{}{}
	live.Unlock()
	// Build under t.mu: a Close from the interrupt handler waits for the
	// build to finish, then sees every namespace it made.
	t.mu.Lock()
	err = build(t, suffix)
	t.mu.Unlock()
	if err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Topology) addNamespace(suffix, role string, sysctls map[string]string) (*namespace, error) {
	ns, err := newNamespace(namespaceName(suffix, role))
	if err != nil {
		return nil, err
	}
	// The caller holds t.mu.
	if t.closed {
		ns.delete()
		return nil, errTornDown
	}
	t.namespaces = append(t.namespaces, ns)
	all := map[string]string{}
	for k, v := range baseSysctls {
		all[k] = v
	}
	for k, v := range sysctls {
		all[k] = v
	}
	if err := writeSysctls(ns.handle, all); err != nil {
		return nil, fmt.Errorf("configure %s: %w", ns.name, err)
	}
	return ns, nil
}

func (t *Topology) buildHost(suffix string) error {
	peerNS, err := t.addNamespace(suffix, "peer", nil)
	if err != nil {
		return err
	}
	dutNS, err := t.addNamespace(suffix, "dut", nil)
	if err != nil {
		return err
	}
	peer, dut, err := t.addVeth(peerNS, "peer0", macPeer, dutNS, "dut0", macDUT)
	if err != nil {
		return err
	}
	t.Ports["peer"], t.Ports["dut"] = peer, dut
	t.Sender, t.DUT, t.Receiver = peer, dut, dut
	return nil
}

func (t *Topology) buildRouter(suffix string) error {
	clientNS, err := t.addNamespace(suffix, "client", nil)
	if err != nil {
		return err
	}
	routerNS, err := t.addNamespace(suffix, "router", routerSysctls)
	if err != nil {
		return err
	}
	serverNS, err := t.addNamespace(suffix, "server", nil)
	if err != nil {
		return err
	}
	client, outside, err := t.addVeth(clientNS, "eth0", macPeer, routerNS, "outside", macDUT)
	if err != nil {
		return err
	}
	inside, server, err := t.addVeth(routerNS, "inside", macInside, serverNS, "eth0", macServer)
	if err != nil {
		return err
	}
	client.Address, outside.Address, inside.Address, server.Address = clientAddr, outsideIP, insideIP, serverAddr
	for _, p := range []*Port{client, outside, inside, server} {
		if err := p.ns.nl.AddrAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: p.Index}}, &netlink.Addr{IPNet: p.Address}); err != nil {
			return fmt.Errorf("add address %s to %s in %s: %w", p.Address, p.Name, p.ns.name, err)
		}
	}
	// Default routes through the router, and static neighbours everywhere:
	// no ARP on the wire, no resolution delay before the first frame.
	for _, r := range []struct{ from, via *Port }{{client, outside}, {server, inside}} {
		route := &netlink.Route{LinkIndex: r.from.Index, Gw: r.via.Address.IP}
		if err := r.from.ns.nl.RouteAdd(route); err != nil {
			return fmt.Errorf("add default route in %s: %w", r.from.ns.name, err)
		}
	}
	for _, n := range []struct{ at, of *Port }{{client, outside}, {outside, client}, {inside, server}, {server, inside}} {
		neigh := &netlink.Neigh{LinkIndex: n.at.Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: n.of.Address.IP, HardwareAddr: n.of.MAC}
		if err := n.at.ns.nl.NeighSet(neigh); err != nil {
			return fmt.Errorf("add neighbour %s on %s in %s: %w", n.of.Address.IP, n.at.Name, n.at.ns.name, err)
		}
	}
	t.Ports["client"], t.Ports["outside"], t.Ports["inside"], t.Ports["server"] = client, outside, inside, server
	t.Sender, t.DUT, t.Receiver = client, outside, server
	return nil
}

// routerOwn reports whether frame, received at the router topology's
// server, is one the router sent of its own accord rather than forwarded:
// an ARP message of the router (resolving a neighbour on the inside), or an
// IP packet from one of the router's addresses (an ICMP error about a frame
// from the server's network, say). A forwarded frame never has the
// router's address as its source: the router discards such a frame as
// martian. Always false for the host topology.
func (t *Topology) routerOwn(frame []byte) bool {
	inside, outside := t.Ports["inside"], t.Ports["outside"]
	if t.Kind != TopologyRouter || inside == nil || outside == nil {
		return false
	}
	p, bad := eval.Parse(frame)
	if bad != nil || !bytes.Equal(p.SrcMAC[:], inside.MAC) {
		return false
	}
	if p.EtherType == wire.EtherTypeARP {
		return true
	}
	for _, own := range []*net.IPNet{inside.Address, outside.Address} {
		if a, ok := netip.AddrFromSlice(own.IP.To4()); ok && p.Family == 4 && p.Src == a {
			return true
		}
	}
	return false
}

// macTarget is the MAC of every redirect target's port in the DUT's
// namespace, macSink of its peer.
var (
	macTarget = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x05}
	macSink   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x06}
)

// AddRedirectTarget gives the DUT's namespace an interface named name, a
// veth whose peer sits in the topology's sink namespace (made on first
// use), and returns that peer: frames the DUT's program redirects to name
// leave through it.
func (t *Topology) AddRedirectTarget(name string) (*Port, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errTornDown
	}
	if t.sink == nil {
		ns, err := t.addNamespace(t.suffix, "sink", nil)
		if err != nil {
			return nil, err
		}
		t.sink = ns
	}
	_, peer, err := t.addVeth(t.DUT.ns, name, macTarget, t.sink, fmt.Sprintf("sink%d", len(t.Targets)), macSink)
	if err != nil {
		return nil, err
	}
	if t.Targets == nil {
		t.Targets = map[string]*Port{}
	}
	t.Targets[name] = peer
	return peer, nil
}

// addVeth creates the veth pair aName (in a) ⇄ bName (in b) with the given
// MACs, turns off their tx checksum offload and GRO, and brings both up.
func (t *Topology) addVeth(a *namespace, aName string, aMAC net.HardwareAddr, b *namespace, bName string, bMAC net.HardwareAddr) (*Port, *Port, error) {
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: aName, HardwareAddr: aMAC},
		PeerName:         bName,
		PeerHardwareAddr: bMAC,
		PeerNamespace:    netlink.NsFd(b.handle),
	}
	if err := a.nl.LinkAdd(veth); err != nil {
		return nil, nil, fmt.Errorf("add veth %s ⇄ %s: %w", aName, bName, err)
	}
	var ports []*Port
	for _, end := range []struct {
		ns   *namespace
		name string
		mac  net.HardwareAddr
	}{{a, aName, aMAC}, {b, bName, bMAC}} {
		l, err := end.ns.nl.LinkByName(end.name)
		if err != nil {
			return nil, nil, fmt.Errorf("find %s in %s: %w", end.name, end.ns.name, err)
		}
		if err := inNamespace(end.ns.handle, func() error { return disableOffloads(end.name) }); err != nil {
			return nil, nil, fmt.Errorf("configure %s in %s: %w", end.name, end.ns.name, err)
		}
		if err := end.ns.nl.LinkSetUp(l); err != nil {
			return nil, nil, fmt.Errorf("bring %s up in %s: %w", end.name, end.ns.name, err)
		}
		ports = append(ports, &Port{ns: end.ns, Name: end.name, Index: l.Attrs().Index, MAC: end.mac, MTU: l.Attrs().MTU})
	}
	return ports[0], ports[1], nil
}

// Namespaces returns the names of the topology's namespaces.
func (t *Topology) Namespaces() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var names []string
	for _, ns := range t.namespaces {
		names = append(names, ns.name)
	}
	return names
}

// Close deletes the topology's namespaces, and with them its veths. It is
// safe to call more than once and from several goroutines.
func (t *Topology) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		namespaces := t.namespaces
		t.mu.Unlock()
		var errs []error
		for _, ns := range namespaces {
			errs = append(errs, ns.delete())
		}
		t.closeErr = errors.Join(errs...)
		live.Lock()
		delete(live.set, t)
		live.Unlock()
	})
	return t.closeErr
}

// CloseAll tears down every topology of this process that is still up. A
// command calls it when interrupted.
func CloseAll() error {
	live.Lock()
	ts := make([]*Topology, 0, len(live.set))
	for t := range live.set {
		ts = append(ts, t)
	}
	live.Unlock()
	var errs []error
	for _, t := range ts {
		errs = append(errs, t.Close())
	}
	return errors.Join(errs...)
}
