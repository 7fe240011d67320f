package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/runtime"
)

// TestRollbackWaitsForLock holds the lock, as a 'set add' or a 'confirm'
// running just then would, when the deadline passes: the rollback waits
// for it even with LockWait 0, instead of leaving the unconfirmed policy
// in place.
func TestRollbackWaitsForLock(t *testing.T) {
	e := newEnv(t)
	e.opts.LockWait = 0
	e.apply(t, compileSrc(t, policySrc("one", "native", []string{"dut0"}, "", webRule)))
	rep, err := runtime.Apply(compileSrc(t, policySrc("two", "native", []string{"dut0"}, "", dnsRule)),
		runtime.ApplyOptions{Options: e.opts, Confirm: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(e.opts.StateDir, "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(time.Second, func() { unix.Flock(int(f.Fd()), unix.LOCK_UN) })
	confirmed, err := runtime.WaitConfirm(e.opts, rep.Pending, nil)
	if confirmed || err != nil {
		t.Fatalf("WaitConfirm = %v, %v; want a rollback", confirmed, err)
	}
	if st := e.status(t); len(st) != 1 || st[0].Policy != "one" {
		t.Errorf("status after the rollback = %+v, want one", st)
	}
}

// TestRollbackFailureKeepsPending rolls back when one interface cannot be
// given its program back (it was removed meanwhile): the others are
// restored, the previous programs stay saved, and RollBack can try again
// or Keep settle it.
func TestRollbackFailureKeepsPending(t *testing.T) {
	e := newEnv(t)
	e.ns.Veth(t, "other0", "other1")
	both := []string{"dut0", "other1"}
	e.apply(t, compileSrc(t, policySrc("one", "native", both, "", webRule)))
	rep, err := runtime.Apply(compileSrc(t, policySrc("two", "native", both, "", dnsRule)),
		runtime.ApplyOptions{Options: e.opts, Confirm: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.ns.Delete(t, "other1")
	confirmed, err := runtime.WaitConfirm(e.opts, rep.Pending, nil)
	if confirmed || err == nil || !strings.Contains(err.Error(), "other1") {
		t.Fatalf("WaitConfirm = %v, %v; want a rollback failing on other1", confirmed, err)
	}
	for _, a := range e.status(t) {
		if a.Interface == "dut0" && a.Policy != "one" {
			t.Errorf("dut0 runs %s after the rollback, want one", a.Policy)
		}
	}
	p, err := runtime.PendingConfirmation(e.opts)
	if err != nil || p == nil {
		t.Fatalf("pending confirmation after a failed rollback = %v, %v; want it kept", p, err)
	}
	if p.Waiting() {
		t.Error("the confirmation is still waited for after WaitConfirm returned")
	}
	if _, err := runtime.RollBack(e.opts); err == nil || !strings.Contains(err.Error(), "other1") {
		t.Errorf("second rollback: error %v, want one about other1", err)
	}
	if _, err := runtime.Keep(e.opts); err != nil {
		t.Fatalf("keep: %v", err)
	}
	if p, err := runtime.PendingConfirmation(e.opts); err != nil || p != nil {
		t.Errorf("pending confirmation after keep = %+v, %v; want none", p, err)
	}
}
