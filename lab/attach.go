package lab

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/xdpc/xdpc/runtime"
)

// attachXDP attaches prog to port in native mode (veth runs XDP in its own
// receive path) with the runtime's attach, the one xdpc apply uses. The
// link is not pinned: closing it detaches the program.
func attachXDP(port *Port, prog *ebpf.Program) (link.Link, error) {
	lk, _, _, err := runtime.AttachXDP(runtime.XDPAttachment{
		Netns: port.Namespace(), Interface: port.Name, Mode: runtime.ModeNative, Program: prog,
	})
	return lk, err
}
