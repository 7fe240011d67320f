package routerlab_test

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/internal/routerlab"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/runtime"
)

// edgePolicy masquerades the client's network behind the router's
// outside address and forwards the outside address's port 8080 to the
// client's port 80; both parts pass everything else.
const edgePolicy = `
interface "out0" {
  policy = "outside"
}
interface "in0" {
  policy = "inside"
}
policy "outside" {
  default = "pass"
}
policy "inside" {
  default = "pass"
}
nat "edge" {
  outside = "out0"
  inside  = "in0"
  masquerade {
    src   = "10.0.0.0/24"
    to    = "203.0.113.1"
    ports = "20000-59999"
  }
  forward "web" {
    proto    = "tcp"
    dst      = "203.0.113.1"
    dst_port = 8080
    to       = "10.0.0.2:80"
  }
}
`

// compileEdge compiles both parts of edgePolicy.
func compileEdge(t testing.TB) [][]byte { return compileParts(t, "edge.hcl", edgePolicy) }

// compileParts compiles every policy of the file src, named name, to an
// ELF object, in file order: the parts a router's interfaces apply.
func compileParts(t testing.TB, name, src string) [][]byte {
	t.Helper()
	cfg, diags := policy.Load(name, []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	var elfs [][]byte
	for _, p := range cfg.Policies {
		art, err := compiler.Compile(cfg, p, compiler.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := art.WriteELF(&b); err != nil {
			t.Fatal(err)
		}
		elfs = append(elfs, b.Bytes())
	}
	return elfs
}

// TestXDPNAT: the compiled NAT, applied to the router through the
// runtime, carries TCP both ways for a masqueraded client (1 MB each
// way, to a server with no route back, which sees the outside address)
// and for a forwarded server, and UDP; the connection table holds the
// translations. With partial checksums from the client and the server
// too (transmit checksum offload on).
func TestXDPNAT(t *testing.T) {
	elfs := compileEdge(t)
	for _, tx := range []bool{false, true} {
		name := "full-checksums"
		if tx {
			name = "partial-checksums"
		}
		t.Run(name, func(t *testing.T) {
			r := routerlab.New(t, routerlab.Options{TxChecksum: tx})
			addrs := []runtime.NATAddresses{{Block: "edge", Masquerade: []netip.Addr{routerlab.OutsideAddr}, Forward: []netip.Addr{routerlab.OutsideAddr}}}
			for _, elf := range elfs {
				rep, err := r.Apply(elf, addrs)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range rep.Notes {
					if strings.Contains(n, "ARP") {
						t.Errorf("ARP warning for an address out0 has: %s", n)
					}
				}
			}
			peer, err := routerlab.Exchange(r.Server, serverPort, r.Client, serverPort, mb, timeout)
			if err != nil {
				t.Fatalf("masquerade: %v", err)
			}
			if peer.Addr() != routerlab.OutsideAddr {
				t.Errorf("the server saw %v, want the outside address %v", peer, routerlab.OutsideAddr)
			}
			if peer, err = routerlab.Exchange(r.Client, clientPort, r.Server, netip.AddrPortFrom(routerlab.OutsideAddr, 8080), mb, timeout); err != nil {
				t.Fatalf("forward: %v", err)
			}
			if peer.Addr() != routerlab.ServerAddr {
				t.Errorf("the forwarded client saw %v, want the server's %v", peer, routerlab.ServerAddr)
			}
			dns := netip.AddrPortFrom(routerlab.ServerAddr, 53)
			if peer, err = routerlab.ExchangeUDP(r.Server, dns, r.Client, dns, 10, 512, timeout); err != nil {
				t.Fatalf("udp masquerade: %v", err)
			}
			if peer.Addr() != routerlab.OutsideAddr {
				t.Errorf("the UDP server saw %v, want the outside address %v", peer, routerlab.OutsideAddr)
			}
			ls, err := runtime.ListConntrack(r.Opts)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[conntrack.NATKind]int{}
			for _, f := range ls.Flows {
				kinds[f.Entry.NAT]++
			}
			if kinds[conntrack.NATSource] < 2 || kinds[conntrack.NATDestination] < 1 {
				t.Errorf("translations in the table %v, want 2 source NAT and 1 destination NAT at least", kinds)
			}
		})
	}
}

// TestXDPNATPortChoice: the kernel allocates the port the reference
// predicts from the seed apply drew and kept, and skips a port the
// router's own socket holds once apply has read it.
func TestXDPNATPortChoice(t *testing.T) {
	elfs := compileEdge(t)
	r := routerlab.New(t, routerlab.Options{})
	addrs := []runtime.NATAddresses{{Block: "edge", Masquerade: []netip.Addr{routerlab.OutsideAddr}}}
	apply := func() {
		t.Helper()
		for _, elf := range elfs {
			if _, err := r.Apply(elf, addrs); err != nil {
				t.Fatal(err)
			}
		}
	}
	apply()
	nt, err := runtime.OpenNAT(r.Opts)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := nt.Seed()
	nt.Close()
	if err != nil {
		t.Fatal(err)
	}
	// A source port outside 20000-59999: the hash picks the start.
	const sport, dport = 5000, 53
	start, ok := nat.Allocate(nat.Ports{Lo: 20000, Hi: 59999}, sport,
		nat.Hash(seed, routerlab.ClientAddr, routerlab.ServerAddr, sport, dport, 17), func(uint16) bool { return false })
	if !ok {
		t.Fatal("no port predicted")
	}
	// The router's own socket on the predicted port, seen by the next apply.
	var held *net.UDPConn
	r.Router.Do(t, func() {
		if held, err = net.ListenUDP("udp4", &net.UDPAddr{Port: int(start)}); err != nil {
			t.Fatal(err)
		}
	})
	defer held.Close()
	apply()

	var srv, cli *net.UDPConn
	r.Server.Do(t, func() {
		if srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: routerlab.ServerAddr.AsSlice(), Port: dport}); err != nil {
			t.Fatal(err)
		}
	})
	defer srv.Close()
	r.Client.Do(t, func() {
		if cli, err = net.DialUDP("udp4", &net.UDPAddr{IP: routerlab.ClientAddr.AsSlice(), Port: sport}, &net.UDPAddr{IP: routerlab.ServerAddr.AsSlice(), Port: dport}); err != nil {
			t.Fatal(err)
		}
	})
	defer cli.Close()
	if _, err := cli.Write([]byte("query")); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	_, from, err := srv.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	want := start + 1 // start is reserved
	if start == 59999 {
		want = 20000
	}
	if from.Addr() != routerlab.OutsideAddr || from.Port() != want {
		t.Errorf("the server saw %v, want %v:%d (the predicted %d being the router's)", from, routerlab.OutsideAddr, want, start)
	}
}
