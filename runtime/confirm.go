package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
)

// ErrNothingPending is returned by Confirm when no apply awaits confirmation.
var ErrNothingPending = errors.New("no apply is waiting for confirmation")

// ErrPending is returned by Apply with Confirm while another apply still
// awaits confirmation.
var ErrPending = errors.New("an earlier apply is still waiting for confirmation")

// confirmPoll is how often WaitConfirm looks for a confirmation.
const confirmPoll = 50 * time.Millisecond

// Pending is an apply that is rolled back unless confirmed by Deadline.
type Pending struct {
	Token    string     `json:"token"`
	Deadline time.Time  `json:"deadline"`
	PID      int        `json:"pid"`
	Previous []Previous `json:"previous"`
}

// Previous is what one interface had before the pending apply.
type Previous struct {
	Netns     string `json:"netns"`
	Interface string `json:"interface"`
	// Artifact is the file (in the pending directory) holding the program
	// to restore; "" when the interface had none.
	Artifact string `json:"artifact,omitempty"`
	Mode     string `json:"mode,omitempty"`
}

func (l layout) pendingFile() string { return filepath.Join(l.pendingDir(), "pending.json") }

// readPending returns the pending apply; nil when there is none.
func readPending(l layout) (*Pending, error) {
	var p Pending
	err := readJSON(l.pendingFile(), &p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// alive reports whether the process waiting for p still runs.
func (p *Pending) alive() bool {
	return p.PID > 0 && unix.Kill(p.PID, 0) == nil
}

// beginConfirm records the interfaces' current programs before an apply.
func beginConfirm(l layout, bindings []artifact.InterfaceBinding, d time.Duration) (*Pending, error) {
	old, err := readPending(l)
	if err != nil {
		return nil, err
	}
	if old != nil && old.alive() {
		return nil, fmt.Errorf("%w (until %s); run 'xdpc confirm' or wait", ErrPending, old.Deadline.Format(time.RFC3339))
	}
	if err := os.RemoveAll(l.pendingDir()); err != nil {
		return nil, fmt.Errorf("remove stale confirmation: %w", err)
	}
	token := make([]byte, 8)
	rand.Read(token)
	p := &Pending{Token: hex.EncodeToString(token), Deadline: time.Now().Add(d), PID: os.Getpid()}
	for i, b := range bindings {
		prev := Previous{Netns: l.netns, Interface: b.Name}
		if elf, err := os.ReadFile(l.artifactFile(b.Name)); err == nil {
			var rec Attachment
			if err := readJSON(l.attachmentFile(b.Name), &rec); err != nil {
				return nil, err
			}
			prev.Artifact = fmt.Sprintf("previous-%d.o", i)
			prev.Mode = rec.Mode
			if err := writeFileAtomic(filepath.Join(l.pendingDir(), prev.Artifact), elf); err != nil {
				return nil, err
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("save previous program of %s: %w", b.Name, err)
		}
		p.Previous = append(p.Previous, prev)
	}
	if err := writeJSON(l.pendingFile(), p); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pending) discard(l layout) { os.RemoveAll(l.pendingDir()) }

// Confirm keeps the apply that waits for confirmation. It returns
// ErrNothingPending when none does.
func Confirm(opts Options) (*Pending, error) {
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
	p.discard(l)
	return p, nil
}

// WaitConfirm waits until p is confirmed, its deadline passes or abort is
// closed. Unconfirmed, it restores every interface's previous program (or
// detaches it when there was none) and returns false.
func WaitConfirm(opts Options, p *Pending, abort <-chan struct{}) (bool, error) {
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
	var errs []error
	for _, prev := range p.Previous {
		pl := l.withNetns(prev.Netns)
		if prev.Artifact == "" {
			if err := detachOne(pl, prev.Interface); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		elf, err := os.ReadFile(filepath.Join(l.pendingDir(), prev.Artifact))
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
		if _, err := apply(pl, elf, spec, m, b); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", prev.Interface, err))
		}
	}
	if err := gcMaps(l); err != nil {
		errs = append(errs, err)
	}
	p.discard(l)
	return false, errors.Join(errs...)
}
