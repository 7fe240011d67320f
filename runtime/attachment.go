package runtime

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// XDP attach modes as the policy and the attachment records name them.
const (
	ModeAuto    = "auto"
	ModeNative  = "native"
	ModeGeneric = "generic"
)

// Attachment is one interface's xdpc program, as recorded at apply time
// and, for Status, checked against the kernel.
type Attachment struct {
	Interface string `json:"interface"`
	// Netns is the network namespace name, "host" for the caller's.
	Netns  string `json:"netns"`
	Policy string `json:"policy"`
	Hash   string `json:"hash"`
	// Mode is native or generic: how the program is attached.
	Mode      string `json:"mode"`
	ProgramID uint32 `json:"program_id"`
	LinkID    uint32 `json:"link_id"`
	Ifindex   int    `json:"ifindex"`
	// Since is when xdpc attached the interface's link; Applied when the
	// program it runs now was applied (an atomic replace keeps the link).
	Since   time.Time `json:"since"`
	Applied time.Time `json:"applied"`
	// Egress is the TC egress program that records the host's own
	// traffic for connection tracking; nil when the policy tracks none.
	Egress *EgressAttachment `json:"egress,omitempty"`
	// NAT is the interface's part in a nat block, "outside" or "inside";
	// "" when it plays none.
	NAT string `json:"nat,omitempty"`
	// Gone is set by Status when the interface no longer exists (or is no
	// longer the one attached to): the pins are stale until detach.
	Gone bool `json:"gone,omitempty"`
	// RenamedTo is set by Status when the interface attached to now has
	// another name; the program still runs there.
	RenamedTo string `json:"renamed_to,omitempty"`
}

// attached is an interface's current attachment: its record and pinned link.
type attached struct {
	rec  Attachment
	link link.Link
	// ifindex is the interface the kernel says the link holds, 0 when
	// the interface is gone.
	ifindex int
	// defunct is set when the link no longer holds the interface.
	defunct bool
}

// loadAttached opens ifname's pinned link and record; nil when there is no
// pinned link.
func loadAttached(l layout, ifname string) (*attached, error) {
	lk, err := link.LoadPinnedLink(l.linkPin(ifname), nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open pinned link of %s: %w", ifname, err)
	}
	a := &attached{link: lk}
	if err := readJSON(l.attachmentFile(ifname), &a.rec); err != nil && !errors.Is(err, os.ErrNotExist) {
		lk.Close()
		return nil, err
	}
	info, err := lk.Info()
	if err != nil {
		lk.Close()
		return nil, fmt.Errorf("read link of %s: %w", ifname, err)
	}
	a.rec.ProgramID = uint32(info.Program)
	a.rec.LinkID = uint32(info.ID)
	if xdp := info.XDP(); xdp != nil {
		a.ifindex = int(xdp.Ifindex)
	}
	a.defunct = a.ifindex == 0
	return a, nil
}

func (a *attached) close() {
	if a != nil {
		a.link.Close()
	}
}

// attachXDP attaches prog to ifindex in the named namespace in mode. Auto
// tries native first and falls back to generic, returning a note that
// says so; an explicit mode never falls back.
func attachXDP(nsName, ifname string, ifindex int, mode string, prog *ebpf.Program) (link.Link, string, string, error) {
	try := func(flags link.XDPAttachFlags) (link.Link, error) {
		var lk link.Link
		err := inNetns(nsName, func() error {
			var err error
			lk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: flags})
			return err
		})
		return lk, err
	}
	switch mode {
	case ModeNative:
		lk, err := try(link.XDPDriverMode)
		if err != nil {
			return nil, "", "", fmt.Errorf("attach xdp to %s in native mode: %w", ifname, err)
		}
		return lk, ModeNative, "", nil
	case ModeGeneric:
		lk, err := try(link.XDPGenericMode)
		if err != nil {
			return nil, "", "", fmt.Errorf("attach xdp to %s in generic mode: %w", ifname, err)
		}
		return lk, ModeGeneric, "", nil
	case ModeAuto, "":
		lk, nerr := try(link.XDPDriverMode)
		if nerr == nil {
			return lk, ModeNative, "", nil
		}
		lk, gerr := try(link.XDPGenericMode)
		if gerr != nil {
			return nil, "", "", fmt.Errorf("attach xdp to %s: native: %v; generic: %w", ifname, nerr, gerr)
		}
		note := fmt.Sprintf("warning: %s: native XDP unavailable (%v); attached in generic mode, which is slower", ifname, nerr)
		return lk, ModeGeneric, note, nil
	}
	return nil, "", "", fmt.Errorf("attach xdp to %s: unknown mode %q (want native, generic or auto)", ifname, mode)
}

// XDPAttachment says where and how AttachXDP attaches a program.
type XDPAttachment struct {
	// Netns is a named network namespace; "" is the caller's.
	Netns     string
	Interface string
	// Mode is ModeNative, ModeGeneric or ModeAuto.
	Mode    string
	Program *ebpf.Program
}

// AttachXDP attaches a loaded program to an interface through a bpf_link
// that is not pinned: closing the link detaches the program. It is the
// attach that Apply uses, for callers that own the program's lifetime (the
// lab). It returns the mode it attached in and, when auto fell back to
// generic, a warning for the operator.
func AttachXDP(a XDPAttachment) (lk link.Link, mode, note string, err error) {
	idx, err := interfaceIndex(a.Netns, a.Interface)
	if err != nil {
		return nil, "", "", err
	}
	return attachXDP(a.Netns, a.Interface, idx, a.Mode, a.Program)
}
