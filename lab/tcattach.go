package lab

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// egressAttachment is a TC egress program attached to a lab port, with a
// tcx link where the kernel has them (6.6 on), else a clsact qdisc and a
// direct-action BPF filter: how docs/conntrack.md says apply attaches the
// egress program of a policy that tracks connections. Closing it detaches
// the program; deleting the namespace would too.
type egressAttachment struct {
	tcx    link.Link
	port   *Port
	clsact *netlink.GenericQdisc
}

// attachEgress attaches prog to port's TC egress.
func attachEgress(port *Port, prog *ebpf.Program) (*egressAttachment, error) {
	var lk link.Link
	err := inNamespace(port.ns.handle, func() error {
		var err error
		lk, err = link.AttachTCX(link.TCXOptions{Interface: port.Index, Program: prog, Attach: ebpf.AttachTCXEgress})
		return err
	})
	if err == nil {
		return &egressAttachment{tcx: lk, port: port}, nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return nil, fmt.Errorf("attach tc egress to %s in %s: %w", port.Name, port.Namespace(), err)
	}
	// Before tcx links: a clsact qdisc and a BPF filter on its egress.
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: port.Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := port.ns.nl.QdiscAdd(q); err != nil {
		return nil, fmt.Errorf("add clsact qdisc to %s in %s: %w", port.Name, port.Namespace(), err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: port.Index, Parent: netlink.HANDLE_MIN_EGRESS, Handle: netlink.MakeHandle(0, 1),
			Protocol: unix.ETH_P_ALL, Priority: 1,
		},
		Fd: prog.FD(), Name: "xdpc-egress", DirectAction: true,
	}
	if err := port.ns.nl.FilterAdd(f); err != nil {
		port.ns.nl.QdiscDel(q)
		return nil, fmt.Errorf("add egress filter to %s in %s: %w", port.Name, port.Namespace(), err)
	}
	return &egressAttachment{port: port, clsact: q}, nil
}

func (a *egressAttachment) close() error {
	if a.tcx != nil {
		return a.tcx.Close()
	}
	if err := a.port.ns.nl.QdiscDel(a.clsact); err != nil {
		return fmt.Errorf("delete clsact qdisc of %s in %s: %w", a.port.Name, a.port.Namespace(), err)
	}
	return nil
}
