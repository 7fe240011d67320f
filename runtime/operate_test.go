package runtime_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/runtime"
)

// TestConfirm applies with a confirmation deadline and checks both ways:
// confirmed in time, the new policy stays; not confirmed, the previous
// policy (or nothing) is back.
func TestConfirm(t *testing.T) {
	one := func(t *testing.T) []byte {
		return compileSrc(t, policySrc("one", "native", []string{"dut0"}, "", webRule))
	}
	two := func(t *testing.T) []byte {
		return compileSrc(t, policySrc("two", "native", []string{"dut0"}, "", dnsRule))
	}
	tests := []struct {
		name       string
		before     bool // apply "one" first
		confirm    bool
		wantPolicy string // "" for nothing attached
	}{
		{"confirmed", true, true, "two"},
		{"not confirmed", true, false, "one"},
		{"not confirmed, nothing before", false, false, ""},
		{"confirmed, nothing before", false, true, "two"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.before {
				e.apply(t, one(t))
			}
			d := 300 * time.Millisecond
			if tt.confirm {
				d = 10 * time.Second
			}
			rep, err := runtime.Apply(two(t), runtime.ApplyOptions{Options: e.opts, Confirm: d})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Pending == nil {
				t.Fatal("apply with Confirm returned no pending confirmation")
			}
			if st := e.status(t); len(st) != 1 || st[0].Policy != "two" {
				t.Fatalf("status while pending = %+v, want two", st)
			}
			// A second confirmed apply must wait for this one.
			if _, err := runtime.Apply(one(t), runtime.ApplyOptions{Options: e.opts, Confirm: d}); !errors.Is(err, runtime.ErrPending) {
				t.Errorf("second apply with confirm: error %v, want ErrPending", err)
			}
			if _, err := runtime.Apply(one(t), runtime.ApplyOptions{Options: e.opts}); !errors.Is(err, runtime.ErrPending) {
				t.Errorf("apply while a confirmation is pending: error %v, want ErrPending", err)
			}
			// So must a detach: the rollback would attach "one" again.
			if done, err := runtime.Detach(e.opts, ""); !errors.Is(err, runtime.ErrPending) || len(done) != 0 {
				t.Errorf("detach while a confirmation is pending = %+v, %v; want nothing and ErrPending", done, err)
			}
			// And a rollback from elsewhere: this process waits, and rolls back itself.
			if _, err := runtime.RollBack(e.opts); !errors.Is(err, runtime.ErrPending) {
				t.Errorf("roll back while the apply waits: error %v, want ErrPending", err)
			}
			if st := e.status(t); len(st) != 1 || st[0].Policy != "two" {
				t.Fatalf("status after refused detach and rollback = %+v, want two", st)
			}
			done := make(chan bool, 1)
			go func() {
				ok, err := runtime.WaitConfirm(e.opts, rep.Pending, nil)
				if err != nil {
					t.Errorf("wait: %v", err)
				}
				done <- ok
			}()
			if tt.confirm {
				if _, err := runtime.Confirm(e.opts); err != nil {
					t.Fatalf("confirm: %v", err)
				}
			}
			var confirmed bool
			select {
			case confirmed = <-done:
			case <-time.After(15 * time.Second):
				t.Fatal("WaitConfirm did not return")
			}
			if confirmed != tt.confirm {
				t.Errorf("WaitConfirm = %v, want %v", confirmed, tt.confirm)
			}
			st := e.status(t)
			var got string
			if len(st) == 1 {
				got = st[0].Policy
			}
			if len(st) > 1 || got != tt.wantPolicy {
				t.Errorf("status after = %+v, want policy %q", st, tt.wantPolicy)
			}
			if _, err := runtime.Confirm(e.opts); !errors.Is(err, runtime.ErrNothingPending) {
				t.Errorf("confirm with nothing pending: error %v, want ErrNothingPending", err)
			}
		})
	}
}

// TestLock holds the lock as another apply would and checks that an apply
// fails clearly at once without waiting, and succeeds when it may wait
// long enough.
func TestLock(t *testing.T) {
	e := newEnv(t)
	elf := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", webRule))
	if err := os.MkdirAll(e.opts.StateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(e.opts.StateDir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	_, err = runtime.Apply(elf, runtime.ApplyOptions{Options: e.opts})
	if !errors.Is(err, runtime.ErrLocked) {
		t.Fatalf("apply under a held lock: error %v, want ErrLocked", err)
	}
	if st := e.status(t); len(st) != 0 {
		t.Fatalf("locked apply attached %+v", st)
	}
	time.AfterFunc(200*time.Millisecond, func() { unix.Flock(int(f.Fd()), unix.LOCK_UN) })
	waiting := e.opts
	waiting.LockWait = 10 * time.Second
	if _, err := runtime.Apply(elf, runtime.ApplyOptions{Options: waiting}); err != nil {
		t.Fatalf("apply waiting for the lock: %v", err)
	}

	// Two applies at once: one waits for the other, both succeed, and the
	// interface ends with exactly one of them.
	other := compileSrc(t, policySrc("other", "native", []string{"dut0"}, "", dnsRule))
	errs := make(chan error, 2)
	for _, a := range [][]byte{elf, other} {
		go func() {
			_, err := runtime.Apply(a, runtime.ApplyOptions{Options: waiting})
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent apply: %v", err)
		}
	}
	if st := e.status(t); len(st) != 1 || (st[0].Policy != "edge" && st[0].Policy != "other") {
		t.Errorf("status after concurrent applies = %+v", st)
	}
}

// TestDetach detaches one interface, twice, then checks an interface that
// vanished is shown as gone and detaches cleanly.
func TestDetach(t *testing.T) {
	e := newEnv(t)
	e.ns.Veth(t, "other0", "other1")
	e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0", "other1"}, "", webRule)))
	// A version that no longer names other1 leaves it running the old one.
	rep := e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", webRule+dnsRule)))
	if want := "warning: other1 still runs the previous version of policy edge"; len(rep.Notes) != 1 || !strings.HasPrefix(rep.Notes[0], want) {
		t.Errorf("notes = %q, want one starting %q", rep.Notes, want)
	}

	done, err := runtime.Detach(e.opts, "dut0")
	if err != nil || len(done) != 1 || done[0].Interface != "dut0" {
		t.Fatalf("detach dut0 = %+v, %v", done, err)
	}
	done, err = runtime.Detach(e.opts, "dut0")
	if err != nil || len(done) != 0 {
		t.Fatalf("second detach dut0 = %+v, %v; want nothing and no error", done, err)
	}
	if _, err := os.Stat(filepath.Join(e.opts.PinRoot, "links", e.ns.Name, "dut0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pins of dut0 remain: %v", err)
	}
	// Traffic to dut0 is no longer counted.
	s := e.sender(t)
	s.sendN(t, udpFrame(t, srcMAC, "192.0.2.1", "192.0.2.2", 80), 3)
	time.Sleep(50 * time.Millisecond)
	if got := e.counts(t, "edge", nil); len(got) != 0 {
		t.Errorf("detached dut0 still counts: %v", got)
	}

	// A renamed interface keeps its program; status says what it is called now.
	l, err := e.ns.Handle.LinkByName("other1")
	if err != nil {
		t.Fatal(err)
	}
	// Kernels before 6.2 refuse to rename an interface that is up, so an
	// operator takes it down first, as this does.
	if err := e.ns.Handle.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	if err := e.ns.Handle.LinkSetName(l, "renamed1"); err != nil {
		t.Fatalf("rename other1: %v", err)
	}
	if err := e.ns.Handle.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	st := e.status(t)
	if len(st) != 1 || st[0].Interface != "other1" || st[0].Gone || st[0].RenamedTo != "renamed1" {
		t.Fatalf("status after renaming other1 = %+v, want it renamed to renamed1", st)
	}

	e.ns.Delete(t, "other0")
	st = e.status(t)
	if len(st) != 1 || st[0].Interface != "other1" || !st[0].Gone {
		t.Fatalf("status after removing other1 = %+v, want it gone", st)
	}
	if _, err := runtime.Detach(e.opts, ""); err != nil {
		t.Fatal(err)
	}
	if st := e.status(t); len(st) != 0 {
		t.Errorf("status after detaching all = %+v", st)
	}
	for _, dir := range []string{"maps", "links"} {
		if entries, _ := os.ReadDir(filepath.Join(e.opts.PinRoot, dir)); len(entries) != 0 {
			t.Errorf("%s remain in the pin root after detaching all: %v", dir, entries)
		}
	}
}
