package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
)

// ErrNothingPending is returned by Confirm, Keep and RollBack when no apply
// awaits confirmation.
var ErrNothingPending = errors.New("no apply is waiting for confirmation")

// ErrPending is returned by Apply and Detach while an apply awaits
// confirmation and its process still waits (its rollback would undo
// them), and by RollBack then (that process rolls back itself when
// interrupted).
var ErrPending = errors.New("an apply is waiting for confirmation")

// ErrWaiterGone is returned by Confirm, changing nothing, when the
// process that applied with a deadline is gone (killed with SIGKILL, or
// crashed): nothing rolled back or will, and the policy it applied stays.
// Keep or RollBack then settle the confirmation.
var ErrWaiterGone = errors.New("the apply waiting for confirmation is gone")

const (
	// confirmPoll is how often WaitConfirm looks for a confirmation.
	confirmPoll = 50 * time.Millisecond
	// rollbackLockWait is the least a rollback at the deadline waits for
	// the lock, whatever Options.LockWait says: another xdpc holds it for
	// moments, and giving up would leave the unconfirmed policy in place.
	rollbackLockWait = time.Minute
)

// Pending is an apply that is rolled back unless confirmed by Deadline.
type Pending struct {
	Token    string     `json:"token"`
	Deadline time.Time  `json:"deadline"`
	PID      int        `json:"pid"`
	Previous []Previous `json:"previous"`

	// dir is the pending directory p was read from or written to.
	dir string
	// waiter, in the process that waits, holds an flock on the waiter
	// file for as long as it waits: the kernel drops it when the process
	// ends however it ends, so it tells a live waiter from a gone one
	// where a process id, reused since, cannot.
	waiter *os.File
}

// Previous is what one interface had before the pending apply.
type Previous struct {
	Netns     string `json:"netns"`
	Interface string `json:"interface"`
	// Artifact is the file (in the pending directory) holding the program
	// to restore; "" when the interface had none.
	Artifact string `json:"artifact,omitempty"`
	Mode     string `json:"mode,omitempty"`
	// Egress is how its egress program was attached (EgressTCX,
	// EgressClsact); "" when it had none.
	Egress string `json:"egress,omitempty"`
}

func (l layout) pendingFile() string { return filepath.Join(l.pendingDir(), "pending.json") }

// supersededDir is where Apply keeps a confirmation whose waiter is gone
// while it applies over it.
func (l layout) supersededDir() string { return l.pendingDir() + ".superseded" }

const waiterFile = "waiter"

// readPending returns the pending apply; nil when there is none.
func readPending(l layout) (*Pending, error) {
	p := &Pending{dir: l.pendingDir()}
	err := readJSON(l.pendingFile(), p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// PendingConfirmation returns the apply awaiting confirmation, nil when
// none does. It reads only and takes no lock.
func PendingConfirmation(opts Options) (*Pending, error) {
	return readPending(opts.layout())
}

// Waiting reports whether the process that applied p still waits for its
// confirmation; false means it is gone and nothing will roll p back.
// When that cannot be told, it says true: refusing an apply is safer than
// taking a live confirmation for a dead one.
func (p *Pending) Waiting() bool {
	f, err := os.Open(filepath.Join(p.dir, waiterFile))
	if errors.Is(err, os.ErrNotExist) {
		// Recorded without a waiter file: only the process id tells.
		return p.PID > 0 && unix.Kill(p.PID, 0) == nil
	}
	if err != nil {
		return true
	}
	defer f.Close() // releases the probe's lock, if it got one
	return unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil
}

// Interfaces names the interfaces p changed, "NETNS/IF" outside the host
// namespace.
func (p *Pending) Interfaces() []string {
	var names []string
	for _, prev := range p.Previous {
		if prev.Netns == hostNetns || prev.Netns == "" {
			names = append(names, prev.Interface)
		} else {
			names = append(names, prev.Netns+"/"+prev.Interface)
		}
	}
	return names
}

// goneError is ErrWaiterGone with what p is about.
func (p *Pending) goneError() error {
	when := "nothing will roll it back at " + p.Deadline.Format(time.RFC3339)
	if time.Now().After(p.Deadline) {
		when = "nothing rolled it back at " + p.Deadline.Format(time.RFC3339)
	}
	return fmt.Errorf("%w: its process %d ended, so %s; the policy it applied stays on %s",
		ErrWaiterGone, p.PID, when, strings.Join(p.Interfaces(), ", "))
}

// pendingError is ErrPending with until when and what to do; the
// operation refused (apply, detach) goes in front.
func (p *Pending) pendingError(op string) error {
	return fmt.Errorf("%s: %w until %s (process %d); run 'xdpc confirm' first to keep it, or wait for it to roll back",
		op, ErrPending, p.Deadline.Format(time.RFC3339), p.PID)
}

// beginConfirm records the interfaces' current programs before an apply,
// and takes the waiter lock that says this process waits.
func beginConfirm(l layout, bindings []artifact.InterfaceBinding, d time.Duration) (p *Pending, err error) {
	if err := os.RemoveAll(l.pendingDir()); err != nil {
		return nil, fmt.Errorf("remove stale confirmation: %w", err)
	}
	if err := os.MkdirAll(l.pendingDir(), 0o700); err != nil {
		return nil, fmt.Errorf("record confirmation: %w", err)
	}
	token := make([]byte, 8)
	rand.Read(token)
	p = &Pending{Token: hex.EncodeToString(token), Deadline: time.Now().Add(d), PID: os.Getpid(), dir: l.pendingDir()}
	defer func() {
		if err != nil {
			p.discard()
			p.release()
		}
	}()
	if p.waiter, err = os.OpenFile(filepath.Join(p.dir, waiterFile), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("record confirmation: %w", err)
	}
	if err := unix.Flock(int(p.waiter.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, fmt.Errorf("lock %s: %w", p.waiter.Name(), err)
	}
	for i, b := range bindings {
		prev := Previous{Netns: l.netns, Interface: b.Name}
		if elf, err := os.ReadFile(l.artifactFile(b.Name)); err == nil {
			var rec Attachment
			if err := readJSON(l.attachmentFile(b.Name), &rec); err != nil {
				return nil, err
			}
			prev.Artifact = fmt.Sprintf("previous-%d.o", i)
			prev.Mode = rec.Mode
			if rec.Egress != nil {
				prev.Egress = rec.Egress.Mechanism
			}
			if err := writeFileAtomic(filepath.Join(p.dir, prev.Artifact), elf); err != nil {
				return nil, err
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("save previous program of %s: %w", b.Name, err)
		}
		p.Previous = append(p.Previous, prev)
	}
	// Written last: a confirmation is pending once this file exists.
	if err := writeJSON(l.pendingFile(), p); err != nil {
		return nil, err
	}
	return p, nil
}

// discard removes p's records: it is confirmed, rolled back or dropped.
func (p *Pending) discard() { os.RemoveAll(p.dir) }

// release ends the waiting of this process for p.
func (p *Pending) release() {
	if p.waiter != nil {
		p.waiter.Close()
		p.waiter = nil
	}
}

// setAside moves p, a confirmation nobody waits for any more, out of the
// way of an apply that replaces it. putBack returns it when that apply
// fails; drop removes it when the apply succeeded.
func (p *Pending) setAside(l layout) error {
	if err := os.RemoveAll(l.supersededDir()); err != nil {
		return fmt.Errorf("remove stale confirmation: %w", err)
	}
	if err := os.Rename(l.pendingDir(), l.supersededDir()); err != nil {
		return fmt.Errorf("set stale confirmation aside: %w", err)
	}
	p.dir = l.supersededDir()
	return nil
}

func (p *Pending) putBack(l layout) {
	if os.Rename(p.dir, l.pendingDir()) == nil {
		p.dir = l.pendingDir()
	}
}

// supersededNote tells the operator that an apply dropped p.
func (p *Pending) supersededNote(bindings []artifact.InterfaceBinding, netns string) string {
	note := fmt.Sprintf("warning: dropped the confirmation of an earlier apply --confirm to %s: its process %d is gone, and nothing had rolled it back",
		strings.Join(p.Interfaces(), ", "), p.PID)
	var untouched []string
	for i, prev := range p.Previous {
		named := slices.ContainsFunc(bindings, func(b artifact.InterfaceBinding) bool { return b.Name == prev.Interface })
		if prev.Netns != netns || !named {
			untouched = append(untouched, p.Interfaces()[i])
		}
	}
	if len(untouched) > 0 {
		note += fmt.Sprintf("; %s keep the policy it applied", strings.Join(untouched, ", "))
	}
	return note
}

// Confirm keeps the apply that waits for confirmation. It returns
// ErrNothingPending when none does, and ErrWaiterGone, changing nothing,
// when the process that waits for it is gone: Keep or RollBack decide
// then.
func Confirm(opts Options) (*Pending, error) { return keep(opts, false) }

// Keep keeps the policy of the apply awaiting confirmation also when its
// process is gone, and removes what was saved to roll it back.
func Keep(opts Options) (*Pending, error) { return keep(opts, true) }

func keep(opts Options, evenGone bool) (*Pending, error) {
	l := opts.layout()
	lock, err := acquireLock(l)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	p, err := readPending(l)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, ErrNothingPending
	}
	if !evenGone && !p.Waiting() {
		return nil, p.goneError()
	}
	p.discard()
	return p, nil
}

// RollBack gives every interface the apply awaiting confirmation changed
// its previous program back now (or detaches it when it had none), when
// the process that waited for it is gone. While that process waits it
// returns ErrPending: interrupting the process rolls back.
func RollBack(opts Options) (*Pending, error) {
	l := opts.layout()
	lock, err := acquireLock(l)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	p, err := readPending(l)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, ErrNothingPending
	}
	if p.Waiting() {
		return nil, fmt.Errorf("%w (until %s): its process %d rolls it back then, or at once when interrupted (kill -INT %d)",
			ErrPending, p.Deadline.Format(time.RFC3339), p.PID, p.PID)
	}
	return p, restore(l, p)
}

// WaitConfirm waits until p is confirmed, its deadline passes or abort is
// closed. Unconfirmed, it restores every interface's previous program (or
// detaches it when there was none) and returns false. When a restore
// fails, the previous programs stay saved and RollBack can try again once
// WaitConfirm has returned.
func WaitConfirm(opts Options, p *Pending, abort <-chan struct{}) (bool, error) {
	defer p.release()
	l := opts.layout()
	tick := time.NewTicker(confirmPoll)
	defer tick.Stop()
	timer := time.NewTimer(time.Until(p.Deadline))
	defer timer.Stop()
	for {
		cur, err := readPending(l)
		if err != nil {
			return false, err
		}
		if cur == nil || cur.Token != p.Token {
			return true, nil
		}
		select {
		case <-tick.C:
			continue
		case <-timer.C:
		case <-abort:
		}
		return rollback(l, p)
	}
}

// rollback restores what p recorded, unless it was confirmed meanwhile.
func rollback(l layout, p *Pending) (bool, error) {
	l.lockWait = max(l.lockWait, rollbackLockWait)
	lock, err := acquireLock(l)
	if err != nil {
		return false, err
	}
	defer lock.release()
	cur, err := readPending(l)
	if err != nil {
		return false, err
	}
	if cur == nil || cur.Token != p.Token {
		return true, nil
	}
	return false, restore(l, cur)
}

// restore gives the interfaces of p their previous programs back, under
// the lock, and removes p; when an interface fails, p stays for another
// try.
func restore(l layout, p *Pending) error {
	var errs []error
	for _, prev := range p.Previous {
		pl := l.withNetns(prev.Netns)
		if prev.Artifact == "" {
			if err := detachOne(pl, prev.Interface); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		elf, err := os.ReadFile(filepath.Join(p.dir, prev.Artifact))
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", prev.Interface, err))
			continue
		}
		spec, m, err := artifact.Read(elf)
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", prev.Interface, err))
			continue
		}
		b := []artifact.InterfaceBinding{{Name: prev.Interface, Mode: prev.Mode}}
		if i := slices.IndexFunc(m.Interfaces, func(ib artifact.InterfaceBinding) bool { return ib.Name == prev.Interface }); i >= 0 {
			b[0].NAT, b[0].NATBlock = m.Interfaces[i].NAT, m.Interfaces[i].NATBlock
		}
		if _, err := apply(pl, elf, spec, m, b, prev.Egress, nil); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", prev.Interface, err))
		}
	}
	// A rollback to no NAT gives the host its sysctls back.
	seen := map[string]bool{}
	for _, prev := range p.Previous {
		if !seen[prev.Netns] {
			seen[prev.Netns] = true
			if _, err := tidyNAT(l.withNetns(prev.Netns)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := gcMaps(l); err != nil {
		errs = append(errs, err)
	}
	if err := gcTables(l); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	p.discard()
	return nil
}
