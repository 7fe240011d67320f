package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned when another xdpc holds the lock longer than
// Options.LockWait.
var ErrLocked = errors.New("another xdpc apply, detach or confirm is running")

// lockPoll is how often a waiting operation retries the lock.
const lockPoll = 20 * time.Millisecond

// hostLock is the exclusive flock on STATEDIR/lock that serialises every
// change to attachments and kept maps.
type hostLock struct{ f *os.File }

// acquireLock takes the lock, waiting up to l.lockWait.
func acquireLock(l layout) (*hostLock, error) {
	path := l.lockFile()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	deadline := time.Now().Add(l.lockWait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &hostLock{f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			f.Close()
			if l.lockWait > 0 {
				return nil, fmt.Errorf("lock %s: %w (waited %s)", path, ErrLocked, l.lockWait)
			}
			return nil, fmt.Errorf("lock %s: %w", path, ErrLocked)
		}
		time.Sleep(lockPoll)
	}
}

func (h *hostLock) release() { h.f.Close() }
