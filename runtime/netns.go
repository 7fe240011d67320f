package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/internal/nsrun"
)

// ErrNoNetns is returned for an Options.Netns that names no network
// namespace under /run/netns, and none that xdpc holds records of.
var ErrNoNetns = errors.New("no such network namespace")

// checkNetns refuses a named namespace that does not exist, unless xdpc
// still holds attachment records in it: a namespace deleted since keeps
// its records until detach, and status shows its interfaces gone.
func checkNetns(l layout) error {
	if l.nsName == "" {
		return nil
	}
	if err := checkName("network namespace", l.nsName); err != nil {
		return err
	}
	ns, err := netns.GetFromName(l.nsName)
	if err == nil {
		ns.Close()
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("open netns %s: %w", l.nsName, err)
	}
	if _, err := os.Stat(filepath.Join(l.stateDir, "links", l.netns)); err == nil {
		return nil
	}
	return fmt.Errorf("network namespace %s: %w ('ip netns list' shows those there are)", l.nsName, ErrNoNetns)
}

// inNetns runs fn on a thread in the named network namespace ("" is the
// caller's). Attaching XDP resolves the interface index in the namespace
// of the calling thread, so attaches run in here.
func inNetns(name string, fn func() error) error { return nsrun.Named(name, fn) }

// linkHandle returns a netlink handle in the named namespace.
func linkHandle(name string) (*netlink.Handle, error) {
	if name == "" {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("open netlink: %w", err)
		}
		return h, nil
	}
	ns, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink in netns %s: %w", name, err)
	}
	return h, nil
}

// interfaceIndex returns the index of ifname in the named namespace.
func interfaceIndex(nsName, ifname string) (int, error) {
	h, err := linkHandle(nsName)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		where := "this network namespace"
		if nsName != "" {
			where = "network namespace " + nsName
		}
		return 0, fmt.Errorf("find interface %s in %s: %w", ifname, where, err)
	}
	return l.Attrs().Index, nil
}

// interfaceName returns the name of the interface with index idx in the
// named namespace.
func interfaceName(nsName string, idx int) (string, error) {
	h, err := linkHandle(nsName)
	if err != nil {
		return "", err
	}
	defer h.Close()
	l, err := h.LinkByIndex(idx)
	if err != nil {
		return "", fmt.Errorf("find interface %d: %w", idx, err)
	}
	return l.Attrs().Name, nil
}
