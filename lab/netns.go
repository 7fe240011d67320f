package lab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/internal/nsrun"
)

// NamespacePrefix starts the name of every network namespace the lab creates,
// so `xdpc lab gc` can find leftovers and nothing else.
const NamespacePrefix = "xdpc-lab-"

// namespaceDir is where named network namespaces are bind-mounted, as
// iproute2 and vishvananda/netns keep them.
const namespaceDir = "/var/run/netns"

// namespace is one named network namespace the lab created, with a netlink
// handle that works in it from any thread.
type namespace struct {
	name   string
	handle netns.NsHandle
	nl     *netlink.Handle
}

// randomSuffix returns 8 random hex digits: unique enough that parallel
// tests and concurrent runs never pick the same names.
func randomSuffix() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("draw namespace suffix: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// inNamespace runs fn on an OS thread switched into ns (nsrun.In).
func inNamespace(ns netns.NsHandle, fn func() error) error { return nsrun.In(ns, fn) }

// newNamespace creates the named network namespace name.
func newNamespace(name string) (*namespace, error) {
	ns := &namespace{name: name, handle: -1}
	errc := make(chan error, 1)
	go func() {
		// The thread that creates the namespace is left in it and dies
		// with this goroutine.
		goruntime.LockOSThread()
		h, err := netns.NewNamed(name)
		if err != nil {
			errc <- fmt.Errorf("create network namespace %s: %w", name, err)
			return
		}
		ns.handle = h
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandleAt(ns.handle, unix.NETLINK_ROUTE)
	if err != nil {
		ns.delete()
		return nil, fmt.Errorf("open netlink in %s: %w", name, err)
	}
	ns.nl = nl
	return ns, nil
}

// delete closes the handles and removes the namespace's name; the kernel
// frees the namespace, and the veths in it, once nothing refers to it.
func (ns *namespace) delete() error {
	if ns.nl != nil {
		ns.nl.Close()
		ns.nl = nil
	}
	if ns.handle >= 0 {
		ns.handle.Close()
		ns.handle = -1
	}
	_, err := deleteNamed(ns.name)
	return err
}

// deleteNamed unmounts and removes the name of a network namespace. It
// reports false, and no error, when the name was already gone or being
// removed by another process (a gc racing the owner's own teardown).
func deleteNamed(name string) (bool, error) {
	err := netns.DeleteNamed(name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case errors.Is(err, unix.EINVAL):
		// No longer a mount point: someone unmounted it and is about to
		// remove the file. Finish the job.
		if err := os.Remove(filepath.Join(namespaceDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("delete network namespace %s: %w", name, err)
		}
		return false, nil
	}
	return false, fmt.Errorf("delete network namespace %s: %w", name, err)
}

// writeSysctls sets sysctls (keys under /proc/sys, like
// "net/ipv4/ip_forward") inside ns.
func writeSysctls(ns netns.NsHandle, kv map[string]string) error {
	return inNamespace(ns, func() error {
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
				return fmt.Errorf("set sysctl %s: %w", strings.ReplaceAll(k, "/", "."), err)
			}
		}
		return nil
	})
}

// LeftoverNamespaces lists the named network namespaces whose names start
// with NamespacePrefix.
func LeftoverNamespaces() ([]string, error) {
	entries, err := os.ReadDir(namespaceDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), NamespacePrefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// GCOptions says which leftover namespaces CollectGarbage deletes.
type GCOptions struct {
	// Prefix, when set, limits the collection to names starting with it.
	Prefix string
	// All deletes the namespaces of live processes too. By default only
	// namespaces whose creating process has exited are deleted, so a
	// collection never pulls a lab from under a run in progress.
	All bool
}

// CollectGarbage deletes leftover lab namespaces (from runs that were killed
// before they could tear down) and returns their names.
func CollectGarbage(opts GCOptions) ([]string, error) {
	names, err := LeftoverNamespaces()
	if err != nil {
		return nil, err
	}
	var deleted []string
	for _, n := range names {
		if !strings.HasPrefix(n, opts.Prefix) {
			continue
		}
		if !opts.All && ownerAlive(n) {
			continue
		}
		ok, err := deleteNamed(n)
		if err != nil {
			return deleted, err
		}
		if ok {
			deleted = append(deleted, n)
		}
	}
	return deleted, nil
}

// namespaceName is the name of one namespace of a lab: the prefix, the
// creating process's id, a random suffix and the role.
func namespaceName(suffix, role string) string {
	return fmt.Sprintf("%s%d-%s-%s", NamespacePrefix, os.Getpid(), suffix, role)
}

// ownerAlive reports whether the process that created namespace name is
// still running. Names it cannot read are treated as abandoned.
func ownerAlive(name string) bool {
	rest := strings.TrimPrefix(name, NamespacePrefix)
	pidText, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false
	}
	err = unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
