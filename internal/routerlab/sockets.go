package routerlab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/xdpc/xdpc/internal/livegen"
	"github.com/xdpc/xdpc/internal/nstest"
)

// AddAddr adds an address to a veth end.
func (r *Router) AddAddr(e End, p netip.Prefix) error {
	lk, err := e.Netns.Handle.LinkByIndex(e.Index)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(p.String())
	if err != nil {
		return err
	}
	if err := e.Netns.Handle.AddrAdd(lk, a); err != nil {
		return fmt.Errorf("add %s to %s in %s: %w", p, e.Name, e.Netns.Name, err)
	}
	return nil
}

// Neigh sets a static neighbour on a veth end: addr is at mac.
func (r *Router) Neigh(e End, addr netip.Addr, mac net.HardwareAddr) error {
	err := e.Netns.Handle.NeighSet(&netlink.Neigh{
		LinkIndex: e.Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: addr.AsSlice(), HardwareAddr: mac,
	})
	if err != nil {
		return fmt.Errorf("static neighbour %s on %s in %s: %w", addr, e.Name, e.Netns.Name, err)
	}
	return nil
}

// Paths counts the router's forwarding by path: Stack the IPv4 datagrams
// its stack forwarded (Ip: ForwDatagrams of /proc/net/snmp in its
// namespace), Redirected the frames XDP redirected into its two veths
// (their tx_xdp_xmit).
type Paths struct {
	Stack, Redirected uint64
}

// Sub is what p counted since an earlier reading.
func (p Paths) Sub(before Paths) Paths {
	return Paths{Stack: p.Stack - before.Stack, Redirected: p.Redirected - before.Redirected}
}

func (p Paths) String() string {
	return fmt.Sprintf("%d forwarded by the stack, %d redirected by XDP", p.Stack, p.Redirected)
}

// Paths reads the router's forwarding counts.
func (r *Router) Paths() (Paths, error) {
	var p Paths
	err := r.Router.Run(func() error {
		// thread-self: /proc/self/net is the thread group leader's
		// namespace, not this thread's.
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		p.Stack, err = snmpIP(b, "ForwDatagrams")
		return err
	})
	if err != nil {
		return p, fmt.Errorf("the router's IP statistics: %w", err)
	}
	for _, name := range []string{InsideIf, OutsideIf} {
		st, err := livegen.ReadVethStats(r.Router.Name, name)
		if err != nil {
			return p, err
		}
		p.Redirected += st.Xmit
	}
	return p, nil
}

// snmpIP is the field of the Ip: lines of /proc/net/snmp.
func snmpIP(b []byte, field string) (uint64, error) {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "Ip:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == field && i < len(f) {
				return strconv.ParseUint(f[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no Ip: %s", field)
}

// ExchangeFrom is Exchange with the dialler's source address local.
func ExchangeFrom(listenNs *nstest.Netns, listen netip.AddrPort, dialNs *nstest.Netns, local netip.Addr, dial netip.AddrPort, size int, timeout time.Duration) (netip.AddrPort, error) {
	return exchange(listenNs, listen, dialNs, local, dial, size, timeout)
}

// Ping sends count ICMP echo requests from ns to dst with a raw socket,
// one at a time, and checks that each is answered with its identifier,
// sequence number and data. It returns the address the replies came
// from. The whole exchange is bounded by timeout.
func Ping(ns *nstest.Netns, dst netip.Addr, count int, timeout time.Duration) (netip.Addr, error) {
	var c *icmp.PacketConn
	err := ns.Run(func() error {
		var err error
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("raw ICMP socket in %s: %w", ns.Name, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	id := os.Getpid() & 0xffff
	var from netip.Addr
	buf := make([]byte, 1500)
	for seq := range count {
		data := pattern(56, byte(seq))
		req := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: data}}
		b, err := req.Marshal(nil)
		if err != nil {
			return from, err
		}
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return from, fmt.Errorf("send echo %d to %s: %w", seq, dst, err)
		}
		for {
			n, peer, err := c.ReadFrom(buf)
			if err != nil {
				return from, fmt.Errorf("the reply to echo %d: %w", seq, err)
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue // another ICMP message the raw socket sees
			}
			e, ok := m.Body.(*icmp.Echo)
			if !ok || e.ID != id || e.Seq != seq {
				continue
			}
			if !bytes.Equal(e.Data, data) {
				return from, fmt.Errorf("the reply to echo %d carries other data", seq)
			}
			from, _ = netip.AddrFromSlice(peer.(*net.IPAddr).IP.To4())
			break
		}
	}
	return from, nil
}

// UDPRefused sends a datagram from ns to dst, where nothing listens, and
// waits for the socket to report ECONNREFUSED: the ICMP port
// unreachable reached it. It sends again, up to tries times, while the
// read times out, all within timeout.
func UDPRefused(ns *nstest.Netns, dst netip.AddrPort, tries int, timeout time.Duration) error {
	var c *net.UDPConn
	err := ns.Run(func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return fmt.Errorf("dial udp %s from %s: %w", dst, ns.Name, err)
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	each := timeout / time.Duration(tries)
	buf := make([]byte, 64)
	for i := 0; i < tries && time.Now().Before(deadline); i++ {
		if _, err := c.Write([]byte("anyone?")); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return nil
			}
			return err
		}
		c.SetReadDeadline(time.Now().Add(each))
		_, err := c.Read(buf)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil
		case err == nil:
			return fmt.Errorf("%s answered", dst)
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return err
		}
	}
	return fmt.Errorf("no ECONNREFUSED from %s within %v", dst, timeout)
}
