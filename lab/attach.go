package lab

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"
)

// attachXDP attaches prog to interface ifindex of namespace ns in driver
// (native) mode: veth runs XDP in its own receive path. The returned link
// detaches the program when closed. This is the lab's only attach code, kept
// apart so the runtime's attach can replace it.
func attachXDP(ns netns.NsHandle, prog *ebpf.Program, ifindex int) (link.Link, error) {
	var l link.Link
	err := inNamespace(ns, func() error {
		var err error
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		if err != nil {
			return fmt.Errorf("attach xdp to interface %d: %w", ifindex, err)
		}
		return nil
	})
	return l, err
}
