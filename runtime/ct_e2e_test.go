package runtime_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/internal/nstest"
	"github.com/xdpc/xdpc/runtime"
)

// hostPolicy is a host firewall that lets in only what belongs to
// connections the table knows: replies to the host's own traffic, which
// its egress program records. Everything else, an unsolicited SYN
// included, is dropped.
const hostPolicy = `
interface "dut0" {
  policy = "host"
  mode   = "native"
}

policy "host" {
  default = "drop"

  rule "replies" {
    ct_state = ["established", "related"]
    action   = "pass"
  }
}
`

// Addresses of the end-to-end topology: the DUT namespace's dut0 and the
// peer namespace's peer0, on one veth.
const (
	dutIP  = "10.9.0.1"
	peerIP = "10.9.0.2"
)

// TestTrackingPolicyEndToEnd applies a compiled default-drop host policy
// that passes only established and related packets to dut0 of a DUT
// namespace, wired to a peer namespace by a veth: the DUT's own TCP
// connection to a listener in the peer namespace completes and carries
// data both ways (its egress program recorded the SYN, so the SYN+ACK and
// what follows are established), while the peer's connection to a
// listener on the DUT never gets its SYN through. The table holds the
// DUT's connection, established and assured, created by egress.
func TestTrackingPolicyEndToEnd(t *testing.T) {
	for _, m := range egressMechanisms(t)[:2] {
		t.Run(m.ask, func(t *testing.T) {
			dut, peer := nstest.New(t), nstest.New(t)
			dut.VethTo(t, "dut0", peer, "peer0")
			wire(t, dut, "dut0", dutIP, peer, "peer0", peerIP)
			opts := runtime.Options{PinRoot: nstest.PinRoot(t), StateDir: t.TempDir(), Netns: dut.Name}
			t.Cleanup(func() {
				if _, err := runtime.Detach(opts, ""); err != nil {
					t.Errorf("detach: %v", err)
				}
			})

			// Listeners on both sides, made before the policy is applied.
			peerLn := listen(t, peer, peerIP+":8080")
			dutLn := listen(t, dut, dutIP+":9090")
			go serveEcho(peerLn)
			accepted := make(chan net.Conn, 1)
			go func() {
				if c, err := dutLn.Accept(); err == nil {
					accepted <- c
				}
			}()

			rep, err := runtime.Apply(compileSrc(t, hostPolicy), runtime.ApplyOptions{Options: opts, Egress: m.ask})
			if err != nil {
				t.Fatal(err)
			}
			if eg := rep.Attachments[0].Egress; eg == nil || eg.Mechanism != m.want {
				t.Fatalf("egress %+v, want %s", eg, m.want)
			}

			// The DUT's own connection: out through egress, replies in.
			var conn net.Conn
			dut.Do(t, func() {
				var err error
				if conn, err = net.DialTimeout("tcp", peerIP+":8080", 5*time.Second); err != nil {
					t.Errorf("the DUT's connection to the peer: %v", err)
				}
			})
			if conn == nil {
				t.FailNow()
			}
			defer conn.Close()
			local := conn.LocalAddr().(*net.TCPAddr)
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write([]byte("ping\n")); err != nil {
				t.Fatalf("write: %v", err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping\n" {
				t.Fatalf("echo from the peer: %q, %v", buf, err)
			}

			// An unsolicited SYN from the peer: dropped, so no connection.
			peer.Do(t, func() {
				c, err := net.DialTimeout("tcp", dutIP+":9090", time.Second)
				if err == nil {
					c.Close()
					t.Errorf("the peer's unsolicited connection to the DUT succeeded")
				} else if !errors.Is(err, unix.ETIMEDOUT) && !strings.Contains(err.Error(), "timeout") {
					t.Errorf("the peer's connection failed with %v, want a timeout (its SYN dropped)", err)
				}
			})
			select {
			case c := <-accepted:
				c.Close()
				t.Errorf("the DUT accepted a connection the policy should have dropped")
			default:
			}

			ls, err := runtime.ListConntrack(opts)
			if err != nil {
				t.Fatal(err)
			}
			var found *runtime.ConntrackFlow
			for i, f := range ls.Flows {
				from, to := f.Original()
				if f.Key.Proto == 6 && from.Port == uint16(local.Port) && to.Port == 8080 {
					found = &ls.Flows[i]
				}
				if f.Key.Proto == 6 && to.Port == 9090 {
					t.Errorf("the dropped SYN made an entry: %+v", f)
				}
			}
			if found == nil {
				t.Fatalf("no entry of the DUT's connection from port %d in %+v", local.Port, ls.Flows)
			}
			if found.Entry.Flags&conntrack.FlagEgress == 0 || found.Entry.Flags&conntrack.FlagPickedUp != 0 {
				t.Errorf("the DUT's connection has flags %b, want made by egress, not picked up", found.Entry.Flags)
			}
			if found.Entry.State != conntrack.TCPEstablished || !found.Assured {
				t.Errorf("the DUT's open connection is %s (assured map: %v), want established in the assured map", found.Entry.State, found.Assured)
			}
			stats, err := runtime.Stats(opts)
			if err != nil {
				t.Fatal(err)
			}
			counted := map[string]uint64{}
			for _, r := range stats[0].Rules {
				counted[r.Rule] = r.Packets
			}
			if counted["replies"] == 0 || counted["default"] == 0 {
				t.Errorf("counters %v, want replies passed and the SYNs dropped", counted)
			}
		})
	}
}

// wire gives each end of the veth its address and the other end as a
// permanent neighbour, so that no ARP needs to pass the policy.
func wire(t *testing.T, a *nstest.Netns, aIf, aIP string, b *nstest.Netns, bIf, bIP string) {
	t.Helper()
	la, err := a.Handle.LinkByName(aIf)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Handle.LinkByName(bIf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		ns     *nstest.Netns
		link   netlink.Link
		ip     string
		peerIP string
		peer   netlink.Link
	}{{a, la, aIP, bIP, lb}, {b, lb, bIP, aIP, la}} {
		addr, err := netlink.ParseAddr(e.ip + "/24")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.ns.Handle.AddrAdd(e.link, addr); err != nil {
			t.Fatalf("address %s: %v", e.ip, err)
		}
		n := &netlink.Neigh{
			LinkIndex: e.link.Attrs().Index, IP: net.ParseIP(e.peerIP), HardwareAddr: e.peer.Attrs().HardwareAddr,
			State: netlink.NUD_PERMANENT, Family: unix.AF_INET,
		}
		if err := e.ns.Handle.NeighAdd(n); err != nil {
			t.Fatalf("neighbour %s: %v", e.peerIP, err)
		}
	}
}

// listen opens a TCP listener at addr in the namespace; it is closed
// when the test ends.
func listen(t *testing.T, ns *nstest.Netns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	ns.Do(t, func() {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			t.Errorf("listen on %s: %v", addr, err)
		}
	})
	if ln == nil {
		t.FailNow()
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serveEcho answers each connection with what it reads, a line at a time.
func serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.Copy(c, c)
		}()
	}
}
