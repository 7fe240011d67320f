package runtime_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/internal/nstest"
	"github.com/xdpc/xdpc/runtime"
)

// The socket tests run a default-drop host policy on the DUT's dut0: what
// arrives passes when it belongs to a connection the table knows (the
// DUT's own traffic, recorded by the egress program, or an allowed
// inbound service's), or when it opens a connection to that service.
// Neither ARP nor IPv6 neighbour discovery passes it: both ends of the
// veth have static neighbours, so neither asks. Checksum offloads stay as
// veth has them (on): the DUT's own packets leave with partial checksums,
// as they do on a real host.
const (
	socketsPolicyV1 = `
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
  rule "service" {
    proto    = "tcp"
    dst_port = 8443
    action   = "pass"
  }
}
`
	// socketsPolicyV2 is V1 and one more service: another program, the
	// same verdicts for the traffic of the tests.
	socketsPolicyV2 = `
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
  rule "metrics" {
    proto    = "tcp"
    src      = "10.9.9.0/24"
    dst_port = 9100
    action   = "pass"
  }
  rule "service" {
    proto    = "tcp"
    dst_port = 8443
    action   = "pass"
  }
}
`
)

// IPv6 addresses of the socket tests' veth, beside dutIP and peerIP.
const (
	dutIP6  = "2001:db8:9::1"
	peerIP6 = "2001:db8:9::2"
)

// Ports of the socket tests.
const (
	peerTCPEcho   = 8080 // the peer's TCP echo service
	peerUDPEcho   = 7007 // the peer's UDP echo service
	peerUDPClosed = 7009 // nothing listens there on the peer
	dutService    = 8443 // the DUT's TCP service the policy lets in
	dutOther      = 9090 // a DUT listener the policy does not let in
	dutUDP        = 7100 // a DUT UDP socket
	peerUDP       = 7101 // the peer's UDP socket that writes to it
)

// sockTimeout bounds every wait for something that should happen: well
// above what it takes natively, and what it takes under emulation.
const sockTimeout = 15 * time.Second

// family is one address family of the topology.
type family struct {
	name      string
	dut, peer string
}

var socketFamilies = []family{{"ipv4", dutIP, peerIP}, {"ipv6", dutIP6, peerIP6}}

// hostPair is a DUT namespace and a peer namespace on one veth, dut0 <->
// peer0, with addresses and static neighbours.
type hostPair struct {
	dut, peer *nstest.Netns
	opts      runtime.Options
}

// newHostPair makes the topology: IPv4 always, IPv6 too when ipv6 is set
// (otherwise the namespaces send nothing of their own). The DUT may open
// ICMP echo sockets (ping_group_range). Whatever is applied is detached
// when the test ends.
func newHostPair(t *testing.T, ipv6 bool) *hostPair {
	t.Helper()
	var o []nstest.Option
	if ipv6 {
		o = append(o, nstest.WithIPv6())
	}
	p := &hostPair{dut: nstest.New(t, o...), peer: nstest.New(t, o...)}
	p.dut.VethTo(t, "dut0", p.peer, "peer0")
	wire(t, p.dut, "dut0", dutIP, p.peer, "peer0", peerIP)
	if ipv6 {
		wire6(t, p.dut, "dut0", dutIP6, p.peer, "peer0", peerIP6)
	}
	gid := strconv.Itoa(os.Getgid())
	p.dut.Do(t, func() {
		if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte(gid+" "+gid), 0o644); err != nil {
			t.Errorf("allow ICMP echo sockets: %v", err)
		}
	})
	p.opts = runtime.Options{PinRoot: nstest.PinRoot(t), StateDir: t.TempDir(), Netns: p.dut.Name}
	t.Cleanup(func() {
		if _, err := runtime.Detach(p.opts, ""); err != nil {
			t.Errorf("detach: %v", err)
		}
	})
	return p
}

// wire6 is wire for IPv6: a /64 on each end, without duplicate address
// detection, and the other end as a permanent neighbour, so that no
// neighbour discovery needs to pass the policy.
func wire6(t *testing.T, a *nstest.Netns, aIf, aIP string, b *nstest.Netns, bIf, bIP string) {
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
		ns         *nstest.Netns
		link, peer netlink.Link
		ip, peerIP string
	}{{a, la, lb, aIP, bIP}, {b, lb, la, bIP, aIP}} {
		addr, err := netlink.ParseAddr(e.ip + "/64")
		if err != nil {
			t.Fatal(err)
		}
		addr.Flags = unix.IFA_F_NODAD
		if err := e.ns.Handle.AddrAdd(e.link, addr); err != nil {
			t.Fatalf("address %s: %v", e.ip, err)
		}
		n := &netlink.Neigh{
			LinkIndex: e.link.Attrs().Index, IP: net.ParseIP(e.peerIP), HardwareAddr: e.peer.Attrs().HardwareAddr,
			State: netlink.NUD_PERMANENT, Family: unix.AF_INET6,
		}
		if err := e.ns.Handle.NeighAdd(n); err != nil {
			t.Fatalf("neighbour %s: %v", e.peerIP, err)
		}
	}
}

// apply applies a policy with the egress mechanism mech and checks that
// the egress program is attached so.
func (p *hostPair) apply(t *testing.T, elf []byte, mech string) *runtime.ApplyReport {
	t.Helper()
	rep, err := runtime.Apply(elf, runtime.ApplyOptions{Options: p.opts, Egress: mech})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if eg := rep.Attachments[0].Egress; eg == nil || eg.Mechanism != mech {
		t.Fatalf("egress %+v, want %s", eg, mech)
	}
	return rep
}

// counts returns the applied policy's packets by rule.
func (p *hostPair) counts(t *testing.T) map[string]uint64 {
	t.Helper()
	stats, err := runtime.Stats(p.opts)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, ps := range stats {
		for _, r := range ps.Rules {
			got[r.Rule] += r.Packets
		}
	}
	return got
}

// socketMechanisms returns the egress mechanisms this kernel has: clsact
// always, tcx from 6.6 on.
func socketMechanisms(t *testing.T) []string {
	t.Helper()
	if !haveTCX(t) {
		t.Logf("this kernel has no tcx links: the clsact egress only")
		return []string{runtime.EgressClsact}
	}
	return []string{runtime.EgressTCX, runtime.EgressClsact}
}

// joinPort joins an address and a port.
func joinPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// echoTCP answers every connection of ln with what it reads until the
// other side closes its half, then closes its own.
func echoTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(4 * sockTimeout))
			io.Copy(c, c)
			c.(*net.TCPConn).CloseWrite()
		}()
	}
}

// listenUDP opens a UDP socket at addr in ns, closed when the test ends.
func listenUDP(t *testing.T, ns *nstest.Netns, addr string) *net.UDPConn {
	t.Helper()
	var c net.PacketConn
	ns.Do(t, func() {
		var err error
		if c, err = net.ListenPacket("udp", addr); err != nil {
			t.Errorf("listen on udp %s: %v", addr, err)
		}
	})
	if c == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// echoUDP answers every datagram with itself until c is closed.
func echoUDP(c *net.UDPConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		c.WriteTo(buf[:n], from)
	}
}

// dial connects from ns to addr over network (tcp, udp).
func dial(t *testing.T, ns *nstest.Netns, network, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	ns.Do(t, func() {
		var err error
		if c, err = net.DialTimeout(network, addr, sockTimeout); err != nil {
			t.Errorf("%s connection from %s to %s: %v", network, ns.Name, addr, err)
		}
	})
	if c == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// isTimeout reports whether err is a deadline or a connect timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, unix.ETIMEDOUT)
}

// TestHostSocketsOutbound: under the host policy, the DUT's own traffic
// to the peer gets its answers, in IPv4 and IPv6, with each egress
// mechanism of the kernel: 1 MB each way over TCP intact, a UDP request's
// reply, an ICMP echo's reply (an unprivileged ICMP socket), and on a
// connected UDP socket, ECONNREFUSED for a datagram to a closed port of
// the peer (its ICMP port unreachable passes as related). Every answer
// is let in only because the egress program recorded what the DUT sent.
func TestHostSocketsOutbound(t *testing.T) {
	for _, mech := range socketMechanisms(t) {
		t.Run(mech, func(t *testing.T) {
			p := newHostPair(t, true)
			for _, f := range socketFamilies {
				go echoTCP(listen(t, p.peer, joinPort(f.peer, peerTCPEcho)))
				go echoUDP(listenUDP(t, p.peer, joinPort(f.peer, peerUDPEcho)))
			}
			p.apply(t, compileSrc(t, socketsPolicyV1), mech)

			for _, f := range socketFamilies {
				t.Run(f.name, func(t *testing.T) {
					t.Run("tcp-1MB", func(t *testing.T) {
						c := dial(t, p.dut, "tcp", joinPort(f.peer, peerTCPEcho))
						transferEcho(t, c, 1<<20)
					})
					t.Run("udp", func(t *testing.T) {
						c := dial(t, p.dut, "udp", joinPort(f.peer, peerUDPEcho))
						c.SetDeadline(time.Now().Add(sockTimeout))
						req := []byte("xdpc request " + f.name)
						if _, err := c.Write(req); err != nil {
							t.Fatalf("send the request: %v", err)
						}
						buf := make([]byte, 256)
						n, err := c.Read(buf)
						if err != nil || !bytes.Equal(buf[:n], req) {
							t.Fatalf("the reply: %q, %v; want %q", buf[:n], err, req)
						}
					})
					t.Run("ping", func(t *testing.T) {
						if err := ping(p.dut, f.peer); err != nil {
							t.Fatal(err)
						}
					})
					t.Run("udp-refused", func(t *testing.T) {
						c := dial(t, p.dut, "udp", joinPort(f.peer, peerUDPClosed))
						if err := refused(c); err != nil {
							t.Fatal(err)
						}
					})
				})
			}
			got := p.counts(t)
			if got["replies"] == 0 {
				t.Errorf("counters %v: the replies rule passed nothing", got)
			}
		})
	}
}

// transferEcho writes size random bytes to c, an echo service's
// connection, and closes its sending half; what comes back until the
// service closes must be exactly what was sent: size bytes each way,
// intact.
func transferEcho(t *testing.T, c net.Conn, size int) {
	t.Helper()
	data := make([]byte, size)
	rng := rand.New(rand.NewChaCha8([32]byte{'x', 'd', 'p', 'c'}))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	c.SetDeadline(time.Now().Add(2 * sockTimeout))
	sent := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		sent <- err
	}()
	got, err := io.ReadAll(c)
	if werr := <-sent; werr != nil {
		t.Fatalf("send %d bytes: %v", size, werr)
	}
	if err != nil {
		t.Fatalf("read the echo: %v after %d of %d bytes", err, len(got), size)
	}
	if !bytes.Equal(got, data) {
		at := 0
		for at < min(len(got), len(data)) && got[at] == data[at] {
			at++
		}
		t.Fatalf("the echo differs: %d bytes back of %d, the first difference at byte %d", len(got), size, at)
	}
}

// ping sends one ICMP echo request from ns to addr on an unprivileged
// ICMP socket (the kernel picks the identifier and checks the reply
// belongs to it) and waits for its reply.
func ping(ns *nstest.Netns, addr string) error {
	ip := netip.MustParseAddr(addr)
	domain, proto, request, reply := unix.AF_INET6, unix.IPPROTO_ICMPV6, byte(128), byte(129)
	var to unix.Sockaddr = &unix.SockaddrInet6{Addr: ip.As16()}
	if ip.Is4() {
		domain, proto, request, reply = unix.AF_INET, unix.IPPROTO_ICMP, 8, 0
		to = &unix.SockaddrInet4{Addr: ip.As4()}
	}
	return ns.Run(func() error {
		fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("open an ICMP echo socket: %w", err)
		}
		defer unix.Close(fd)
		tv := unix.NsecToTimeval(sockTimeout.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		if err := unix.Connect(fd, to); err != nil {
			return fmt.Errorf("connect the ICMP echo socket to %s: %w", addr, err)
		}
		payload := []byte("xdpc ping")
		// type, code, checksum, identifier (the kernel's), sequence 1.
		msg := append([]byte{request, 0, 0, 0, 0, 0, 0, 1}, payload...)
		if _, err := unix.Write(fd, msg); err != nil {
			return fmt.Errorf("send the echo request to %s: %w", addr, err)
		}
		buf := make([]byte, 256)
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("no echo reply from %s within %v", addr, sockTimeout)
		} else if err != nil {
			return fmt.Errorf("read the echo reply from %s: %w", addr, err)
		}
		if n < 8 || buf[0] != reply || !bytes.Equal(buf[8:n], payload) {
			return fmt.Errorf("the answer from %s is % x, want an echo reply with %q", addr, buf[:n], payload)
		}
		return nil
	})
}

// refused sends datagrams on c, connected to a port nothing listens on,
// until the socket reports ECONNREFUSED (the peer's ICMP port
// unreachable), at most three, each waited for; the peer's kernel limits
// its rate of errors, though the first one of a while always goes.
func refused(c net.Conn) error {
	buf := make([]byte, 64)
	for range 3 {
		c.SetDeadline(time.Now().Add(sockTimeout / 3))
		_, err := c.Write([]byte("anyone there?"))
		if err == nil {
			_, err = c.Read(buf)
		}
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil
		case err == nil:
			return fmt.Errorf("a reply from %s, where nothing listens", c.RemoteAddr())
		case !isTimeout(err):
			return fmt.Errorf("want ECONNREFUSED from %s: %w", c.RemoteAddr(), err)
		}
	}
	return fmt.Errorf("no ECONNREFUSED for 3 datagrams to %s: the port unreachable did not reach the socket", c.RemoteAddr())
}

// TestHostSocketsInbound: under the host policy, the peer reaches only
// the DUT's allowed service, in IPv4 and IPv6, with each egress mechanism
// of the kernel. A connection to the service carries data; one to a port
// the DUT listens on but the policy does not allow times out (its SYN is
// dropped, so nothing answers it, not even a reset), and the listener
// accepts nothing; an unsolicited datagram to a DUT UDP socket is dropped,
// while the same peer socket's datagram after the DUT wrote to it first
// arrives (and is the first the DUT's socket reads).
func TestHostSocketsInbound(t *testing.T) {
	for _, mech := range socketMechanisms(t) {
		t.Run(mech, func(t *testing.T) {
			p := newHostPair(t, true)
			type dutSide struct {
				accepted chan net.Conn
				udp      *net.UDPConn
			}
			sides := map[string]dutSide{}
			for _, f := range socketFamilies {
				go echoTCP(listen(t, p.dut, joinPort(f.dut, dutService)))
				other := listen(t, p.dut, joinPort(f.dut, dutOther))
				s := dutSide{accepted: make(chan net.Conn, 4), udp: listenUDP(t, p.dut, joinPort(f.dut, dutUDP))}
				go func() {
					for {
						c, err := other.Accept()
						if err != nil {
							return
						}
						s.accepted <- c
					}
				}()
				sides[f.name] = s
			}
			p.apply(t, compileSrc(t, socketsPolicyV1), mech)

			for _, f := range socketFamilies {
				s := sides[f.name]
				t.Run(f.name, func(t *testing.T) {
					t.Run("service", func(t *testing.T) {
						c := dial(t, p.peer, "tcp", joinPort(f.dut, dutService))
						transferEcho(t, c, 64<<10)
					})
					t.Run("other-port", func(t *testing.T) {
						p.peer.Do(t, func() {
							c, err := net.DialTimeout("tcp", joinPort(f.dut, dutOther), time.Second)
							if err == nil {
								c.Close()
								t.Errorf("the peer connected to port %d, which the policy does not allow", dutOther)
							} else if !isTimeout(err) {
								t.Errorf("the peer's connection to port %d: %v, want a timeout (its SYN dropped)", dutOther, err)
							}
						})
						select {
						case c := <-s.accepted:
							c.Close()
							t.Errorf("the DUT accepted a connection to port %d", dutOther)
						default:
						}
					})
					t.Run("unsolicited-udp", func(t *testing.T) {
						peerSock := listenUDP(t, p.peer, joinPort(f.peer, peerUDP))
						dutAddr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(joinPort(f.dut, dutUDP)))
						peerAddr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(joinPort(f.peer, peerUDP)))
						if _, err := peerSock.WriteTo([]byte("unsolicited"), dutAddr); err != nil {
							t.Fatal(err)
						}
						buf := make([]byte, 64)
						s.udp.SetReadDeadline(time.Now().Add(time.Second))
						if n, _, err := s.udp.ReadFrom(buf); !isTimeout(err) {
							t.Fatalf("the DUT's socket read %q, %v; want nothing (the datagram dropped)", buf[:n], err)
						}
						// The DUT writes first: the peer's answer belongs to
						// its flow and passes.
						if _, err := s.udp.WriteTo([]byte("hello"), peerAddr); err != nil {
							t.Fatal(err)
						}
						peerSock.SetReadDeadline(time.Now().Add(sockTimeout))
						if _, _, err := peerSock.ReadFrom(buf); err != nil {
							t.Fatalf("the peer did not get the DUT's datagram: %v", err)
						}
						if _, err := peerSock.WriteTo([]byte("answer"), dutAddr); err != nil {
							t.Fatal(err)
						}
						s.udp.SetReadDeadline(time.Now().Add(sockTimeout))
						n, _, err := s.udp.ReadFrom(buf)
						if err != nil || string(buf[:n]) != "answer" {
							t.Fatalf("the DUT's socket read %q, %v; want the peer's answer", buf[:n], err)
						}
					})
				})
			}
			got := p.counts(t)
			if got["service"] < 2 || got["default"] < 2 {
				t.Errorf("counters %v: want the service rule to have let in both families' connections and the default to have dropped", got)
			}
		})
	}
}

// reapplies is how many times TestHostSocketsAcrossReapplies applies the
// policy while its connection carries data.
const reapplies = 5

// streamByte is byte i of the test stream, a scrambled function of its
// offset, so a lost, repeated or reordered segment shows.
func streamByte(i uint64) byte { return byte((i * 0x9e3779b97f4a7c15) >> 56) }

// TestHostSocketsAcrossReapplies opens the DUT's TCP connection to the
// peer's echo service under the host policy and keeps data flowing both
// ways while the policy is applied reapplies times, its two versions in
// turn (the program really changes, the egress program is replaced),
// with each egress mechanism of the kernel. Data keeps arriving after
// every apply, every byte comes back in order (count and content), the
// policy drops none of the connection's packets (the namespaces are
// quiet, IPv4 only, so its default counter stays 0), and the
// connection's entry is the one the egress program made when it opened
// (same creation time, not picked up again): the table outlived every
// apply.
func TestHostSocketsAcrossReapplies(t *testing.T) {
	for _, mech := range socketMechanisms(t) {
		t.Run(mech, func(t *testing.T) {
			p := newHostPair(t, false)
			go echoTCP(listen(t, p.peer, joinPort(peerIP, peerTCPEcho)))
			versions := [][]byte{compileSrc(t, socketsPolicyV1), compileSrc(t, socketsPolicyV2)}
			first := p.apply(t, versions[0], mech)

			c := dial(t, p.dut, "tcp", joinPort(peerIP, peerTCPEcho))
			c.SetDeadline(time.Now().Add(4 * sockTimeout))
			entry := func() conntrack.Entry {
				t.Helper()
				ls, err := runtime.ListConntrack(p.opts)
				if err != nil {
					t.Fatal(err)
				}
				port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
				for _, f := range ls.Flows {
					if from, to := f.Original(); f.Key.Proto == 6 && from.Port == port && to.Port == peerTCPEcho {
						if !f.Assured || f.Entry.State != conntrack.TCPEstablished {
							t.Errorf("the connection's entry is %s (assured map: %v), want established, assured", f.Entry.State, f.Assured)
						}
						if f.Entry.Flags&conntrack.FlagEgress == 0 || f.Entry.Flags&conntrack.FlagPickedUp != 0 {
							t.Errorf("the connection's entry has flags %b, want made by egress, not picked up", f.Entry.Flags)
						}
						return f.Entry
					}
				}
				t.Fatalf("no entry of the connection from port %d in %+v", port, ls.Flows)
				return conntrack.Entry{}
			}

			// The writer sends the stream in paced chunks until told to
			// stop (or at most 64 MB), then closes its half; the reader
			// checks every byte that comes back.
			const chunk, most = 8 << 10, 64 << 20
			var sent, received atomic.Uint64
			stop := make(chan struct{})
			wrote := make(chan error, 1)
			go func() {
				buf := make([]byte, chunk)
				var off uint64
				for off < most {
					select {
					case <-stop:
						wrote <- c.(*net.TCPConn).CloseWrite()
						return
					default:
					}
					for i := range buf {
						buf[i] = streamByte(off + uint64(i))
					}
					if _, err := c.Write(buf); err != nil {
						wrote <- err
						return
					}
					off += chunk
					sent.Store(off)
					time.Sleep(time.Millisecond)
				}
				wrote <- c.(*net.TCPConn).CloseWrite()
			}()
			read := make(chan error, 1)
			go func() {
				buf := make([]byte, 64<<10)
				var off uint64
				for {
					n, err := c.Read(buf)
					for i := range n {
						if buf[i] != streamByte(off) {
							read <- fmt.Errorf("byte %d came back as %#x, want %#x", off, buf[i], streamByte(off))
							return
						}
						off++
					}
					received.Store(off)
					if err == io.EOF {
						read <- nil
						return
					}
					if err != nil {
						read <- err
						return
					}
				}
			}()
			finish := func() (error, error) {
				close(stop)
				return <-wrote, <-read
			}
			// flowing waits until more than at has come back.
			flowing := func(at uint64, when string) bool {
				t.Helper()
				deadline := time.Now().Add(sockTimeout)
				for received.Load() < at+chunk {
					if time.Now().After(deadline) {
						t.Errorf("%s: no data came back for %v (%d bytes back so far)", when, sockTimeout, received.Load())
						return false
					}
					time.Sleep(2 * time.Millisecond)
				}
				return true
			}

			if !flowing(0, "before the applies") {
				finish()
				t.FailNow()
			}
			made := entry()
			hashes := []string{first.Hash}
			for i := range reapplies {
				before := received.Load()
				rep, err := runtime.Apply(versions[(i+1)%2], runtime.ApplyOptions{Options: p.opts, Egress: mech})
				if err != nil {
					finish()
					t.Fatalf("apply %d: %v", i+1, err)
				}
				if eg := rep.Attachments[0].Egress; eg == nil || eg.Mechanism != mech {
					t.Errorf("apply %d: egress %+v, want %s", i+1, eg, mech)
				}
				hashes = append(hashes, rep.Hash)
				during := received.Load() - before
				if !flowing(received.Load(), fmt.Sprintf("after apply %d", i+1)) {
					break
				}
				t.Logf("apply %d: %d bytes came back while it ran", i+1, during)
			}
			now := entry()
			werr, rerr := finish()
			if werr != nil {
				t.Errorf("the writer: %v", werr)
			}
			if rerr != nil {
				t.Errorf("the reader: %v", rerr)
			}
			if s, r := sent.Load(), received.Load(); s != r || s == 0 {
				t.Errorf("%d bytes sent, %d came back", s, r)
			} else {
				t.Logf("%d bytes each way across %d applies", s, reapplies)
			}
			for i := 1; i < len(hashes); i++ {
				if hashes[i] == hashes[i-1] {
					t.Errorf("applies %d and %d have the same program %s: the policy did not change", i-1, i, hashes[i])
				}
			}
			if now.Created != made.Created {
				t.Errorf("the connection's entry was made again (created %d, before the applies %d): the table did not survive", now.Created, made.Created)
			}
			t.Logf("the DUT's socket retransmitted %d segments", retransmits(t, c))
			if got := p.counts(t); got["default"] != 0 {
				t.Errorf("counters %v: the policy dropped %d packets of the connection", got, got["default"])
			}
		})
	}
}

// retransmits returns how many segments a TCP connection's socket sent
// again (TCP_INFO); lost packets cost retransmits, not bytes.
func retransmits(t *testing.T, c net.Conn) uint32 {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n uint32
	raw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO); err == nil {
			n = info.Total_retrans
		}
	})
	return n
}

// TestHostLargeSegmentsRecorded: the egress program records the DUT's
// data segments however large. After the table is flushed, the DUT's
// established connection is known again only through its own next
// segment out (picked up), here 4,000 bytes at once: a segment whose IP
// length runs past the part of the skb the egress program pulled linear.
// The peer's echo of it must come back through the default-drop policy.
func TestHostLargeSegmentsRecorded(t *testing.T) {
	for _, mech := range socketMechanisms(t) {
		t.Run(mech, func(t *testing.T) {
			p := newHostPair(t, false)
			go echoTCP(listen(t, p.peer, joinPort(peerIP, peerTCPEcho)))
			p.apply(t, compileSrc(t, socketsPolicyV1), mech)
			c := dial(t, p.dut, "tcp", joinPort(peerIP, peerTCPEcho))
			c.SetDeadline(time.Now().Add(sockTimeout))
			echo := func(size int) {
				t.Helper()
				out := bytes.Repeat([]byte{'x'}, size)
				if _, err := c.Write(out); err != nil {
					t.Fatalf("write %d bytes: %v", size, err)
				}
				back := make([]byte, size)
				if _, err := io.ReadFull(c, back); err != nil {
					t.Fatalf("read the echo of %d bytes: %v", size, err)
				}
			}
			echo(100)
			if _, err := runtime.FlushConntrack(p.opts); err != nil {
				t.Fatal(err)
			}
			echo(4000)
			ls, err := runtime.ListConntrack(p.opts)
			if err != nil {
				t.Fatal(err)
			}
			port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
			for _, f := range ls.Flows {
				if from, to := f.Original(); f.Key.Proto == 6 && (from.Port == port || to.Port == port) {
					if f.Entry.Flags&conntrack.FlagPickedUp == 0 {
						t.Errorf("the connection's entry has flags %b, want picked up from egress", f.Entry.Flags)
					}
					return
				}
			}
			t.Fatalf("no entry of the connection from port %d after its large segment: %+v", port, ls.Flows)
		})
	}
}
