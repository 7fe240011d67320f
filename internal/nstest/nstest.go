// Package nstest creates network namespaces, veth pairs and bpffs pin
// roots for tests that attach programs. Namespaces are named "xdpc-rt-"
// plus a random suffix; everything is removed when the test ends.
//
// Each helper has a form for testing.TB, which fails the test, and one
// returning an error with a cleanup function, for testscript's Setup.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Prefix starts the name of every namespace the tests create.
const Prefix = "xdpc-rt-"

// Suffix returns a random suffix of n hex digits.
func Suffix(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// Netns is a named network namespace made for one test.
type Netns struct {
	Name   string
	Handle *netlink.Handle
	ns     netns.NsHandle
}

// Option changes how Create sets a namespace up.
type Option func(*config)

type config struct{ ipv6 bool }

// WithIPv6 leaves IPv6 on in the namespace, for tests of IPv6 sockets.
// Its interfaces get link-local addresses without duplicate address
// detection and send no router solicitations, so that they are usable
// at once and send little of their own; addresses a test adds should
// also skip detection (netlink.Addr Flags unix.IFA_F_NODAD). They still
// join multicast groups (MLD reports) and resolve neighbours: give them
// static neighbours where a policy drops neighbour discovery.
func WithIPv6() Option { return func(c *config) { c.ipv6 = true } }

// New creates a namespace (see Create) and removes it when t ends.
func New(t testing.TB, opts ...Option) *Netns {
	t.Helper()
	n, err := Create(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// Create makes a namespace named Prefix+random with its loopback up and
// IPv6 disabled, so that its interfaces send nothing of their own (unless
// WithIPv6). Close removes it and every interface in it.
func Create(opts ...Option) (*Netns, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	name := Prefix + Suffix(8)
	goruntime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		goruntime.UnlockOSThread()
		return nil, fmt.Errorf("open current netns: %w", err)
	}
	ns, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		// The thread stays locked: it is in the wrong namespace.
		return nil, fmt.Errorf("return to original netns: %w", serr)
	}
	orig.Close()
	goruntime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	n := &Netns{Name: name, ns: ns}
	n.Handle, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("open netlink in %s: %w", name, err)
	}
	err = n.Run(func() error {
		settings := [][2]string{{"all/disable_ipv6", "1"}, {"default/disable_ipv6", "1"}}
		if c.ipv6 {
			settings = [][2]string{
				{"all/disable_ipv6", "0"}, {"default/disable_ipv6", "0"},
				{"all/accept_dad", "0"}, {"default/accept_dad", "0"},
				{"default/router_solicitations", "0"}, {"default/accept_ra", "0"},
			}
		}
		for _, s := range settings {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+s[0], []byte(s[1]), 0o644); err != nil {
				return fmt.Errorf("set ipv6 %s in %s: %w", s[0], name, err)
			}
		}
		return nil
	})
	if err == nil {
		var lo netlink.Link
		if lo, err = n.Handle.LinkByName("lo"); err == nil {
			err = n.Handle.LinkSetUp(lo)
		}
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Close deletes the namespace.
func (n *Netns) Close() error {
	if n.Handle != nil {
		n.Handle.Close()
	}
	n.ns.Close()
	if err := netns.DeleteNamed(n.Name); err != nil {
		return fmt.Errorf("delete netns %s: %w", n.Name, err)
	}
	return nil
}

// Veth creates a veth pair a <-> b in the namespace, both up, and returns
// their indexes.
func (n *Netns) Veth(t testing.TB, a, b string) (int, int) {
	t.Helper()
	ia, ib, err := n.AddVeth(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return ia, ib
}

// AddVeth is Veth returning an error.
func (n *Netns) AddVeth(a, b string) (int, int, error) {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}
	if err := n.Handle.LinkAdd(v); err != nil {
		return 0, 0, fmt.Errorf("add veth %s/%s in %s: %w", a, b, n.Name, err)
	}
	var idx [2]int
	for i, name := range []string{a, b} {
		l, err := n.Handle.LinkByName(name)
		if err != nil {
			return 0, 0, fmt.Errorf("find %s: %w", name, err)
		}
		if err := n.Handle.LinkSetUp(l); err != nil {
			return 0, 0, fmt.Errorf("set %s up: %w", name, err)
		}
		idx[i] = l.Attrs().Index
	}
	return idx[0], idx[1], nil
}

// VethTo creates a veth pair a (in n) <-> b (in peer), both up, and
// returns their indexes, each in its namespace.
func (n *Netns) VethTo(t testing.TB, a string, peer *Netns, b string) (int, int) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b, PeerNamespace: netlink.NsFd(peer.ns)}
	if err := n.Handle.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s/%s between %s and %s: %v", a, b, n.Name, peer.Name, err)
	}
	var idx [2]int
	for i, end := range []struct {
		ns   *Netns
		name string
	}{{n, a}, {peer, b}} {
		l, err := end.ns.Handle.LinkByName(end.name)
		if err != nil {
			t.Fatalf("find %s in %s: %v", end.name, end.ns.Name, err)
		}
		if err := end.ns.Handle.LinkSetUp(l); err != nil {
			t.Fatalf("set %s up: %v", end.name, err)
		}
		idx[i] = l.Attrs().Index
	}
	return idx[0], idx[1]
}

// Delete removes an interface of the namespace.
func (n *Netns) Delete(t testing.TB, name string) {
	t.Helper()
	l, err := n.Handle.LinkByName(name)
	if err != nil {
		t.Fatalf("find %s: %v", name, err)
	}
	if err := n.Handle.LinkDel(l); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
}

// Do runs fn on a thread inside the namespace.
func (n *Netns) Do(t testing.TB, fn func()) {
	t.Helper()
	if err := n.Run(func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// Run runs fn on a thread inside the namespace and returns its error.
func (n *Netns) Run(fn func() error) error {
	goruntime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		goruntime.UnlockOSThread()
		return fmt.Errorf("open current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(n.ns); err != nil {
		goruntime.UnlockOSThread()
		return fmt.Errorf("enter %s: %w", n.Name, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("leave %s: %w", n.Name, err)
	}
	goruntime.UnlockOSThread()
	return ferr
}

// PinRoot returns a private pin root on a bpffs and removes it when t ends.
func PinRoot(t testing.TB) string {
	t.Helper()
	dir, cleanup, err := MakePinRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// MakePinRoot returns a private pin root: /sys/fs/bpf/xdpc-test-RANDOM
// when /sys/fs/bpf is a bpffs, else a bpffs mounted on scratch (an empty
// directory). cleanup removes it.
func MakePinRoot(scratch string) (string, func() error, error) {
	base := "/sys/fs/bpf"
	var st unix.Statfs_t
	if err := unix.Statfs(base, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		dir := filepath.Join(base, "xdpc-test-"+Suffix(8))
		return dir, func() error { return os.RemoveAll(dir) }, nil
	}
	if err := unix.Mount("bpffs", scratch, "bpf", 0, "mode=0700"); err != nil {
		return "", nil, fmt.Errorf("mount bpffs on %s: %w", scratch, err)
	}
	return filepath.Join(scratch, "xdpc"), func() error {
		if err := unix.Unmount(scratch, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", scratch, err)
		}
		return nil
	}, nil
}

// AddAddr gives the link at ifindex the address cidr ("203.0.113.1/24").
func (n *Netns) AddAddr(t testing.TB, ifindex int, cidr string) {
	t.Helper()
	l, err := n.Handle.LinkByIndex(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Handle.AddrAdd(l, addr); err != nil {
		t.Fatalf("add %s to %s: %v", cidr, l.Attrs().Name, err)
	}
}

// Gateway makes the namespace a router out of the link at ifindex: a
// default route via gw, a permanent neighbour entry giving gw the MAC
// mac (no ARP on the wire), and IPv4 forwarding on. The link needs an
// address on gw's network (AddAddr).
func (n *Netns) Gateway(t testing.TB, ifindex int, gw netip.Addr, mac net.HardwareAddr) {
	t.Helper()
	if err := n.Handle.RouteAdd(&netlink.Route{LinkIndex: ifindex, Gw: gw.AsSlice()}); err != nil {
		t.Fatalf("default route via %v: %v", gw, err)
	}
	neigh := &netlink.Neigh{LinkIndex: ifindex, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: gw.AsSlice(), HardwareAddr: mac}
	if err := n.Handle.NeighAdd(neigh); err != nil {
		t.Fatalf("neighbour %v: %v", gw, err)
	}
	if err := n.Run(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/conf/all/forwarding", []byte("1"), 0o644)
	}); err != nil {
		t.Fatalf("turn forwarding on: %v", err)
	}
}
