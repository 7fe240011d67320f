package runtime

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// How an artifact's TC egress program (connection tracking: it records
// the host's own traffic) is attached, as ApplyOptions.Egress asks and
// the attachment records name it.
const (
	// EgressAuto attaches with a tcx link where the kernel has them
	// (6.6 on), else with a clsact qdisc and a BPF filter; a re-apply
	// keeps the mechanism an interface already has.
	EgressAuto = "auto"
	// EgressTCX attaches with a tcx link (BPF_TCX_EGRESS), pinned like
	// the XDP link. Kernels before 6.6 refuse it: the apply fails.
	EgressTCX = "tcx"
	// EgressClsact attaches a direct-action cls_bpf filter to the egress
	// hook of a clsact qdisc (added when the interface has none), through
	// netlink. Every kernel xdpc supports has it.
	EgressClsact = "clsact"
)

// The egress filter's place in a clsact qdisc: the first priority, so it
// sees every packet before another filter may steal it, and a handle of
// its own ("XDPC"). A re-apply replaces the filter at this handle and
// priority in place: cls_bpf swaps the program of an existing handle with
// list_replace_rcu, so every packet meets the old program or the new one.
const (
	clsactPriority = 1
	clsactHandle   = 0x58445043
)

// tcActUnspec is TC_ACT_UNSPEC: the packet goes on as if no program ran
// (TCX_NEXT for tcx, the next filter for cls_bpf).
const tcActUnspec = -1

// EgressAttachment is an interface's egress program as recorded at apply
// time and, for Status, checked against the kernel.
type EgressAttachment struct {
	// Mechanism is EgressTCX or EgressClsact.
	Mechanism string `json:"mechanism"`
	ProgramID uint32 `json:"program_id"`
	// LinkID is the tcx link's (tcx only).
	LinkID uint32 `json:"link_id,omitempty"`
	// QdiscAdded says xdpc added the interface's clsact qdisc (clsact
	// only): detach removes it once no filter is left on it.
	QdiscAdded bool `json:"qdisc_added,omitempty"`
	// Gone is set by Status when the kernel no longer runs the program
	// on the interface.
	Gone bool `json:"gone,omitempty"`
}

// egressLink is an egress program attached to one interface.
type egressLink struct {
	mech    string
	nsName  string
	ifname  string
	ifindex int
	// tcx is the link (tcx only).
	tcx link.Link
	// qdiscAdded: this attach (or the one recorded) added the clsact qdisc.
	qdiscAdded bool
}

// haveTCX probes once whether the kernel has tcx links: an attach to an
// interface that cannot exist fails with ENODEV where it has them, and
// with ebpf.ErrNotSupported where it does not.
var haveTCX = sync.OnceValue(func() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SchedCLS, License: "GPL",
		Instructions: tcReturn(),
	})
	if err != nil {
		return fmt.Errorf("probe tcx: load a TC program: %w", err)
	}
	defer prog.Close()
	lk, err := link.AttachTCX(link.TCXOptions{Program: prog, Attach: ebpf.AttachTCXEgress, Interface: math.MaxUint32})
	if err == nil {
		lk.Close()
		return nil
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	return nil
})

// chooseEgress returns the mechanism an attach with the requested one
// uses on this kernel.
func chooseEgress(requested string) (string, error) {
	switch requested {
	case EgressTCX, EgressClsact:
		return requested, nil
	case EgressAuto, "":
		if haveTCX() == nil {
			return EgressTCX, nil
		}
		return EgressClsact, nil
	}
	return "", fmt.Errorf("unknown egress attach %q (want auto, tcx or clsact)", requested)
}

// attachEgress attaches prog to the interface's egress with mech.
func attachEgress(nsName, ifname string, ifindex int, mech string, prog *ebpf.Program) (*egressLink, error) {
	e := &egressLink{mech: mech, nsName: nsName, ifname: ifname, ifindex: ifindex}
	switch mech {
	case EgressTCX:
		err := inNetns(nsName, func() error {
			var err error
			e.tcx, err = link.AttachTCX(link.TCXOptions{
				Program: prog, Attach: ebpf.AttachTCXEgress, Interface: ifindex, Anchor: link.Head(),
			})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("attach tc egress to %s with tcx: %w", ifname, err)
		}
		return e, nil
	case EgressClsact:
		h, err := linkHandle(nsName)
		if err != nil {
			return nil, err
		}
		defer h.Close()
		added, err := ensureClsact(h, ifindex)
		if err != nil {
			return nil, fmt.Errorf("attach tc egress to %s with clsact: %w", ifname, err)
		}
		e.qdiscAdded = added
		if err := h.FilterAdd(egressFilter(ifindex, prog)); err != nil {
			if errors.Is(err, unix.EEXIST) {
				err = takeOverFilter(h, ifindex, prog)
			}
			if err != nil {
				if added {
					h.QdiscDel(clsactQdisc(ifindex))
				}
				return nil, fmt.Errorf("attach tc egress to %s with clsact: %w", ifname, err)
			}
		}
		return e, nil
	}
	return nil, fmt.Errorf("attach tc egress to %s: unknown mechanism %q", ifname, mech)
}

// takeOverFilter replaces a filter found at xdpc's handle and priority
// when it runs an xdpc program (one left by an xdpc that lost its
// records); anyone else's stays and the attach fails.
func takeOverFilter(h *netlink.Handle, ifindex int, prog *ebpf.Program) error {
	f, err := findEgressFilter(h, ifindex)
	if err != nil {
		return err
	}
	if f == nil || !strings.HasPrefix(f.Name, "xdpc") {
		name := "?"
		if f != nil {
			name = f.Name
		}
		return fmt.Errorf("egress filter priority %d handle %#x is taken by %q, not an xdpc program", clsactPriority, clsactHandle, name)
	}
	return h.FilterReplace(egressFilter(ifindex, prog))
}

// update replaces the program the egress attachment runs, atomically.
func (e *egressLink) update(prog *ebpf.Program) error {
	switch e.mech {
	case EgressTCX:
		if err := e.tcx.Update(prog); err != nil {
			return fmt.Errorf("replace tc egress program on %s: %w", e.ifname, err)
		}
		return nil
	case EgressClsact:
		h, err := linkHandle(e.nsName)
		if err != nil {
			return err
		}
		defer h.Close()
		if err := h.FilterReplace(egressFilter(e.ifindex, prog)); err != nil {
			return fmt.Errorf("replace tc egress filter on %s: %w", e.ifname, err)
		}
		return nil
	}
	return fmt.Errorf("replace tc egress program on %s: unknown mechanism %q", e.ifname, e.mech)
}

// remove detaches the egress program: the tcx link, or the filter and,
// when xdpc added it and no filter is left on it, the clsact qdisc. An
// interface that is gone has taken them with it.
func (e *egressLink) remove() error {
	switch e.mech {
	case EgressTCX:
		if e.tcx == nil {
			return nil
		}
		if err := e.tcx.Detach(); err != nil && !errors.Is(err, unix.ENOLINK) && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("detach tc egress from %s: %w", e.ifname, err)
		}
		return nil
	case EgressClsact:
		h, err := linkHandle(e.nsName)
		if err != nil {
			return err
		}
		defer h.Close()
		if err := h.FilterDel(egressFilter(e.ifindex, nil)); err != nil && !gone(err) {
			return fmt.Errorf("remove tc egress filter from %s: %w", e.ifname, err)
		}
		if e.qdiscAdded {
			if err := removeUnusedClsact(h, e.ifindex); err != nil {
				return fmt.Errorf("remove clsact qdisc of %s: %w", e.ifname, err)
			}
		}
		return nil
	}
	return nil
}

// close releases the process's hold on the attachment without detaching
// it when it is pinned (tcx), or at all (clsact: the filter holds the
// program).
func (e *egressLink) close() {
	if e != nil && e.tcx != nil {
		e.tcx.Close()
	}
}

// gone reports whether a netlink error says the interface or the filter
// no longer exists.
func gone(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL)
}

func clsactQdisc(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
}

// egressFilter is xdpc's egress filter on ifindex; prog nil for a delete.
func egressFilter(ifindex int, prog *ebpf.Program) *netlink.BpfFilter {
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_EGRESS,
			Handle: clsactHandle, Priority: clsactPriority, Protocol: unix.ETH_P_ALL,
		},
		DirectAction: true,
	}
	if prog != nil {
		f.Fd = prog.FD()
		f.Name = "xdpc_egress"
		if info, err := prog.Info(); err == nil && info.Name != "" {
			f.Name = info.Name
		}
	}
	return f
}

// ensureClsact adds a clsact qdisc to ifindex unless it has one; added
// says whether it did.
func ensureClsact(h *netlink.Handle, ifindex int) (added bool, err error) {
	have, err := hasClsact(h, ifindex)
	if err != nil || have {
		return false, err
	}
	if err := h.QdiscAdd(clsactQdisc(ifindex)); err != nil {
		if errors.Is(err, unix.EEXIST) {
			// Another qdisc holds ffff: (ingress): clsact cannot go there.
			return false, fmt.Errorf("add clsact qdisc: %w (an ingress qdisc is in its place?)", err)
		}
		return false, fmt.Errorf("add clsact qdisc: %w", err)
	}
	return true, nil
}

func hasClsact(h *netlink.Handle, ifindex int) (bool, error) {
	qs, err := h.QdiscList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}})
	if err != nil {
		return false, fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qs {
		if q.Type() == "clsact" {
			return true, nil
		}
	}
	return false, nil
}

// removeUnusedClsact deletes the clsact qdisc of ifindex when no filter
// is left on its ingress or egress hook.
func removeUnusedClsact(h *netlink.Handle, ifindex int) error {
	dev := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		fs, err := h.FilterList(dev, parent)
		if err != nil {
			if gone(err) {
				return nil
			}
			return fmt.Errorf("list filters: %w", err)
		}
		if len(fs) > 0 {
			return nil
		}
	}
	if err := h.QdiscDel(clsactQdisc(ifindex)); err != nil && !gone(err) {
		return err
	}
	return nil
}

// findEgressFilter returns xdpc's egress filter on ifindex; nil when
// there is none.
func findEgressFilter(h *netlink.Handle, ifindex int) (*netlink.BpfFilter, error) {
	fs, err := h.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}, netlink.HANDLE_MIN_EGRESS)
	if err != nil {
		if gone(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list egress filters: %w", err)
	}
	for _, f := range fs {
		bf, ok := f.(*netlink.BpfFilter)
		if ok && bf.Handle == clsactHandle && bf.Priority == clsactPriority {
			return bf, nil
		}
	}
	return nil, nil
}

// egressProgramID returns the id of the program the interface's egress
// attachment runs now, and its link's id (tcx); 0 when the kernel runs
// none there.
func (e *egressLink) programID() (prog, lk uint32, err error) {
	switch e.mech {
	case EgressTCX:
		if e.tcx == nil {
			return 0, 0, nil
		}
		info, err := e.tcx.Info()
		if err != nil {
			return 0, 0, fmt.Errorf("read tc egress link of %s: %w", e.ifname, err)
		}
		if tcx := info.TCX(); tcx == nil || tcx.Ifindex == 0 {
			return 0, uint32(info.ID), nil
		}
		return uint32(info.Program), uint32(info.ID), nil
	case EgressClsact:
		h, err := linkHandle(e.nsName)
		if err != nil {
			return 0, 0, err
		}
		defer h.Close()
		f, err := findEgressFilter(h, e.ifindex)
		if err != nil || f == nil {
			return 0, 0, err
		}
		return uint32(f.Id), 0, nil
	}
	return 0, 0, nil
}

// loadEgress opens the interface's recorded egress attachment: the pinned
// tcx link, or a handle on the clsact filter; nil when the record has
// none.
func loadEgress(l layout, ifname string, ifindex int, rec *EgressAttachment) (*egressLink, error) {
	if rec == nil {
		return nil, nil
	}
	e := &egressLink{mech: rec.Mechanism, nsName: l.nsName, ifname: ifname, ifindex: ifindex, qdiscAdded: rec.QdiscAdded}
	if rec.Mechanism == EgressTCX {
		lk, err := link.LoadPinnedLink(l.egressLinkPin(ifname), nil)
		if errors.Is(err, os.ErrNotExist) {
			return e, nil
		}
		if err != nil {
			return nil, fmt.Errorf("open pinned tc egress link of %s: %w", ifname, err)
		}
		e.tcx = lk
	}
	return e, nil
}

// EgressOptions say where AttachEgress attaches a program.
type EgressOptions struct {
	// Netns is a named network namespace; "" is the caller's.
	Netns     string
	Interface string
	// Mechanism is EgressAuto, EgressTCX or EgressClsact.
	Mechanism string
	Program   *ebpf.Program
}

// EgressLink is a TC egress program attached by AttachEgress.
type EgressLink struct{ e *egressLink }

// Mechanism says how the program is attached: EgressTCX or EgressClsact.
func (l *EgressLink) Mechanism() string { return l.e.mech }

// Close detaches the program (and removes a clsact qdisc the attach
// added, once no filter is left on it).
func (l *EgressLink) Close() error {
	err := l.e.remove()
	l.e.close()
	return err
}

// AttachEgress attaches a loaded TC program (an artifact's egress
// program, TestProgram.Egress) to an interface's egress without pinning
// anything: Close detaches it. It is the attach Apply uses, for callers
// that own the program's lifetime (the lab).
func AttachEgress(o EgressOptions) (*EgressLink, error) {
	idx, err := interfaceIndex(o.Netns, o.Interface)
	if err != nil {
		return nil, err
	}
	mech, err := chooseEgress(o.Mechanism)
	if err != nil {
		return nil, err
	}
	e, err := attachEgress(o.Netns, o.Interface, idx, mech, o.Program)
	if err != nil {
		return nil, err
	}
	return &EgressLink{e}, nil
}

// tcReturn is a TC program's end: TC_ACT_UNSPEC.
func tcReturn() asm.Instructions {
	return asm.Instructions{asm.Mov.Imm(asm.R0, tcActUnspec), asm.Return()}
}
