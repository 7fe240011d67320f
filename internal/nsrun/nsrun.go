// Package nsrun runs code inside a network namespace. The code runs on an
// OS thread of its own that enters the namespace and is never handed back
// to the Go scheduler: the thread ends with its goroutine, so nothing else
// ever runs in the namespace by accident, whatever fn does or fails to do.
package nsrun

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// In runs fn in the namespace ns and returns its error.
func In(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Named runs fn in the namespace named name (as in /run/netns); "" runs it
// in the caller's namespace, on the caller's goroutine.
func Named(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	ns, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", name, err)
	}
	defer ns.Close()
	if err := In(ns, fn); err != nil {
		return err
	}
	return nil
}
