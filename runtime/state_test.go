package runtime_test

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/runtime"
)

// allowSet is a dynamic cidr set of capacity max declaring 10.9.0.0/16
// and more.
func allowSet(max int, more ...string) string {
	els := `"10.9.0.0/16"`
	for _, m := range more {
		els += `, "` + m + `"`
	}
	return `
set "allow" {
  type         = "cidr"
  elements     = [` + els + `]
  dynamic      = true
  max_elements = ` + strconv.Itoa(max) + `
}

set "static" {
  type     = "port"
  elements = [7]
}
`
}

const allowRule = `
  rule "allowed" {
    src    = set.allow
    action = "pass"
  }

  rule "echo" {
    proto    = "udp"
    dst_port = set.static
    action   = "pass"
  }
`

// TestDynamicSets adds and removes elements of a dynamic set at run time
// and checks by traffic that the program sees the change at once; then
// re-applies and checks that the set's contents were kept, and that a
// change of the set's capacity recreates its map with a note and keeps
// the elements.
func TestDynamicSets(t *testing.T) {
	e := newEnv(t)
	e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0"}, allowSet(16), allowRule)))
	s := e.sender(t)
	from := udpFrame(t, srcMAC, "192.0.2.1", "192.0.2.2", 9)
	so := runtime.SetOptions{Options: e.opts, Set: "allow"}

	s.sendN(t, from, 1)
	want := map[string]uint64{"default": 1}
	if diff := cmp.Diff(want, e.counts(t, "edge", want)); diff != "" {
		t.Fatalf("before add (-want +got):\n%s", diff)
	}
	if _, err := runtime.SetAdd(so, []string{"192.0.2.1", "2001:db8::/32"}); err != nil {
		t.Fatal(err)
	}
	s.sendN(t, from, 2)
	want = map[string]uint64{"default": 1, "allowed": 2}
	if diff := cmp.Diff(want, e.counts(t, "edge", want)); diff != "" {
		t.Fatalf("after add (-want +got):\n%s", diff)
	}
	list := func() []string {
		t.Helper()
		got, err := runtime.SetList(so)
		if err != nil {
			t.Fatal(err)
		}
		return got.Elements.Strings()
	}
	wantList := []string{"10.9.0.0/16", "192.0.2.1/32", "2001:db8::/32"}
	if diff := cmp.Diff(wantList, list()); diff != "" {
		t.Errorf("set list (-want +got):\n%s", diff)
	}

	// Re-apply with another rule and another declared element: contents
	// and counters are kept, the new element added.
	e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0"}, allowSet(16, "203.0.113.0/24"), allowRule+webRule)))
	wantList = []string{"10.9.0.0/16", "192.0.2.1/32", "203.0.113.0/24", "2001:db8::/32"}
	if diff := cmp.Diff(wantList, list()); diff != "" {
		t.Errorf("set list after re-apply (-want +got):\n%s", diff)
	}
	s.sendN(t, from, 1)
	want = map[string]uint64{"default": 1, "allowed": 3}
	if diff := cmp.Diff(want, e.counts(t, "edge", want)); diff != "" {
		t.Fatalf("after re-apply (-want +got):\n%s", diff)
	}

	// A new capacity changes the map's layout.
	rep := e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0"}, allowSet(32), allowRule)))
	if len(rep.Notes) == 0 || !strings.Contains(strings.Join(rep.Notes, "\n"), "set allow of policy edge: map layout changed (capacity 16, now 32); recreated") {
		t.Errorf("notes = %q, want one saying set allow was recreated", rep.Notes)
	}
	if diff := cmp.Diff(wantList, list()); diff != "" {
		t.Errorf("set list after recreation (-want +got):\n%s", diff)
	}

	if _, err := runtime.SetDel(so, []string{"192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	s.sendN(t, from, 1)
	want = map[string]uint64{"default": 2, "allowed": 3}
	if diff := cmp.Diff(want, e.counts(t, "edge", want)); diff != "" {
		t.Fatalf("after del (-want +got):\n%s", diff)
	}

	_, err := runtime.SetAdd(runtime.SetOptions{Options: e.opts, Set: "static"}, []string{"8"})
	if !errors.Is(err, runtime.ErrNotDynamic) {
		t.Errorf("add to a static set: error %v, want ErrNotDynamic", err)
	}
	if _, err := runtime.SetAdd(runtime.SetOptions{Options: e.opts, Set: "nosuch"}, []string{"8"}); !errors.Is(err, runtime.ErrNoSuchSet) {
		t.Errorf("add to an unknown set: error %v, want ErrNoSuchSet", err)
	}
	if _, err := runtime.SetAdd(so, []string{"10.0.0.0/40"}); !errors.Is(err, runtime.ErrBadElement) {
		t.Errorf("add a bad prefix: error %v, want ErrBadElement", err)
	}
}

// TestDynamicSetFull fills a dynamic set to max_elements and checks that
// one more element is refused as ErrSetFull, naming the capacity.
func TestDynamicSetFull(t *testing.T) {
	e := newEnv(t)
	e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0"}, allowSet(2), allowRule)))
	so := runtime.SetOptions{Options: e.opts, Set: "allow"}
	if _, err := runtime.SetAdd(so, []string{"192.0.2.1"}); err != nil {
		t.Fatalf("add the second element: %v", err)
	}
	_, err := runtime.SetAdd(so, []string{"192.0.2.2"})
	if !errors.Is(err, runtime.ErrSetFull) || !strings.Contains(err.Error(), "max_elements 2") {
		t.Errorf("add a third element to a set of 2: error %v, want ErrSetFull naming max_elements 2", err)
	}
}

// TestDynamicSetIPv4Mapped adds an IPv4-mapped IPv6 address to a dynamic
// cidr set at run time: it goes into the set's IPv6 trie, so IPv6 frames
// from ::ffff:192.0.2.1 match and IPv4 frames from 192.0.2.1 do not. A
// prefix with host bits set is refused, as the language refuses it.
func TestDynamicSetIPv4Mapped(t *testing.T) {
	e := newEnv(t)
	e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0"}, allowSet(16), allowRule)))
	so := runtime.SetOptions{Options: e.opts, Set: "allow"}
	if _, err := runtime.SetAdd(so, []string{"::ffff:192.0.2.1"}); err != nil {
		t.Fatalf("add ::ffff:192.0.2.1: %v", err)
	}
	mapped := netip.MustParsePrefix("::ffff:192.0.2.1/128")
	for suffix, want := range map[string]bool{"_v6": true, "_v4": false} {
		m, err := ebpf.LoadPinnedMap(filepath.Join(e.opts.PinRoot, "maps", "edge", "set_allow"+suffix), nil)
		if err != nil {
			t.Fatal(err)
		}
		var v uint8
		key := artifact.LPMKey(mapped)
		if suffix == "_v4" {
			key = artifact.LPMKey(netip.MustParsePrefix("192.0.2.1/32"))
		}
		if got := m.Lookup(key, &v) == nil; got != want {
			t.Errorf("set_allow%s holds the address: %v, want %v", suffix, got, want)
		}
		m.Close()
	}
	s := e.sender(t)
	s.sendN(t, udpFrame(t, srcMAC, "::ffff:192.0.2.1", "2001:db8::2", 9), 2)
	s.sendN(t, udpFrame(t, srcMAC, "192.0.2.1", "192.0.2.2", 9), 1)
	want := map[string]uint64{"allowed": 2, "default": 1}
	if diff := cmp.Diff(want, e.counts(t, "edge", want)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	got, err := runtime.SetList(so)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"10.9.0.0/16", "::ffff:192.0.2.1/128"}, got.Elements.Strings()); diff != "" {
		t.Errorf("set list (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"10.9.1.2/16", "8080", "02:00:00:00:00:01"} {
		if _, err := runtime.SetAdd(so, []string{bad}); !errors.Is(err, runtime.ErrBadElement) {
			t.Errorf("add %q to a cidr set: error %v, want ErrBadElement", bad, err)
		}
	}
}
