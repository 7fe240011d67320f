package lab

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/xdpc/xdpc/internal/checksum"
	"github.com/xdpc/xdpc/internal/livegen"
	"github.com/xdpc/xdpc/policy"
)

const hostLabTestPolicy = `
interface "eth0" { policy = "outside" }
interface "eth1" { policy = "inside" }

policy "outside" {
  default = "pass"
}

policy "inside" {
  default = "pass"
}

nat "edge" {
  outside = "eth0"
  inside  = "eth1"

  masquerade {
    src   = "10.0.0.0/24"
    to    = "203.0.113.1"
    ports = "20000-59999"
  }
}
`

// TestHostLabFollowsForwarding replays frames of every fate the
// host-router topology tells apart: translated and forwarded either way,
// routed back out of the interface they arrived on, kept by the router
// (addressed to it, TTL 1), the host's own, and a drop. A frame the router
// kept has the pass as its line, without the frame NAT made of it; every
// other line is the reference's. The first frame, translated with its
// checksums whole, goes the datapath's way: XDP redirects it into eth0.
func TestHostLabFollowsForwarding(t *testing.T) {
	cfg, diags := policy.Load("host.hcl", []byte(hostLabTestPolicy), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	b, err := NewHostBackend(BackendLab, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ref, err := NewHostBackend(BackendReference, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const list = `on eth1 udp 10.0.0.5:5353 > 198.51.100.53:53 len 30
on eth0 udp 198.51.100.53:53 > 203.0.113.1:20000
on eth0 udp 198.51.100.53:53 > 203.0.113.1:5353 len 30
on eth0 udp 192.0.2.1:1000 > 198.51.100.9:53
on eth1 udp 10.0.0.6:1000 > 10.0.0.7:53
on eth0 out udp 203.0.113.1:4000 > 198.51.100.53:53
on eth0 udp 192.0.2.1:1000 > 10.201.0.1:53
on eth1 udp 10.0.0.8:1000 > 198.51.100.53:53 ttl 1
`
	frames, err := ReadPacketList("packets.txt", strings.NewReader(list), PacketListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const kept = 6 // the frames from here on the router keeps
	for i, f := range frames {
		want, err := ref.Run(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Run(f)
		if err != nil {
			t.Errorf("packet %d: %v", i+1, err)
			continue
		}
		if i == 0 {
			router := b.(*hostLab).topo.Ports["eth0"]
			st, err := livegen.ReadVethStats(router.Namespace(), router.Name)
			if err != nil {
				t.Fatal(err)
			}
			if st.Xmit != 1 {
				t.Errorf("the translated datagram: eth0 put %d frames redirected by XDP on its peer's ring, want 1", st.Xmit)
			}
		}
		if i >= kept {
			want.Rewritten, want.Frame = "", nil
		}
		if got.String() != want.String() || !bytes.Equal(got.Frame, want.Frame) {
			t.Errorf("packet %d:\n got %s\nwant %s", i+1, got, want)
		}
	}
}

// TestUnforward checks that only exactly one hop of forwarding is undone.
func TestUnforward(t *testing.T) {
	sent, err := ParsePacket("udp 10.0.0.5:1 > 198.51.100.53:53 ttl 9")
	if err != nil {
		t.Fatal(err)
	}
	forward := func(hops int, trim bool) []byte {
		f := bytes.Clone(sent)
		copy(f, append(bytes.Clone(macPeer), macDUT...))
		ip := f[14:]
		ip[8] -= byte(hops)
		binary.BigEndian.PutUint16(ip[10:], 0)
		binary.BigEndian.PutUint16(ip[10:], ^uint16(checksum.Sum(ip[:20], 0)))
		if trim {
			f = f[:14+int(binary.BigEndian.Uint16(ip[2:]))]
		}
		return f
	}
	for _, trim := range []bool{false, true} {
		got, err := unforward(sent, forward(1, trim))
		if err != nil || !bytes.Equal(got, sent) {
			t.Errorf("one hop (trimmed %v): %v\n% x\nwant\n% x", trim, err, got, sent)
		}
	}
	if _, err := unforward(sent, forward(2, false)); err == nil {
		t.Error("two hops undone as one")
	}
	bad := forward(1, false)
	bad[14+10] ^= 1
	if _, err := unforward(sent, bad); err == nil {
		t.Error("a bad IPv4 header checksum undone")
	}
	if _, err := unforward(sent, sent); err == nil {
		t.Error("a frame with the sender's MACs taken as forwarded")
	}
}

// TestHostRouterTopology checks the host-router topology of a NAT file:
// a router veth per interface with the DUT's MAC, a peer with the peer's,
// offloads off, the router's sysctls and routes, and nothing left after
// Close.
func TestHostRouterTopology(t *testing.T) {
	cfg, diags := policy.Load("host.hcl", []byte(hostLabTestPolicy), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	def, routes := hostRoutes(cfg)
	if def != "eth0" || len(routes["eth1"]) != 1 || routes["eth1"][0].String() != "10.0.0.0/24" {
		t.Fatalf("routes: default via %s, %v", def, routes)
	}
	topo, err := newTopologyWith(TopologyHostRouter, func(t *Topology, suffix string) error {
		return t.buildHostRouter(suffix, []string{"eth0", "eth1"}, def, routes)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	for _, name := range []string{"eth0", "eth1"} {
		router, peer := topo.Ports[name], topo.Ports["peer-"+name]
		if router == nil || peer == nil {
			t.Fatalf("no port %s or its peer: %v", name, topo.Ports)
		}
		if router.MAC.String() != macDUT.String() || peer.MAC.String() != macPeer.String() {
			t.Errorf("%s: MACs %s ⇄ %s", name, router.MAC, peer.MAC)
		}
		for _, p := range []*Port{router, peer} {
			var on bool
			if err := inNamespace(p.ns.handle, func() error {
				var err error
				on, err = txChecksumOffload(p.Name)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if on {
				t.Errorf("%s in %s: tx checksum offload is on", p.Name, p.Namespace())
			}
		}
	}
	router := topo.Ports["eth0"].ns
	for sysctl, want := range map[string]string{
		"ipv4/ip_forward":               "1",
		"ipv4/conf/all/rp_filter":       "0",
		"ipv4/conf/eth1/rp_filter":      "0",
		"ipv4/conf/all/send_redirects":  "0",
		"ipv4/conf/eth0/send_redirects": "0",
		"ipv4/conf/eth1/accept_local":   "1",
		"ipv6/conf/eth0/disable_ipv6":   "1",
	} {
		var got []byte
		if err := inNamespace(router.handle, func() error {
			var err error
			got, err = os.ReadFile("/proc/sys/net/" + sysctl)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(got)); got != want {
			t.Errorf("router %s = %s, want %s", sysctl, got, want)
		}
	}
	for dst, via := range map[string]string{"198.51.100.7": "eth0", "10.0.0.5": "eth1"} {
		rs, err := router.nl.RouteGet(net.ParseIP(dst))
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || rs[0].LinkIndex != topo.Ports[via].Index || !rs[0].Gw.Equal(topo.Ports["peer-"+via].Address.IP) {
			t.Errorf("route to %s: %v, want via %s's peer", dst, rs, via)
		}
	}
	names := topo.Namespaces()
	if err := topo.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if namespaceExists(n) {
			t.Errorf("namespace %s is left after Close", n)
		}
	}
}
