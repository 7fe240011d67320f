package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Detach removes the xdpc program from ifname in opts.Netns, or from every
// interface when ifname is "" (of opts.Netns when it is set, of every
// namespace otherwise), with its pins and records. Maps no attached policy uses any more are removed too.
// Detaching what is not attached is not an error: the result lists what
// was detached. While an apply awaits confirmation and its process waits,
// Detach returns ErrPending and changes nothing.
func Detach(opts Options, ifname string) ([]Attachment, error) {
	r, err := DetachReport(opts, ifname)
	if r == nil {
		return nil, err
	}
	return r.Detached, err
}

// DetachResult says what DetachReport did.
type DetachResult struct {
	Detached []Attachment
	// Notes say what was given back to the host: the sysctls a NAT
	// deployment had set, restored with its last interface.
	Notes []string
}

// DetachReport is Detach, saying also what it gave back to the host.
func DetachReport(opts Options, ifname string) (*DetachResult, error) {
	l := opts.layout()
	if err := checkNetns(l); err != nil {
		return nil, err
	}
	lock, err := acquireLock(l)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	// The rollback of a confirmation still waited for would attach the
	// previous programs again behind the operator's back.
	if p, err := readPending(l); err != nil {
		return nil, err
	} else if p != nil && p.Waiting() {
		return nil, p.pendingError("detach")
	}
	var targets []Attachment
	if ifname == "" {
		if targets, err = recordsOf(l, opts.Netns); err != nil {
			return nil, err
		}
	} else {
		if err := checkName("interface", ifname); err != nil {
			return nil, err
		}
		var rec Attachment
		err := readJSON(l.attachmentFile(ifname), &rec)
		_, perr := os.Stat(l.linkPin(ifname))
		switch {
		case err == nil:
			targets = append(targets, rec)
		case perr == nil:
			targets = append(targets, Attachment{Interface: ifname, Netns: l.netns})
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	res := &DetachResult{}
	var errs []error
	for _, t := range targets {
		if err := detachOne(l.withNetns(t.Netns), t.Interface); err != nil {
			return res, err
		}
		res.Detached = append(res.Detached, t)
	}
	seen := map[string]bool{}
	for _, t := range res.Detached {
		if seen[t.Netns] {
			continue
		}
		seen[t.Netns] = true
		notes, err := tidyNAT(l.withNetns(t.Netns))
		res.Notes = append(res.Notes, notes...)
		errs = append(errs, err)
	}
	errs = append(errs, gcMaps(l), gcTables(l))
	return res, errors.Join(errs...)
}

// detachOne detaches ifname's link and egress program and removes their
// pins and records.
func detachOne(l layout, ifname string) error {
	a, err := loadAttached(l, ifname)
	if err != nil {
		return err
	}
	if a != nil {
		defer a.close()
		if !a.defunct {
			if err := a.link.Detach(); err != nil {
				return fmt.Errorf("detach xdp from %s: %w", ifname, err)
			}
			// An interface that is gone took its egress program with it.
			eg, err := loadEgress(l, ifname, a.ifindex, a.rec.Egress)
			if err != nil {
				return err
			}
			if eg != nil {
				err := eg.remove()
				eg.close()
				if err != nil {
					return err
				}
			}
		}
	}
	if err := os.RemoveAll(l.linkPinDir(ifname)); err != nil {
		return fmt.Errorf("remove pins of %s: %w", ifname, err)
	}
	if err := os.RemoveAll(l.linkStateDir(ifname)); err != nil {
		return fmt.Errorf("remove record of %s: %w", ifname, err)
	}
	// The namespace's directories go with its last interface.
	os.Remove(filepath.Dir(l.linkPinDir(ifname)))
	os.Remove(filepath.Dir(l.linkStateDir(ifname)))
	return nil
}

// gcMaps removes the kept maps of policies no interface runs any more, the
// retired generations of their counters included, and folds the retired
// counter generations of the others that no program counts in any more
// (a detached interface's program was the last).
func gcMaps(l layout) error {
	recs, err := records(l)
	if err != nil {
		return err
	}
	inUse := map[string]bool{}
	var errs []error
	for _, r := range recs {
		if !inUse[r.Policy] {
			if err := foldCounters(l, r.Policy); err != nil {
				errs = append(errs, fmt.Errorf("counters of policy %s: %w", r.Policy, err))
			}
		}
		inUse[r.Policy] = true
	}
	for _, dir := range []string{filepath.Join(l.stateDir, "maps"), filepath.Join(l.pinRoot, "maps")} {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list kept maps: %w", err)
		}
		for _, e := range entries {
			if !inUse[e.Name()] {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return fmt.Errorf("remove kept maps of %s: %w", e.Name(), err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// recordsOf returns the attachment records of the namespace l is for, of
// every namespace when netns (Options.Netns) is "".
func recordsOf(l layout, netns string) ([]Attachment, error) {
	all, err := records(l)
	if err != nil || netns == "" {
		return all, err
	}
	var recs []Attachment
	for _, r := range all {
		if r.Netns == l.netns {
			recs = append(recs, r)
		}
	}
	return recs, nil
}

// records returns every attachment record, sorted by namespace and
// interface.
func records(l layout) ([]Attachment, error) {
	files, err := filepath.Glob(filepath.Join(l.stateDir, "links", "*", "*", "state.json"))
	if err != nil {
		return nil, fmt.Errorf("list attachments: %w", err)
	}
	var recs []Attachment
	for _, f := range files {
		var rec Attachment
		if err := readJSON(f, &rec); err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}
