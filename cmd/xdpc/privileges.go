package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/lab"
)

// Capabilities xdpc's commands need from the kernel.
var (
	// capsBPF load programs and maps and attach XDP: CAP_BPF (or
	// CAP_SYS_ADMIN, which kernels before 5.8 ask for) and CAP_NET_ADMIN.
	capsBPF = []capability{{"CAP_BPF", unix.CAP_BPF, unix.CAP_SYS_ADMIN}, {"CAP_NET_ADMIN", unix.CAP_NET_ADMIN, -1}}
	// capsBPFNetns are capsBPF and CAP_SYS_ADMIN, which entering or making
	// a network namespace needs.
	capsBPFNetns = append(capsBPF[:len(capsBPF):len(capsBPF)], capability{"CAP_SYS_ADMIN", unix.CAP_SYS_ADMIN, -1})
	// capsNetns is what deleting namespaces needs.
	capsNetns = []capability{{"CAP_SYS_ADMIN", unix.CAP_SYS_ADMIN, -1}}
)

// capability is a Linux capability by name and number, and one that
// stands in for it (-1: none).
type capability struct {
	name     string
	bit, alt int
}

// requireCaps fails, naming them, unless the process holds caps in its
// effective set. what is the command, as the message names it. Checking
// first turns the kernel's EPERM (and cilium/ebpf's MEMLOCK hint, wrong
// for an unprivileged user) into "needs root".
func requireCaps(what string, caps []capability) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return &exitError{exitSystem, fmt.Errorf("read the process's capabilities: %w", err)}
	}
	has := func(bit int) bool { return bit >= 0 && data[bit/32].Effective&(1<<(bit%32)) != 0 }
	names := make([]string, len(caps))
	missing := false
	for i, c := range caps {
		names[i] = c.name
		missing = missing || !has(c.bit) && !has(c.alt)
	}
	if missing {
		return &exitError{exitSystem, fmt.Errorf("%s needs root (%s)", what, strings.Join(names, ", "))}
	}
	return nil
}

// requireBackendCaps is requireCaps for a replay backend: the kernel
// backend loads a program, the lab also makes namespaces, the reference
// needs nothing.
func requireBackendCaps(c *cobra.Command, backend string) error {
	switch backend {
	case lab.BackendKernel:
		return requireCaps(commandName(c)+" --backend kernel", capsBPF)
	case lab.BackendLab:
		return requireCaps(commandName(c)+" --backend lab", capsBPFNetns)
	}
	return nil
}

// commandName is c's path without "xdpc": "set add".
func commandName(c *cobra.Command) string {
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
}
