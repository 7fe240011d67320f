package routerlab_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/internal/routerlab"
	"github.com/xdpc/xdpc/runtime"
)

// The static host: an inside address of the client's and the outside
// address it is seen as.
var (
	staticInside  = netip.MustParseAddr("10.0.0.7")
	staticOutside = netip.MustParseAddr("203.0.113.7")
)

// gatePolicy is an edge router: the outside drops what it did not ask
// for, admitting replies and what is forwarded (the web forward, and one
// port of the static host), the inside passes everything; the client's
// network is masqueraded, the outside's port 8080 forwarded to the
// client's port 80, and the static host translated 1:1. EXTRA is where a
// re-apply adds a rule.
const gatePolicy = `
interface "out0" {
  policy = "outside"
}
interface "in0" {
  policy = "inside"
}
policy "outside" {
  default = "drop"
  rule "replies" {
    ct_state = ["established", "related"]
    action   = "pass"
  }
  rule "web" {
    proto    = "tcp"
    dst      = "203.0.113.1"
    dst_port = 8080
    action   = "pass"
  }
  rule "static" {
    proto    = "tcp"
    dst      = "203.0.113.7"
    dst_port = 5003
    action   = "pass"
  }
%s}
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
  static {
    inside  = "10.0.0.7"
    outside = "203.0.113.7"
  }
}
`

// gateExtra is the rule the second version of gatePolicy adds.
const gateExtra = `  rule "ssh" {
    proto    = "tcp"
    dst      = "203.0.113.1"
    dst_port = 22
    action   = "count"
  }
`

var gateAddrs = []runtime.NATAddresses{{
	Block:      "edge",
	Masquerade: []netip.Addr{routerlab.OutsideAddr},
	Forward:    []netip.Addr{routerlab.OutsideAddr},
	Static:     []netip.Addr{staticOutside},
}}

// compileGate compiles both parts of gatePolicy, with the extra rule or
// without.
func compileGate(t testing.TB, extra bool) [][]byte {
	t.Helper()
	src := fmt.Sprintf(gatePolicy, "")
	if extra {
		src = fmt.Sprintf(gatePolicy, gateExtra)
	}
	return compileParts(t, "gate.hcl", src)
}

// newGate builds the router with the static host's addresses and
// neighbours, and applies elfs.
func newGate(t *testing.T, tx bool, elfs [][]byte) *routerlab.Router {
	t.Helper()
	r := routerlab.New(t, routerlab.Options{TxChecksum: tx})
	for _, err := range []error{
		r.AddAddr(r.ClientEnd, netip.PrefixFrom(staticInside, 24)),
		r.Neigh(r.Inside, staticInside, r.ClientEnd.MAC),
		r.Neigh(r.ServerEnd, staticOutside, r.Outside.MAC),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	applyAll(t, r, elfs)
	return r
}

func applyAll(t *testing.T, r *routerlab.Router, elfs [][]byte) {
	t.Helper()
	for _, elf := range elfs {
		if _, err := r.Apply(elf, gateAddrs); err != nil {
			t.Fatal(err)
		}
	}
}

// regimes are the two checksum regimes: the client's and the server's
// sockets sending full checksums (transmit offload off) and partial
// ones (on); receivers verify (receive offload off) and the router's
// veths complete what the stack forwards (transmit offload off).
var regimes = []struct {
	name string
	tx   bool
}{{"full-checksums", false}, {"partial-checksums", true}}

// TestNATSockets: real sockets through the router's compiled NAT, the
// server having no route back to the inside, the outside dropping what
// was not asked for. TCP 1 MB each way through masquerade (the server
// sees the outside address), UDP and ping; a UDP send to a closed port
// gets ECONNREFUSED (the ICMP error translated back); the port forward
// reaches the inside server (which sees the server's address); the
// static host both ways at its outside address; unsolicited traffic
// dropped. Each exchange reports the path its packets took: with full
// checksums XDP redirects them, with partial ones it hands them to the
// stack (docs/nat.md "Forwarding").
func TestNATSockets(t *testing.T) {
	elfs := compileGate(t, false)
	for _, rg := range regimes {
		t.Run(rg.name, func(t *testing.T) {
			r := newGate(t, rg.tx, elfs)
			// path runs one exchange and checks which way the router
			// forwarded it: at least packets frames, by the stack when
			// the checksums are partial (stack) and by XDP otherwise.
			path := func(name string, packets uint64, stack bool, fn func() error) {
				t.Helper()
				before, err := r.Paths()
				if err != nil {
					t.Fatal(err)
				}
				if err := fn(); err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				after, err := r.Paths()
				if err != nil {
					t.Fatal(err)
				}
				d := after.Sub(before)
				t.Logf("%s: %v", name, d)
				via, other := d.Redirected, d.Stack
				if stack {
					via, other = d.Stack, d.Redirected
				}
				if via < packets || other > via/10 {
					t.Errorf("%s: %v; want at least %d by the %s and few the other way", name, d, packets, map[bool]string{true: "stack", false: "XDP redirect"}[stack])
				}
			}
			segments := uint64(2 * mb / 1500)
			path("tcp masquerade", segments, rg.tx, func() error {
				peer, err := routerlab.Exchange(r.Server, serverPort, r.Client, serverPort, mb, timeout)
				if err == nil && peer.Addr() != routerlab.OutsideAddr {
					err = fmt.Errorf("the server saw %v, want the outside address %v", peer, routerlab.OutsideAddr)
				}
				return err
			})
			path("tcp forward", segments, rg.tx, func() error {
				peer, err := routerlab.Exchange(r.Client, clientPort, r.Server, netip.AddrPortFrom(routerlab.OutsideAddr, 8080), mb, timeout)
				if err == nil && peer.Addr() != routerlab.ServerAddr {
					err = fmt.Errorf("the forwarded client saw %v, want the server's %v", peer, routerlab.ServerAddr)
				}
				return err
			})
			path("tcp static outbound", segments, rg.tx, func() error {
				peer, err := routerlab.ExchangeFrom(r.Server, serverPort, r.Client, staticInside, serverPort, mb, timeout)
				if err == nil && peer.Addr() != staticOutside {
					err = fmt.Errorf("the server saw the static host as %v, want %v", peer, staticOutside)
				}
				return err
			})
			path("tcp static inbound", segments, rg.tx, func() error {
				peer, err := routerlab.Exchange(r.Client, netip.AddrPortFrom(staticInside, 5003), r.Server, netip.AddrPortFrom(staticOutside, 5003), mb, timeout)
				if err == nil && peer.Addr() != routerlab.ServerAddr {
					err = fmt.Errorf("the static host saw %v, want the server's %v", peer, routerlab.ServerAddr)
				}
				return err
			})
			path("udp masquerade", 2*20, rg.tx, func() error {
				dns := netip.AddrPortFrom(routerlab.ServerAddr, 53)
				peer, err := routerlab.ExchangeUDP(r.Server, dns, r.Client, dns, 20, 1200, timeout)
				if err == nil && peer.Addr() != routerlab.OutsideAddr {
					err = fmt.Errorf("the UDP server saw %v, want the outside address %v", peer, routerlab.OutsideAddr)
				}
				return err
			})
			// Echoes carry a full ICMP checksum (no offload): XDP
			// redirects them in both regimes.
			path("ping", 2*5, false, func() error {
				from, err := routerlab.Ping(r.Client, routerlab.ServerAddr, 5, 5*time.Second)
				if err == nil && from != routerlab.ServerAddr {
					err = fmt.Errorf("echo replies from %v, want %v", from, routerlab.ServerAddr)
				}
				return err
			})
			t.Run("udp-refused", func(t *testing.T) {
				// The datagram takes the path of its checksum; the
				// server's port unreachable, translated (its checksums
				// are never partial), is redirected in both regimes.
				before, err := r.Paths()
				if err != nil {
					t.Fatal(err)
				}
				if err := routerlab.UDPRefused(r.Client, netip.AddrPortFrom(routerlab.ServerAddr, 9999), 5, 5*time.Second); err != nil {
					t.Fatal(err)
				}
				after, err := r.Paths()
				if err != nil {
					t.Fatal(err)
				}
				d := after.Sub(before)
				t.Logf("udp refused: %v", d)
				if d.Redirected < 1 || !rg.tx && d.Stack > 0 {
					t.Errorf("udp refused: %v; want the error redirected by XDP, and with full checksums nothing by the stack", d)
				}
			})
			t.Run("unsolicited", func(t *testing.T) {
				// Nothing the outside did not ask for gets in: not to the
				// masquerade address's other ports, not to the static
				// host's, not to the inside network.
				for _, dst := range []netip.AddrPort{
					netip.AddrPortFrom(routerlab.OutsideAddr, 80),
					netip.AddrPortFrom(staticOutside, 5001),
				} {
					listen := netip.AddrPortFrom(netip.IPv4Unspecified(), dst.Port())
					// Dropped, not refused: the router's own stack
					// would reset a connection to its address.
					_, err := routerlab.Exchange(r.Client, listen, r.Server, dst, 1, 2*time.Second)
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						t.Errorf("a connection to %v from outside, unasked: %v; want it dropped (a timeout)", dst, err)
					}
				}
				if err := routerlab.UDPRefused(r.Server, netip.AddrPortFrom(staticOutside, 9999), 2, 2*time.Second); err == nil {
					t.Error("a UDP send to the static host's closed port was answered: the outside passed it")
				}
			})
		})
	}
}

// TestNATSocketsReapply: a masqueraded TCP connection lives through five
// re-applies, alternating two versions of the policy (a rule added and
// removed): it carries data after each, and its translation in the
// connection table stays the same.
func TestNATSocketsReapply(t *testing.T) {
	versions := [][][]byte{compileGate(t, false), compileGate(t, true)}
	for _, rg := range regimes {
		t.Run(rg.name, func(t *testing.T) {
			r := newGate(t, rg.tx, versions[0])
			deadline := time.Now().Add(timeout)
			var ln net.Listener
			r.Server.Do(t, func() {
				var err error
				if ln, err = net.Listen("tcp4", serverPort.String()); err != nil {
					t.Fatal(err)
				}
			})
			defer ln.Close()
			ln.(*net.TCPListener).SetDeadline(deadline)
			echoed := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					echoed <- err
					return
				}
				defer c.Close()
				c.SetDeadline(deadline)
				_, err = io.Copy(c, c)
				echoed <- err
			}()
			var c net.Conn
			r.Client.Do(t, func() {
				var err error
				if c, err = (&net.Dialer{Deadline: deadline}).Dial("tcp4", serverPort.String()); err != nil {
					t.Fatal(err)
				}
			})
			defer c.Close()
			c.SetDeadline(deadline)
			rd := bufio.NewReader(c)
			echo := func(i int) {
				t.Helper()
				msg := bytes.Repeat([]byte{byte(i), 0x5a, byte(i * 7)}, 20000)
				go c.Write(msg)
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(rd, got); err != nil {
					t.Fatalf("echo after %d re-applies: %v", i, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("echo after %d re-applies differs", i)
				}
			}
			local := c.LocalAddr().(*net.TCPAddr).AddrPort()
			via := func() netip.AddrPort {
				t.Helper()
				ls, err := runtime.ListConntrack(r.Opts)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range ls.Flows {
					from, _ := f.Original()
					if f.Entry.NAT == conntrack.NATSource && f.Key.Proto == 6 && from.Port == local.Port() {
						return netip.AddrPortFrom(netip.AddrFrom4(f.Entry.NATAddr), f.Entry.NATPort)
					}
				}
				t.Fatalf("no masqueraded TCP flow of %v in the connection table", local)
				return netip.AddrPort{}
			}
			echo(0)
			first := via()
			if first.Addr() != routerlab.OutsideAddr {
				t.Fatalf("translated to %v, want the outside address", first)
			}
			for i := 1; i <= 5; i++ {
				applyAll(t, r, versions[i%2])
				echo(i)
				if got := via(); got != first {
					t.Errorf("after re-apply %d the connection is translated to %v, was %v", i, got, first)
				}
			}
			t.Logf("translated to %v through 5 re-applies", first)
			c.(*net.TCPConn).CloseWrite()
			if err := <-echoed; err != nil {
				t.Errorf("the server's echo: %v", err)
			}
		})
	}
}
