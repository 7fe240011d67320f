package runtime_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/runtime"
)

// portSet is a dynamic port set of capacity 16 declaring port 22, and a
// rule that uses it.
const portSet = `
set "svc" {
  type         = "port"
  elements     = [22]
  dynamic      = true
  max_elements = 16
}
`

const portRule = `
  rule "service" {
    proto    = "udp"
    dst_port = set.svc
    action   = "pass"
  }
`

// setList lists a set, failing the test on error.
func setList(t *testing.T, so runtime.SetOptions) []string {
	t.Helper()
	got, err := runtime.SetList(so)
	if err != nil {
		t.Fatalf("list set %s: %v", so.Set, err)
	}
	if got.Static {
		t.Fatalf("set %s lists as static", so.Set)
	}
	return got.Elements.Strings()
}

// TestSetChangeCounts checks what SetAdd and SetDel say they changed: an
// element already in the set is not added, one not in it is not removed,
// a repeated element changes the set once, and a prefix inside one the
// set holds is an element of its own (an LPM lookup would find the
// shorter one).
func TestSetChangeCounts(t *testing.T) {
	e := newEnv(t)
	e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0"}, allowSet(16)+portSet, allowRule+portRule)))
	so := runtime.SetOptions{Options: e.opts, Set: "allow"}
	tests := []struct {
		name     string
		op       func(runtime.SetOptions, []string) (*runtime.SetChange, error)
		set      string
		elements []string
		changed  int
	}{
		{"add new and present", runtime.SetAdd, "allow", []string{"192.0.2.1", "10.9.0.0/16", "2001:db8::/32"}, 2},
		{"add a repeated element", runtime.SetAdd, "allow", []string{"198.51.100.7", "198.51.100.7"}, 1},
		{"add a prefix inside a held one", runtime.SetAdd, "allow", []string{"10.9.1.0/24", "192.0.2.1"}, 1},
		{"add all present", runtime.SetAdd, "allow", []string{"192.0.2.1", "2001:db8::/32"}, 0},
		{"del present and absent", runtime.SetDel, "allow", []string{"192.0.2.1", "203.0.113.1", "2001:db8::/32"}, 2},
		{"del all absent", runtime.SetDel, "allow", []string{"192.0.2.1", "10.9.0.0/24"}, 0},
		{"add a range over a held port", runtime.SetAdd, "svc", []string{"20-23", "22"}, 1},
		{"del a range over held ports", runtime.SetDel, "svc", []string{"22-30", "40"}, 1},
	}
	for _, tt := range tests {
		ch, err := tt.op(runtime.SetOptions{Options: e.opts, Set: tt.set}, tt.elements)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		want := runtime.SetChange{Policy: "edge", Set: tt.set, Given: len(tt.elements), Changed: tt.changed}
		if diff := cmp.Diff(want, *ch); diff != "" {
			t.Errorf("%s: change (-want +got):\n%s", tt.name, diff)
		}
	}
	want := []string{"10.9.0.0/16", "10.9.1.0/24", "198.51.100.7/32"}
	if diff := cmp.Diff(want, setList(t, so)); diff != "" {
		t.Errorf("set allow (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"20", "21"}, setList(t, runtime.SetOptions{Options: e.opts, Set: "svc"})); diff != "" {
		t.Errorf("set svc (-want +got):\n%s", diff)
	}
}

// TestSetChangeAllOrNothing gives SetAdd elements that cannot all go in:
// some not of the set's type, or more than max_elements holds (a port
// range needs one entry per port). Nothing changes, the error names every
// bad element or says how many would not fit. Elements the full set holds
// already are no overflow.
func TestSetChangeAllOrNothing(t *testing.T) {
	e := newEnv(t)
	e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0"}, allowSet(4)+portSet, allowRule+portRule)))
	allow := runtime.SetOptions{Options: e.opts, Set: "allow"}
	svc := runtime.SetOptions{Options: e.opts, Set: "svc"}
	tests := []struct {
		name     string
		so       runtime.SetOptions
		elements []string
		is       error
		want     []string // in the error
	}{
		{"bad elements", allow, []string{"192.0.2.1", "10.1.2.3/8", "2001:db8::/32", "fe80::1%eth0"}, runtime.ErrBadElement, []string{
			`set allow of policy edge: 2 of 4 elements refused, nothing changed:`,
			`  "10.1.2.3/8" has bits set after the prefix length. Did you mean 10.0.0.0/8?`,
			`  "fe80::1%eth0" is not an IPv4 or IPv6 address or CIDR prefix, which set "allow" needs.`,
		}},
		{"bad ports", svc, []string{"80", "70000", "90-80"}, runtime.ErrBadElement, []string{
			`70000 is out of range for set "svc", which takes 0 to 65535.`,
			`The range 90-80 of set "svc" ends before it starts. Did you mean "80-90"?`,
		}},
		{"too many prefixes", allow, []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "2001:db8::1"}, runtime.ErrSetFull, []string{
			"set allow of policy edge: the set is full: 2 of 5 new IPv4 prefixes would not fit (it holds 1 IPv4 prefix, max_elements 4 per address family); nothing changed",
		}},
		{"too many ports", svc, []string{"8000-8015"}, runtime.ErrSetFull, []string{
			"1 of 16 new ports would not fit (it holds 1 port, max_elements 16; a range takes one per port)",
		}},
	}
	for _, tt := range tests {
		before := setList(t, tt.so)
		_, err := runtime.SetAdd(tt.so, tt.elements)
		if !errors.Is(err, tt.is) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.is)
		}
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n%v\nwant it to say\n%s", tt.name, err, w)
			}
		}
		if diff := cmp.Diff(before, setList(t, tt.so)); diff != "" {
			t.Errorf("%s: the set changed (-before +after):\n%s", tt.name, diff)
		}
	}

	// Fill the IPv4 trie: adding what it holds is still no overflow.
	if _, err := runtime.SetAdd(allow, []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}); err != nil {
		t.Fatal(err)
	}
	ch, err := runtime.SetAdd(allow, []string{"192.0.2.1", "10.9.0.0/16", "2001:db8::1"})
	if err != nil || ch.Changed != 1 {
		t.Errorf("add held elements and one IPv6 address to a full IPv4 trie: %+v, %v; want 1 changed", ch, err)
	}
}

// TestSetChangeUndoneHalfWay makes the kernel refuse a key half way
// through a change (the set's IPv6 trie is frozen, so writes to it fail
// while the IPv4 trie takes them): what was changed before is changed
// back, for an add and for a del.
func TestSetChangeUndoneHalfWay(t *testing.T) {
	e := newEnv(t)
	e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0"}, allowSet(16), allowRule)))
	so := runtime.SetOptions{Options: e.opts, Set: "allow"}
	if _, err := runtime.SetAdd(so, []string{"192.0.2.9", "2001:db8:9::/48"}); err != nil {
		t.Fatal(err)
	}
	v6, err := ebpf.LoadPinnedMap(filepath.Join(e.opts.PinRoot, "maps", "edge", "set_allow_v6"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v6.Close()
	if err := v6.Freeze(); err != nil {
		t.Fatal(err)
	}
	want := []string{"10.9.0.0/16", "192.0.2.9/32", "2001:db8:9::/48"}

	_, err = runtime.SetAdd(so, []string{"192.0.2.1", "198.51.100.0/24", "2001:db8::/32"})
	if err == nil || !strings.Contains(err.Error(), "insert 2001:db8::/32") || !strings.Contains(err.Error(), "removed the 2 entries inserted before it, so nothing changed") {
		t.Errorf("add into a frozen trie: error %v, want it to name 2001:db8::/32 and say the 2 entries before were removed", err)
	}
	if diff := cmp.Diff(want, setList(t, so)); diff != "" {
		t.Errorf("after the refused add (-want +got):\n%s", diff)
	}

	_, err = runtime.SetDel(so, []string{"192.0.2.9", "2001:db8:9::/48"})
	if err == nil || !strings.Contains(err.Error(), "delete 2001:db8:9::/48") || !strings.Contains(err.Error(), "put back the 1 entry deleted before it, so nothing changed") {
		t.Errorf("del from a frozen trie: error %v, want it to name 2001:db8:9::/48 and say the entry before was put back", err)
	}
	if diff := cmp.Diff(want, setList(t, so)); diff != "" {
		t.Errorf("after the refused del (-want +got):\n%s", diff)
	}
}

// TestSetListStatic lists a static set: from the maps of the program that
// runs its policy (an entry deleted there behind xdpc's back is gone), and,
// once no interface runs that policy, from its manifest; both one element
// per map key. Changing it stays refused.
func TestSetListStatic(t *testing.T) {
	e := newEnv(t)
	sets := `
set "static" {
  type     = "port"
  elements = [7, "100-102"]
}
`
	rule := `
  rule "echo" {
    proto    = "udp"
    dst_port = set.static
    action   = "pass"
  }
`
	elf := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, sets, rule))
	e.apply(t, elf)
	_, m, err := artifact.Read(elf)
	if err != nil {
		t.Fatal(err)
	}
	so := runtime.SetOptions{Options: e.opts, Policy: "edge", Set: "static"}
	list := func() *runtime.SetContents {
		t.Helper()
		sc, err := runtime.SetList(so)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}

	// Delete port 101 from the loaded map the program looks up.
	prog, err := ebpf.LoadPinnedProgram(filepath.Join(e.opts.PinRoot, "links", e.opts.Netns, "dut0", "prog"), nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := prog.Info()
	prog.Close()
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := info.MapIDs()
	found := false
	for _, id := range ids {
		mp, err := ebpf.NewMapFromID(id)
		if err != nil {
			t.Fatal(err)
		}
		if mi, err := mp.Info(); err == nil && mi.Name == m.Sets[0].Map {
			if err := mp.Delete(artifact.PortKey(101)); err != nil {
				t.Fatal(err)
			}
			found = true
		}
		mp.Close()
	}
	if !found {
		t.Fatalf("the program uses no map %s", m.Sets[0].Map)
	}
	want := &runtime.SetContents{Policy: "edge", Set: "static", Type: artifact.SetPort, Static: true,
		Elements: ports(t, "7", "100", "102")}
	if diff := cmp.Diff(want, list()); diff != "" {
		t.Errorf("static set of the running policy (-want +got):\n%s", diff)
	}
	if _, err := runtime.SetAdd(so, []string{"8"}); !errors.Is(err, runtime.ErrNotDynamic) {
		t.Errorf("add to a static set: error %v, want ErrNotDynamic", err)
	}
	if _, err := runtime.SetDel(so, []string{"7"}); !errors.Is(err, runtime.ErrNotDynamic) {
		t.Errorf("del from a static set: error %v, want ErrNotDynamic", err)
	}

	// Another policy takes dut0: edge's set is what its manifest declares.
	e.apply(t, compileSrc(t, policySrc("other", "native", []string{"dut0"}, "", webRule)))
	want.Declared = true
	want.Elements = ports(t, "7", "100", "101", "102")
	if diff := cmp.Diff(want, list()); diff != "" {
		t.Errorf("static set of a policy no interface runs (-want +got):\n%s", diff)
	}
}

// ports returns the elements of a port set.
func ports(t *testing.T, texts ...string) artifact.Elements {
	t.Helper()
	e, err := artifact.ParseElements(artifact.SetPort, texts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestSetChangeTakesTheLock holds the lock every apply takes: SetAdd and
// SetDel wait for it as apply does, and fail with ErrLocked when it is
// held longer than LockWait.
func TestSetChangeTakesTheLock(t *testing.T) {
	e := newEnv(t)
	e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0"}, allowSet(16), allowRule)))
	f, err := os.OpenFile(filepath.Join(e.opts.StateDir, "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	so := runtime.SetOptions{Options: e.opts, Set: "allow"}
	for name, op := range map[string]func(runtime.SetOptions, []string) (*runtime.SetChange, error){"add": runtime.SetAdd, "del": runtime.SetDel} {
		if _, err := op(so, []string{"192.0.2.1"}); !errors.Is(err, runtime.ErrLocked) {
			t.Errorf("%s while the lock is held: error %v, want ErrLocked", name, err)
		}
	}
	released := make(chan time.Time, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		released <- time.Now()
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
	}()
	so.LockWait = 10 * time.Second
	if _, err := runtime.SetAdd(so, []string{"192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if at := <-released; time.Now().Before(at) {
		t.Error("SetAdd returned before the lock was released")
	}
	if diff := cmp.Diff([]string{"10.9.0.0/16", "192.0.2.1/32"}, setList(t, so)); diff != "" {
		t.Errorf("set after the wait (-want +got):\n%s", diff)
	}
}

// TestSetAddDuringApplies adds elements one by one while applies change
// the set's capacity back and forth, so that each apply recreates its
// map and copies the elements: none that SetAdd reported added is lost.
func TestSetAddDuringApplies(t *testing.T) {
	e := newEnv(t)
	small := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, allowSet(1024), allowRule))
	large := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, allowSet(2048), allowRule))
	e.apply(t, small)
	done := make(chan error, 1)
	go func() {
		for i := range 10 {
			elf := large
			if i%2 == 1 {
				elf = small
			}
			if _, err := runtime.Apply(elf, runtime.ApplyOptions{Options: runtime.Options{PinRoot: e.opts.PinRoot, StateDir: e.opts.StateDir, Netns: e.opts.Netns, LockWait: 10 * time.Second}}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	so := runtime.SetOptions{Options: e.opts, Set: "allow"}
	so.LockWait = 10 * time.Second
	want := []string{"10.9.0.0/16"}
	// Add until the applies are done, or 1000 elements (the set holds 1024).
	var applyErr error
	finished := false
	for i := 0; i < 1000 && !finished; i++ {
		select {
		case applyErr = <-done:
			finished = true
			continue
		default:
		}
		p := fmt.Sprintf("192.0.%d.%d/32", i/256, i%256)
		if _, err := runtime.SetAdd(so, []string{p}); err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	if !finished {
		applyErr = <-done
	}
	if applyErr != nil {
		t.Fatal(applyErr)
	}
	got := setList(t, so)
	lost := 0
	for _, p := range want {
		if !slices.Contains(got, p) {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of the %d elements added during the applies are lost", lost, len(want)-1)
	}
	t.Logf("%d elements added during 10 applies", len(want)-1)
}
