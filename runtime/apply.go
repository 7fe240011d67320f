package runtime

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/xdpc/xdpc/artifact"
)

// ErrNoInterface is returned by Apply for a policy no interface block names.
var ErrNoInterface = errors.New("no interface block attaches the policy")

// ApplyOptions are Options plus what one apply does.
type ApplyOptions struct {
	Options
	// Interfaces, when set, replaces the manifest's interface bindings.
	Interfaces []artifact.InterfaceBinding
	// Confirm, when positive, records what the interfaces had before so
	// that WaitConfirm restores it unless Confirm is called in time. The
	// calling process is the one that waits: the confirmation counts as
	// abandoned (ErrWaiterGone) once it ends, or once WaitConfirm returns.
	Confirm time.Duration
	// Egress says how a policy's TC egress program (connection tracking)
	// is attached: EgressAuto (the default, ""), EgressTCX or
	// EgressClsact. Auto keeps the mechanism an interface already has.
	Egress string
	// NAT are the outside addresses of the policy's nat blocks, when the
	// caller has the policy: the reserved ports are those of the host's
	// sockets on the masquerade addresses (on every address when NAT is
	// nil), and apply warns about outside addresses the outside
	// interface does not have.
	NAT []NATAddresses
}

// ApplyReport says what Apply did.
type ApplyReport struct {
	Policy      string
	Hash        string
	Attachments []Attachment
	// Notes are warnings for the operator: a fallback to generic mode, a
	// kept map that had to be recreated.
	Notes []string
	// Pending is the confirmation to wait for when ApplyOptions.Confirm
	// was set.
	Pending *Pending
}

// Apply loads the artifact elf and attaches its program to every interface
// the policy names, replacing an xdpc program already there atomically
// (BPF_LINK_UPDATE: every packet meets the old or the new program). It
// fails before changing anything when the program, a map or an interface
// is missing or refused; an attach that fails half way restores the
// interfaces already changed.
func Apply(elf []byte, opts ApplyOptions) (*ApplyReport, error) {
	spec, m, err := artifact.Read(elf)
	if err != nil {
		return nil, err
	}
	bindings := opts.Interfaces
	if bindings == nil {
		bindings = m.Interfaces
	}
	if len(bindings) == 0 {
		return nil, fmt.Errorf("apply policy %q: %w", m.Policy, ErrNoInterface)
	}
	if err := checkName("policy", m.Policy); err != nil {
		return nil, err
	}
	if _, err := chooseEgress(opts.Egress); err != nil {
		return nil, err
	}
	for _, b := range bindings {
		if err := checkName("interface", b.Name); err != nil {
			return nil, err
		}
	}
	l := opts.layout()
	if err := checkNetns(l); err != nil {
		return nil, err
	}
	lock, err := acquireLock(l)
	if err != nil {
		return nil, err
	}
	defer lock.release()

	// A confirmation still waited for would roll this apply back too. One
	// whose process is gone is set aside, and dropped once this apply has
	// replaced it.
	stale, err := readPending(l)
	if err != nil {
		return nil, err
	}
	if stale != nil {
		if stale.Waiting() {
			return nil, stale.pendingError(fmt.Sprintf("apply policy %q", m.Policy))
		}
		if err := stale.setAside(l); err != nil {
			return nil, err
		}
	}
	var pending *Pending
	if opts.Confirm > 0 {
		if pending, err = beginConfirm(l, bindings, opts.Confirm); err != nil {
			if stale != nil {
				stale.putBack(l)
			}
			return nil, err
		}
	}
	rep, err := apply(l, elf, spec, m, bindings, opts.Egress, opts.NAT)
	if err != nil {
		if pending != nil {
			pending.discard()
			pending.release()
		}
		if stale != nil {
			stale.putBack(l)
		}
		return nil, err
	}
	if stale != nil {
		stale.discard()
		rep.Notes = append(rep.Notes, stale.supersededNote(bindings, l.netns))
	}
	rep.Pending = pending
	return rep, nil
}

// checkName refuses names that would escape the pin and state directories.
func checkName(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%s name %q cannot name a directory", what, name)
	}
	return nil
}

// change is one interface's part of an apply, undone when a later one fails.
type change struct {
	binding artifact.InterfaceBinding
	ifindex int
	old     *attached
	// oldProg is the program old ran, restored by undo after an update.
	oldProg *ebpf.Program
	// fresh is the new link when the interface got one (first attach, mode
	// change, defunct old link); nil when the old link was updated.
	fresh link.Link
	mode  string
	// egress is the TC egress side of the change.
	egress egressChange
}

// egressChange is one interface's TC egress part of an apply.
type egressChange struct {
	// old is the egress attachment the interface has; nil when none.
	old *egressLink
	// oldProg is the program old ran, restored by undo after an update.
	oldProg *ebpf.Program
	// updated: old runs the new program now.
	updated bool
	// fresh is the attachment made by this apply (first attach, another
	// mechanism, old one missing); commit removes old then.
	fresh *egressLink
}

// undo gives the interface back what it had: its previous XDP program,
// then its previous egress program (attached before the XDP one).
func (c *change) undo() {
	if c.fresh != nil {
		c.fresh.Close() // not pinned yet: closing detaches it
		c.fresh = nil
	} else if c.old != nil && c.oldProg != nil {
		c.old.link.Update(c.oldProg)
	}
	c.undoEgress()
}

func (c *change) undoEgress() {
	e := &c.egress
	switch {
	case e.fresh != nil:
		e.fresh.remove()
		e.fresh.close()
		e.fresh = nil
	case e.updated && e.oldProg != nil:
		e.old.update(e.oldProg)
		e.updated = false
	}
}

func (c *change) close() {
	c.old.close()
	if c.oldProg != nil {
		c.oldProg.Close()
	}
	c.egress.old.close()
	c.egress.fresh.close()
	if c.egress.oldProg != nil {
		c.egress.oldProg.Close()
	}
}

// apply does the work of Apply under the lock; egress is the requested
// mechanism of the egress attachments.
func apply(l layout, elf []byte, spec *ebpf.CollectionSpec, m *artifact.Manifest, bindings []artifact.InterfaceBinding, egress string, natAddrs []NATAddresses) (*ApplyReport, error) {
	rep := &ApplyReport{Policy: m.Policy, Hash: m.Hash}
	if err := ensureBPFFS(l.pinRoot); err != nil {
		return nil, err
	}
	changes := make([]*change, len(bindings))
	for i, b := range bindings {
		idx, err := interfaceIndex(l.nsName, b.Name)
		if err != nil {
			return nil, fmt.Errorf("apply policy %q: %w", m.Policy, err)
		}
		changes[i] = &change{binding: b, ifindex: idx}
	}
	defer func() {
		for _, c := range changes {
			c.close()
		}
	}()

	if err := foldCounters(l, m.Policy); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("warning: counters of policy %s: %v", m.Policy, err))
	}
	kept, err := planKeptMaps(l, spec, m)
	if err != nil {
		return nil, fmt.Errorf("apply policy %q: %w", m.Policy, err)
	}
	defer kept.close()
	rep.Notes = append(rep.Notes, kept.notes...)
	table, err := planTable(l, spec, m, bindings)
	if err != nil {
		return nil, fmt.Errorf("apply policy %q: %w", m.Policy, err)
	}
	defer table.close()
	natp, err := planNAT(l, spec, m, table)
	if err != nil {
		return nil, fmt.Errorf("apply policy %q: %w", m.Policy, err)
	}
	defer natp.close()
	replacements := kept.replacements
	if table != nil {
		rep.Notes = append(rep.Notes, table.notes...)
		replacements = maps.Clone(kept.replacements)
		maps.Copy(replacements, table.replacements())
	}
	if natp != nil {
		rep.Notes = append(rep.Notes, natp.notes...)
		maps.Copy(replacements, natp.replacements())
		note, err := natp.reserve(natAddrs)
		if err != nil {
			return nil, fmt.Errorf("apply policy %q: %w", m.Policy, err)
		}
		if note != "" {
			rep.Notes = append(rep.Notes, note)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: replacements})
	if err != nil {
		return nil, fmt.Errorf("load policy %q: %w", m.Policy, describeLoadError(err, loadedProgram(err, spec, m)))
	}
	defer coll.Close()
	if err := kept.populate(coll); err != nil {
		return nil, fmt.Errorf("apply policy %q: %w", m.Policy, err)
	}
	err = inNetns(l.nsName, func() error {
		return fillRedirects(coll.Maps, m, func(name string) (int, error) { return interfaceIndex(l.nsName, name) })
	})
	if err != nil {
		return nil, fmt.Errorf("apply policy %q: %w", m.Policy, err)
	}
	prog := coll.Programs[m.Program]
	var egressProg *ebpf.Program
	if m.Egress != "" {
		egressProg = coll.Programs[m.Egress]
	}
	if err := kept.startCounters(coll, m); err != nil {
		if rerr := kept.restoreCounters(coll, prog, false); rerr != nil {
			err = fmt.Errorf("%w; restoring the counters failed too: %v", err, rerr)
		}
		return nil, fmt.Errorf("apply policy %q: %w", m.Policy, err)
	}

	// The stack forwards what XDP passes: set it up before any
	// interface translates, and put it back if the apply fails.
	sysctls, notes, err := setSysctls(l, bindings)
	if err != nil {
		if rerr := kept.restoreCounters(coll, prog, false); rerr != nil {
			err = fmt.Errorf("%w; restoring the counters failed too: %v", err, rerr)
		}
		return nil, fmt.Errorf("apply policy %q: %w", m.Policy, err)
	}
	rep.Notes = append(rep.Notes, notes...)
	done := false
	defer func() {
		if !done {
			sysctls.undo()
		}
	}()

	for i, c := range changes {
		note, err := c.attach(l, prog, egressProg, egress)
		if err != nil {
			for j := i - 1; j >= 0; j-- {
				changes[j].undo()
			}
			// Interfaces before i ran the new program for a while.
			if rerr := kept.restoreCounters(coll, prog, i > 0); rerr != nil {
				err = fmt.Errorf("%w; restoring the counters failed too: %v", err, rerr)
			}
			return nil, fmt.Errorf("apply policy %q: %w", m.Policy, err)
		}
		if note != "" {
			rep.Notes = append(rep.Notes, note)
		}
	}

	// Every interface runs the new program: make it outlive this process.
	if err := kept.commitCounters(m); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("warning: counters of policy %s: %v", m.Policy, err))
	}
	if err := kept.extendSets(coll); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("warning: policy %s: %v", m.Policy, err))
	}
	if err := kept.pin(coll); err != nil {
		return nil, err
	}
	if err := table.commit(); err != nil {
		return nil, err
	}
	if err := natp.commit(); err != nil {
		return nil, err
	}
	if err := writeJSON(l.keptManifest(m.Policy), m); err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, c := range changes {
		att, err := c.commit(l, prog, egressProg, m, elf, now)
		if err != nil {
			return nil, err
		}
		rep.Attachments = append(rep.Attachments, att)
	}
	done = true
	rep.Notes = append(rep.Notes, leftBehind(l, m.Policy, bindings)...)
	if natAddrs != nil {
		notes, err := arpNotes(l, bindings, natAddrs)
		if err != nil {
			notes = []string{fmt.Sprintf("warning: check the NAT outside addresses: %v", err)}
		}
		rep.Notes = append(rep.Notes, notes...)
	}
	// Interfaces that played a part in NAT and no longer do.
	notes, err = tidyNAT(l)
	rep.Notes = append(rep.Notes, notes...)
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("warning: %v", err))
	}
	if err := tidyTables(l, table == nil); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("warning: %v", err))
	}
	return rep, nil
}

// tidyTables removes the connection tables no program tracks in any more
// and, when prune, the dead entries of the namespace's table (an apply
// of a policy that tracks did that when it committed the table).
func tidyTables(l layout, prune bool) error {
	if err := gcTables(l); err != nil {
		return err
	}
	if !prune {
		return nil
	}
	t, err := openTable(l)
	if errors.Is(err, ErrNoConntrack) {
		return nil
	}
	if err != nil {
		return err
	}
	defer t.Close()
	_, err = t.RemoveDead()
	return err
}

// leftBehind warns about interfaces that run an earlier version of the
// policy but are not among bindings: they keep their program until
// detached or named again.
func leftBehind(l layout, policy string, bindings []artifact.InterfaceBinding) []string {
	recs, err := records(l)
	if err != nil {
		return nil
	}
	var notes []string
	for _, r := range recs {
		if r.Policy != policy || r.Netns != l.netns || slices.ContainsFunc(bindings, func(b artifact.InterfaceBinding) bool { return b.Name == r.Interface }) {
			continue
		}
		notes = append(notes, fmt.Sprintf("warning: %s still runs the previous version of policy %s; name it in the policy or detach it", r.Interface, policy))
	}
	return notes
}

// attach puts the egress program (when the artifact has one) and then
// prog on the interface; when the XDP part fails, the egress part is
// undone before it returns.
func (c *change) attach(l layout, prog, egressProg *ebpf.Program, egress string) (string, error) {
	name := c.binding.Name
	old, err := loadAttached(l, name)
	if err != nil {
		return "", err
	}
	c.old = old
	if old != nil && old.ifindex != c.ifindex {
		old.defunct = true
	}
	if err := c.attachEgress(l, egressProg, egress); err != nil {
		return "", err
	}
	note, err := c.attachXDP(l, prog)
	if err != nil {
		c.undoEgress()
	}
	return note, err
}

// attachEgress puts prog on the interface's egress: an update of the
// attachment it has (tcx: BPF_LINK_UPDATE; clsact: the filter replaced at
// its handle and priority) when the mechanism stays, otherwise a new
// attachment, beside the old one, which commit removes. With no prog,
// commit removes the old one: the policy no longer tracks.
func (c *change) attachEgress(l layout, prog *ebpf.Program, requested string) error {
	name := c.binding.Name
	e := &c.egress
	if c.old != nil && !c.old.defunct {
		old, err := loadEgress(l, name, c.ifindex, c.old.rec.Egress)
		if err != nil {
			return err
		}
		if old != nil {
			if id, _, err := old.programID(); err != nil || id == 0 {
				// Recorded, but the kernel runs nothing there (the
				// filter was deleted): attach afresh.
				old.close()
				old = nil
			}
		}
		e.old = old
	}
	if prog == nil {
		return nil
	}
	if e.old != nil && (requested == EgressAuto || requested == "" || requested == e.old.mech) {
		if p, err := ebpf.LoadPinnedProgram(l.egressProgPin(name), nil); err == nil {
			e.oldProg = p
		}
		if err := e.old.update(prog); err != nil {
			return err
		}
		e.updated = true
		return nil
	}
	mech, err := chooseEgress(requested)
	if err != nil {
		return err
	}
	fresh, err := attachEgress(l.nsName, name, c.ifindex, mech, prog)
	if err != nil {
		return err
	}
	if rec := c.recordedEgress(); rec != nil && rec.Mechanism == EgressClsact && rec.QdiscAdded && e.old == nil {
		// The qdisc xdpc added before stays xdpc's to remove.
		fresh.qdiscAdded = true
	}
	e.fresh = fresh
	return nil
}

// recordedEgress is the egress attachment the interface's record names.
func (c *change) recordedEgress() *EgressAttachment {
	if c.old == nil {
		return nil
	}
	return c.old.rec.Egress
}

// attachXDP puts prog on the interface: an update of the pinned link when the
// mode allows, otherwise a new link (attached beside the old one, which
// commit detaches, so a mode change too leaves no moment without a
// program).
func (c *change) attachXDP(l layout, prog *ebpf.Program) (string, error) {
	name := c.binding.Name
	old := c.old
	if old != nil && !old.defunct && (c.binding.Mode == ModeAuto || c.binding.Mode == "" || c.binding.Mode == old.rec.Mode) {
		if p, err := ebpf.LoadPinnedProgram(l.progPin(name), nil); err == nil {
			c.oldProg = p
		}
		if err := old.link.Update(prog); err != nil {
			return "", fmt.Errorf("replace program on %s: %w", name, err)
		}
		c.mode = old.rec.Mode
		return "", nil
	}
	if old != nil && !old.defunct {
		// The kernel refuses native and generic programs side by side, so
		// a mode change detaches first: the one case with a gap.
		return c.changeMode(l, prog)
	}
	lk, mode, note, err := attachXDP(l.nsName, name, c.ifindex, c.binding.Mode, prog)
	if err != nil {
		return "", err
	}
	c.fresh, c.mode = lk, mode
	return note, nil
}

// changeMode moves the interface from its old mode to the binding's; when
// the new attach fails the old program is attached again in its mode.
func (c *change) changeMode(l layout, prog *ebpf.Program) (string, error) {
	name := c.binding.Name
	oldProg, err := ebpf.LoadPinnedProgram(l.progPin(name), nil)
	if err != nil {
		return "", fmt.Errorf("open pinned program of %s: %w", name, err)
	}
	defer oldProg.Close()
	if err := c.old.link.Detach(); err != nil {
		return "", fmt.Errorf("detach %s program from %s: %w", c.old.rec.Mode, name, err)
	}
	c.old.defunct = true
	lk, mode, note, err := attachXDP(l.nsName, name, c.ifindex, c.binding.Mode, prog)
	if err != nil {
		back, _, _, berr := attachXDP(l.nsName, name, c.ifindex, c.old.rec.Mode, oldProg)
		if berr == nil {
			berr = pinReplace(back, l.linkPin(name))
			back.Close()
		}
		if berr != nil {
			return "", fmt.Errorf("%w; restoring the previous program failed too: %v", err, berr)
		}
		return "", err
	}
	c.fresh, c.mode = lk, mode
	msg := fmt.Sprintf("warning: %s: mode changed from %s to %s; the interface was without a program for a moment", name, c.old.rec.Mode, mode)
	if note != "" {
		msg += "; " + note
	}
	return msg, nil
}

// commit pins the interface's link and program and records the attachment.
func (c *change) commit(l layout, prog, egressProg *ebpf.Program, m *artifact.Manifest, elf []byte, now time.Time) (Attachment, error) {
	name := c.binding.Name
	if c.fresh != nil {
		if err := pinReplace(c.fresh, l.linkPin(name)); err != nil {
			c.fresh.Close()
			return Attachment{}, err
		}
		if c.old != nil && !c.old.defunct {
			if err := c.old.link.Detach(); err != nil {
				return Attachment{}, fmt.Errorf("detach previous %s program from %s: %w", c.old.rec.Mode, name, err)
			}
		}
		defer c.fresh.Close()
	}
	if err := pinReplace(prog, l.progPin(name)); err != nil {
		return Attachment{}, err
	}
	att := Attachment{
		Interface: name, Netns: l.netns, Policy: m.Policy, Hash: m.Hash,
		Mode: c.mode, Ifindex: c.ifindex, Since: now, Applied: now,
		NAT: c.binding.NAT,
	}
	if c.fresh == nil && !c.old.rec.Since.IsZero() {
		att.Since = c.old.rec.Since
	}
	if info, err := prog.Info(); err == nil {
		if id, ok := info.ID(); ok {
			att.ProgramID = uint32(id)
		}
	}
	lk := c.fresh
	if lk == nil {
		lk = c.old.link
	}
	if info, err := lk.Info(); err == nil {
		att.LinkID = uint32(info.ID)
	}
	eg, err := c.commitEgress(l, egressProg)
	if err != nil {
		return Attachment{}, err
	}
	att.Egress = eg
	if err := writeFileAtomic(l.artifactFile(name), elf); err != nil {
		return Attachment{}, err
	}
	if err := writeJSON(l.attachmentFile(name), att); err != nil {
		return Attachment{}, err
	}
	return att, nil
}

// commitEgress pins the interface's egress program (and tcx link), removes
// the attachment it replaced or no longer needs, and returns the record.
func (c *change) commitEgress(l layout, prog *ebpf.Program) (*EgressAttachment, error) {
	name := c.binding.Name
	e := &c.egress
	if prog == nil {
		if e.old != nil {
			if err := e.old.remove(); err != nil {
				return nil, err
			}
		}
		for _, pin := range []string{l.egressLinkPin(name), l.egressProgPin(name)} {
			if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("remove pin %s: %w", pin, err)
			}
		}
		return nil, nil
	}
	cur := e.old
	if e.fresh != nil {
		cur = e.fresh
		if e.fresh.mech == EgressTCX {
			if err := pinReplace(e.fresh.tcx, l.egressLinkPin(name)); err != nil {
				return nil, err
			}
		}
		if e.old != nil {
			if err := e.old.remove(); err != nil {
				return nil, fmt.Errorf("remove the previous %s egress attachment of %s: %w", e.old.mech, name, err)
			}
		}
		if e.fresh.mech != EgressTCX {
			if err := os.Remove(l.egressLinkPin(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("remove pin: %w", err)
			}
		}
	}
	if err := pinReplace(prog, l.egressProgPin(name)); err != nil {
		return nil, err
	}
	rec := &EgressAttachment{Mechanism: cur.mech, QdiscAdded: cur.qdiscAdded}
	if info, err := prog.Info(); err == nil {
		if id, ok := info.ID(); ok {
			rec.ProgramID = uint32(id)
		}
	}
	if cur.tcx != nil {
		if info, err := cur.tcx.Info(); err == nil {
			rec.LinkID = uint32(info.ID)
		}
	}
	return rec, nil
}
