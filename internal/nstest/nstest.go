// Package nstest creates network namespaces, veth pairs and bpffs pin
// roots for tests that attach programs. Everything it creates is named
// "xdpc-rt-" plus a random suffix and removed when the test ends.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
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
}

// New creates a namespace named Prefix+random with its loopback up and
// removes it (and every interface in it) when t ends. IPv6 is disabled in
// it so that interfaces send nothing of their own.
func New(t testing.TB) *Netns {
	t.Helper()
	name := Prefix + Suffix(8)
	goruntime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		goruntime.UnlockOSThread()
		t.Fatalf("open current netns: %v", err)
	}
	ns, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		// Leave the thread locked: it is in the wrong namespace.
		t.Fatalf("return to original netns: %v", serr)
	}
	orig.Close()
	goruntime.UnlockOSThread()
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("open netlink in %s: %v", name, err)
	}
	t.Cleanup(h.Close)
	n := &Netns{Name: name, Handle: h}
	// No IPv6 autoconfiguration: the interfaces stay silent, so tests
	// count only the frames they send.
	n.Do(t, func() {
		for _, f := range []string{"all", "default"} {
			path := "/proc/sys/net/ipv6/conf/" + f + "/disable_ipv6"
			if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
				t.Errorf("disable ipv6 in %s: %v", name, err)
			}
		}
	})
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatalf("find lo in %s: %v", name, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatalf("set lo up in %s: %v", name, err)
	}
	return n
}

// Veth creates a veth pair a <-> b in the namespace, both up, and returns
// their indexes.
func (n *Netns) Veth(t testing.TB, a, b string) (int, int) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}
	if err := n.Handle.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s/%s in %s: %v", a, b, n.Name, err)
	}
	var idx [2]int
	for i, name := range []string{a, b} {
		l, err := n.Handle.LinkByName(name)
		if err != nil {
			t.Fatalf("find %s: %v", name, err)
		}
		if err := n.Handle.LinkSetUp(l); err != nil {
			t.Fatalf("set %s up: %v", name, err)
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
	target, err := netns.GetFromName(n.Name)
	if err != nil {
		t.Fatalf("open netns %s: %v", n.Name, err)
	}
	defer target.Close()
	goruntime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		goruntime.UnlockOSThread()
		t.Fatalf("open current netns: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		goruntime.UnlockOSThread()
		t.Fatalf("enter %s: %v", n.Name, err)
	}
	fn()
	if err := netns.Set(orig); err != nil {
		t.Fatalf("leave %s: %v", n.Name, err)
	}
	goruntime.UnlockOSThread()
}

// PinRoot returns a private directory on a bpffs, /sys/fs/bpf/xdpc-test-*
// when /sys/fs/bpf is one, else a bpffs mounted on a temporary directory;
// it is removed when t ends.
func PinRoot(t testing.TB) string {
	t.Helper()
	base := "/sys/fs/bpf"
	var st unix.Statfs_t
	if err := unix.Statfs(base, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		dir := t.TempDir()
		if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
			t.Fatalf("mount bpffs on %s: %v", dir, err)
		}
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
		return filepath.Join(dir, "xdpc")
	}
	dir := filepath.Join(base, "xdpc-test-"+Suffix(8))
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove pin root: %v", err)
		}
	})
	return dir
}
