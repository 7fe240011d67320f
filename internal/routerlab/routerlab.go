// Package routerlab builds the router topology of real-socket NAT tests
// and benchmarks (docs/nat.md "Forwarding"):
//
//	client                 router                       server
//	eth0 10.0.0.2/24  <->  in0 10.0.0.1/24 (inside)
//	                       out0 203.0.113.1/24 (outside) <->  eth0 203.0.113.2/24
//
// three network namespaces joined by two veth pairs. The client routes
// everything through the router; the server has a route back to the
// client's network only when Options.ServerRoute says so, so that without
// it only translated traffic (the router's outside address as source)
// gets an answer. Neighbours are static, so nothing waits for ARP.
//
// The router's interfaces take xdpc programs through the runtime's apply
// (Router.Apply), pinned under a private pin root; the client's and the
// server's veths get an XDP program that passes every frame, so frames
// the router redirects into its veths are delivered. For comparison, the
// same NAT can be set up in nftables (Router.NFT, NFTRuleset) or plain
// forwarding (Options.Forwarding). Everything is removed when the test
// ends.
package routerlab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/xdpc/xdpc/internal/ethtool"
	"github.com/xdpc/xdpc/internal/nstest"
	"github.com/xdpc/xdpc/runtime"
)

// The topology's interface names and addresses.
const (
	ClientIf  = "eth0" // the client's veth, in the client namespace
	InsideIf  = "in0"  // the router's inside veth
	OutsideIf = "out0" // the router's outside veth
	ServerIf  = "eth0" // the server's veth, in the server namespace
)

var (
	ClientAddr  = netip.MustParseAddr("10.0.0.2")
	InsideAddr  = netip.MustParseAddr("10.0.0.1")
	OutsideAddr = netip.MustParseAddr("203.0.113.1")
	ServerAddr  = netip.MustParseAddr("203.0.113.2")
	// InsideNet is the client's network, OutsideNet the server's.
	InsideNet  = netip.MustParsePrefix("10.0.0.0/24")
	OutsideNet = netip.MustParsePrefix("203.0.113.0/24")
)

// Options say how the topology is set up.
type Options struct {
	// ServerRoute gives the server a route to InsideNet through the
	// router; without it the server answers only translated packets.
	ServerRoute bool
	// Forwarding turns net.ipv4.ip_forward on in the router (plain
	// forwarding, the nftables baseline); without it the router forwards
	// only what xdpc's apply sets up.
	Forwarding bool
	// TxChecksum leaves transmit checksum offload on at the client's and
	// the server's veths, so their sockets send partial checksums
	// (CHECKSUM_PARTIAL) as containers do; by default it is off there.
	// The router's veths have it off, and every veth has receive checksum
	// offload off, so the receiving stack verifies every checksum.
	TxChecksum bool
}

// End is one veth end: its namespace and name.
type End struct {
	Netns *nstest.Netns
	Name  string
	// Index is its interface index in Netns, MAC its address.
	Index int
	MAC   net.HardwareAddr
}

// endKey identifies a veth end in maps.
type endKey struct {
	netns string
	index int
}

func (e End) key() endKey { return endKey{e.Netns.Name, e.Index} }

// Router is the topology.
type Router struct {
	Client, Router, Server *nstest.Netns
	// The four veth ends.
	ClientEnd, Inside, Outside, ServerEnd End
	// Opts are the runtime options of the router's namespace: a private
	// pin root and state directory.
	Opts runtime.Options
	// links are the pass programs' links, by veth index and namespace.
	links map[endKey]link.Link
	pass  *ebpf.Program
}

// New builds the topology and removes it when t ends.
func New(t testing.TB, o Options) *Router {
	t.Helper()
	r := &Router{Client: nstest.New(t), Router: nstest.New(t), Server: nstest.New(t), links: map[endKey]link.Link{}}
	r.Opts = runtime.Options{PinRoot: nstest.PinRoot(t), StateDir: t.TempDir(), Netns: r.Router.Name}
	t.Cleanup(func() {
		if _, err := runtime.Detach(r.Opts, ""); err != nil {
			t.Errorf("detach the router's programs: %v", err)
		}
		for _, l := range r.links {
			l.Close()
		}
		if r.pass != nil {
			r.pass.Close()
		}
	})
	ci, ii := r.Client.VethTo(t, ClientIf, r.Router, InsideIf)
	oi, si := r.Router.VethTo(t, OutsideIf, r.Server, ServerIf)
	r.ClientEnd = End{Netns: r.Client, Name: ClientIf, Index: ci}
	r.Inside = End{Netns: r.Router, Name: InsideIf, Index: ii}
	r.Outside = End{Netns: r.Router, Name: OutsideIf, Index: oi}
	r.ServerEnd = End{Netns: r.Server, Name: ServerIf, Index: si}
	if err := r.setup(o); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *Router) setup(o Options) error {
	ends := []*End{&r.ClientEnd, &r.Inside, &r.Outside, &r.ServerEnd}
	addrs := []netip.Prefix{
		netip.PrefixFrom(ClientAddr, 24), netip.PrefixFrom(InsideAddr, 24),
		netip.PrefixFrom(OutsideAddr, 24), netip.PrefixFrom(ServerAddr, 24),
	}
	for i, e := range ends {
		lk, err := e.Netns.Handle.LinkByName(e.Name)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", e.Name, e.Netns.Name, err)
		}
		e.MAC = lk.Attrs().HardwareAddr
		a, err := netlink.ParseAddr(addrs[i].String())
		if err != nil {
			return err
		}
		if err := e.Netns.Handle.AddrAdd(lk, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", addrs[i], e.Name, err)
		}
		tx := o.TxChecksum && (e == &r.ClientEnd || e == &r.ServerEnd)
		if err := r.SetOffload(*e, tx, false); err != nil {
			return err
		}
	}
	// Static neighbours on both links.
	for _, n := range []struct {
		on   End
		addr netip.Addr
		mac  net.HardwareAddr
	}{
		{r.ClientEnd, InsideAddr, r.Inside.MAC}, {r.Inside, ClientAddr, r.ClientEnd.MAC},
		{r.Outside, ServerAddr, r.ServerEnd.MAC}, {r.ServerEnd, OutsideAddr, r.Outside.MAC},
	} {
		err := n.on.Netns.Handle.NeighSet(&netlink.Neigh{
			LinkIndex: n.on.Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: n.addr.AsSlice(), HardwareAddr: n.mac,
		})
		if err != nil {
			return fmt.Errorf("static neighbour %s on %s: %w", n.addr, n.on.Name, err)
		}
	}
	routes := []struct {
		end End
		dst netip.Prefix
		via netip.Addr
	}{{r.ClientEnd, netip.MustParsePrefix("0.0.0.0/0"), InsideAddr}}
	if o.ServerRoute {
		routes = append(routes, struct {
			end End
			dst netip.Prefix
			via netip.Addr
		}{r.ServerEnd, InsideNet, OutsideAddr})
	}
	for _, rt := range routes {
		_, dst, _ := net.ParseCIDR(rt.dst.String())
		err := rt.end.Netns.Handle.RouteAdd(&netlink.Route{LinkIndex: rt.end.Index, Dst: dst, Gw: rt.via.AsSlice()})
		if err != nil {
			return fmt.Errorf("route %s via %s in %s: %w", rt.dst, rt.via, rt.end.Netns.Name, err)
		}
	}
	if o.Forwarding {
		if err := r.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
			return err
		}
	}
	for _, e := range []End{r.ClientEnd, r.ServerEnd} {
		if err := r.AttachPass(e); err != nil {
			return err
		}
	}
	return nil
}

// Sysctl sets a sysctl (dotted name) in the router's namespace.
func (r *Router) Sysctl(name, value string) error {
	return r.Router.Run(func() error {
		p := filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("set %s in %s: %w", name, r.Router.Name, err)
		}
		return nil
	})
}

// ReadSysctl reads a sysctl (dotted name) in the router's namespace.
func (r *Router) ReadSysctl(name string) (string, error) {
	var v string
	err := r.Router.Run(func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/")))
		v = strings.TrimSpace(string(b))
		return err
	})
	return v, err
}

// SetOffload switches transmit and receive checksum offload of a veth
// end.
func (r *Router) SetOffload(e End, tx, rx bool) error {
	return e.Netns.Run(func() error {
		if err := ethtool.Set(e.Name, ethtool.TxChecksum, tx); err != nil {
			return err
		}
		return ethtool.Set(e.Name, ethtool.RxChecksum, rx)
	})
}

// Offload reports whether transmit and receive checksum offload are on.
func (r *Router) Offload(e End) (tx, rx bool, err error) {
	err = e.Netns.Run(func() error {
		var err error
		if tx, err = ethtool.Get(e.Name, ethtool.TxChecksum); err != nil {
			return err
		}
		rx, err = ethtool.Get(e.Name, ethtool.RxChecksum)
		return err
	})
	return tx, rx, err
}

// AttachPass attaches an XDP program that passes every frame to a veth
// end (native mode), so that frames redirected or sent into its peer
// are delivered. It stays until the test ends.
func (r *Router) AttachPass(e End) error {
	if r.pass == nil {
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: "xdpc_lab_pass", Type: ebpf.XDP, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}, // XDP_PASS
		})
		if err != nil {
			return fmt.Errorf("load the pass program: %w", err)
		}
		r.pass = p
	}
	return e.Netns.Run(func() error {
		l, err := link.AttachXDP(link.XDPOptions{Program: r.pass, Interface: e.Index, Flags: link.XDPDriverMode})
		if err != nil {
			return fmt.Errorf("attach the pass program to %s in %s: %w", e.Name, e.Netns.Name, err)
		}
		r.links[e.key()] = l
		return nil
	})
}

// Apply applies an artifact to the router's interfaces its policy names
// (OutsideIf, InsideIf) through the runtime, as xdpc apply does, with the
// policy's NAT outside addresses when given.
func (r *Router) Apply(elf []byte, nat []runtime.NATAddresses) (*runtime.ApplyReport, error) {
	return runtime.Apply(elf, runtime.ApplyOptions{Options: r.Opts, NAT: nat})
}
