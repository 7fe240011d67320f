package main

import (
	"errors"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/runtime"
)

// runtimeFlags are the flags of every command that operates what is
// applied on the host. XDPC_PIN_ROOT and XDPC_STATE_DIR set the defaults
// of --pin-root and --state-dir.
type runtimeFlags struct {
	pinRoot, stateDir, netns string
	lockWait                 time.Duration
}

// runtimeUse says why a command has no use for --netns or --lock-wait;
// an empty reason means it uses the flag. A flag a command has no use for
// is refused with its reason, never ignored.
type runtimeUse struct {
	noNetns, noLockWait string
}

// Reasons shared by several commands.
const (
	setsEverywhere = "a policy's sets are shared by every interface that runs it, in every namespace"
	readsOnly      = "it only reads, and waits for no lock"
)

func (f *runtimeFlags) register(c *cobra.Command, use runtimeUse) {
	pin, state := os.Getenv("XDPC_PIN_ROOT"), os.Getenv("XDPC_STATE_DIR")
	if pin == "" {
		pin = runtime.DefaultPinRoot
	}
	if state == "" {
		state = runtime.DefaultStateDir
	}
	c.Flags().StringVar(&f.pinRoot, "pin-root", pin, "bpffs directory of xdpc's pins (env XDPC_PIN_ROOT)")
	c.Flags().StringVar(&f.stateDir, "state-dir", state, "directory of xdpc's lock and records (env XDPC_STATE_DIR)")
	if use.noNetns == "" {
		c.Flags().StringVar(&f.netns, "netns", "", "network namespace (as in /run/netns) of the interfaces")
	} else {
		refuseFlag(c, "netns", use.noNetns)
	}
	if use.noLockWait == "" {
		durationVar(c.Flags(), &f.lockWait, "lock-wait", 30*time.Second, true, "how long to wait while another xdpc changes attachments (0: fail at once)")
	} else {
		refuseFlag(c, "lock-wait", use.noLockWait)
	}
	// Every command that operates what is applied reads pinned BPF
	// objects: without the capabilities it would fail on an EPERM, or
	// report "nothing attached" for records it cannot read.
	prev := c.PreRunE
	c.PreRunE = func(c *cobra.Command, args []string) error {
		if prev != nil {
			if err := prev(c, args); err != nil {
				return err
			}
		}
		caps := capsBPF
		if f.netns != "" {
			caps = capsBPFNetns
		}
		return requireCaps(commandName(c), caps)
	}
}

func (f *runtimeFlags) options() runtime.Options {
	return runtime.Options{PinRoot: f.pinRoot, StateDir: f.stateDir, Netns: f.netns, LockWait: f.lockWait}
}

// runtimeError gives a runtime error its exit code: a problem with what
// the user asked for is 1, anything else (kernel, files, lock) is 3.
func runtimeError(err error) error {
	for _, user := range []error{runtime.ErrNoInterface, runtime.ErrNoNetns, runtime.ErrNotDynamic, runtime.ErrNothingPending,
		runtime.ErrNoSuchSet, runtime.ErrBadElement, runtime.ErrSetFull} {
		if errors.Is(err, user) {
			return policyError(err)
		}
	}
	return &exitError{exitSystem, err}
}
