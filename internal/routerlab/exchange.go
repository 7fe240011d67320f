package routerlab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/xdpc/xdpc/internal/nstest"
)

// Exchange is one TCP conversation through the router: a listener in
// listenNs on listen accepts one connection from dialNs to dial, each
// side sends size bytes and reads the other's, and both check what they
// got. It returns the address the listener saw the connection from: the
// dialler's own, or the one NAT gave it. The whole exchange is bounded by
// timeout.
func Exchange(listenNs *nstest.Netns, listen netip.AddrPort, dialNs *nstest.Netns, dial netip.AddrPort, size int, timeout time.Duration) (netip.AddrPort, error) {
	return exchange(listenNs, listen, dialNs, netip.Addr{}, dial, size, timeout)
}

func exchange(listenNs *nstest.Netns, listen netip.AddrPort, dialNs *nstest.Netns, local netip.Addr, dial netip.AddrPort, size int, timeout time.Duration) (netip.AddrPort, error) {
	deadline := time.Now().Add(timeout)
	var ln net.Listener
	err := listenNs.Run(func() error {
		var err error
		ln, err = net.Listen("tcp4", listen.String())
		return err
	})
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen on %s in %s: %w", listen, listenNs.Name, err)
	}
	defer ln.Close()
	ln.(*net.TCPListener).SetDeadline(deadline)

	up, down := pattern(size, 1), pattern(size, 2)
	type accepted struct {
		peer netip.AddrPort
		err  error
	}
	done := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- accepted{err: fmt.Errorf("accept: %w", err)}
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		peer := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		done <- accepted{peer, converse(c, down, up)}
	}()

	var c net.Conn
	err = dialNs.Run(func() error {
		var err error
		d := &net.Dialer{Deadline: deadline}
		if local.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
		}
		c, err = d.Dial("tcp4", dial.String())
		return err
	})
	if err != nil {
		ln.Close()
		<-done
		return netip.AddrPort{}, fmt.Errorf("dial %s from %s: %w", dial, dialNs.Name, err)
	}
	c.SetDeadline(deadline)
	cerr := converse(c, up, down)
	c.Close()
	a := <-done
	if err := errors.Join(cerr, a.err); err != nil {
		return a.peer, err
	}
	return a.peer, nil
}

// converse sends send and reads want from c at the same time, then
// compares.
func converse(c net.Conn, send, want []byte) error {
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(send)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got := make([]byte, len(want))
	_, rerr := io.ReadFull(c, got)
	if err := <-werr; err != nil {
		return fmt.Errorf("send %d bytes: %w", len(send), err)
	}
	if rerr != nil {
		return fmt.Errorf("receive %d bytes: %w", len(want), rerr)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("received %d bytes that differ from those sent", len(want))
	}
	return nil
}

// pattern is size bytes that differ from seed to seed and along the
// stream, so that a misplaced or corrupted segment shows.
func pattern(size int, seed byte) []byte {
	b := make([]byte, size)
	x := uint32(seed) * 2654435761
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// ExchangeUDP sends count datagrams of size bytes from dialNs to dial,
// one at a time, each echoed back by a socket in listenNs bound to
// listen, and checks every echo. It returns the address the listener
// saw the datagrams from (the last one's). The whole exchange is bounded
// by timeout.
func ExchangeUDP(listenNs *nstest.Netns, listen netip.AddrPort, dialNs *nstest.Netns, dial netip.AddrPort, count, size int, timeout time.Duration) (netip.AddrPort, error) {
	deadline := time.Now().Add(timeout)
	var ln *net.UDPConn
	err := listenNs.Run(func() error {
		var err error
		ln, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(listen))
		return err
	})
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen on udp %s in %s: %w", listen, listenNs.Name, err)
	}
	defer ln.Close()
	ln.SetDeadline(deadline)
	seen := make(chan netip.AddrPort, 1)
	go func() {
		var last netip.AddrPort
		defer func() { seen <- last }()
		buf := make([]byte, 65536)
		for range count {
			n, from, err := ln.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			last = from
			if _, err := ln.WriteToUDPAddrPort(buf[:n], from); err != nil {
				return
			}
		}
	}()

	var c *net.UDPConn
	err = dialNs.Run(func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dial))
		return err
	})
	if err != nil {
		ln.Close()
		<-seen
		return netip.AddrPort{}, fmt.Errorf("dial udp %s from %s: %w", dial, dialNs.Name, err)
	}
	defer c.Close()
	c.SetDeadline(deadline)
	got := make([]byte, size+1)
	var xerr error
	for i := range count {
		msg := pattern(size, byte(i))
		if _, err := c.Write(msg); err != nil {
			xerr = fmt.Errorf("send datagram %d: %w", i, err)
			break
		}
		n, err := c.Read(got)
		if err != nil {
			xerr = fmt.Errorf("receive the echo of datagram %d: %w", i, err)
			break
		}
		if !bytes.Equal(got[:n], msg) {
			xerr = fmt.Errorf("the echo of datagram %d differs from it", i)
			break
		}
	}
	ln.Close()
	return <-seen, xerr
}
