package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/runtime"
)

const webRule = `
  rule "web" {
    proto    = "udp"
    dst_port = 80
    action   = "pass"
  }
`

const dnsRule = `
  rule "dns" {
    proto    = "udp"
    dst_port = 53
    action   = "pass"
  }
`

// TestApplyAttachesAndReplaces applies a policy, sends traffic, applies a
// changed version and checks that the link was updated in place (same
// link, new program) and that counters of rules that still exist carried
// over by name.
func TestApplyAttachesAndReplaces(t *testing.T) {
	e := newEnv(t)
	v1 := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", webRule+dnsRule))
	rep := e.apply(t, v1)
	if len(rep.Attachments) != 1 || rep.Attachments[0].Mode != runtime.ModeNative {
		t.Fatalf("attachments = %+v, want dut0 in native mode", rep.Attachments)
	}
	st := e.status(t)
	if len(st) != 1 || st[0].Interface != "dut0" || st[0].Policy != "edge" || st[0].Gone || st[0].ProgramID == 0 || st[0].Netns != e.ns.Name {
		t.Fatalf("status = %+v", st)
	}
	first := st[0]

	s := e.sender(t)
	web := udpFrame(t, srcMAC, "192.0.2.1", "192.0.2.2", 80)
	dns := udpFrame(t, srcMAC, "192.0.2.1", "192.0.2.2", 53)
	other := udpFrame(t, srcMAC, "192.0.2.1", "192.0.2.2", 9)
	s.sendN(t, web, 5)
	s.sendN(t, dns, 3)
	s.sendN(t, other, 2)
	want := map[string]uint64{"web": 5, "dns": 3, "default": 2}
	if diff := cmp.Diff(want, e.counts(t, "edge", want)); diff != "" {
		t.Fatalf("counters after v1 (-want +got):\n%s", diff)
	}

	// v2 drops "dns", adds "ntp" before "web": slots move.
	v2 := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", `
  rule "ntp" {
    proto    = "udp"
    dst_port = 123
    action   = "pass"
  }
`+webRule))
	e.apply(t, v2)
	st = e.status(t)
	if len(st) != 1 {
		t.Fatalf("status = %+v", st)
	}
	if st[0].LinkID != first.LinkID {
		t.Errorf("link id %d after replace, want the same link %d", st[0].LinkID, first.LinkID)
	}
	if st[0].ProgramID == first.ProgramID {
		t.Errorf("program id unchanged (%d) after replace", st[0].ProgramID)
	}
	if !st[0].Since.Equal(first.Since) || st[0].Applied.Before(first.Applied) {
		t.Errorf("since %v applied %v after replace; want since kept at %v", st[0].Since, st[0].Applied, first.Since)
	}
	s.sendN(t, web, 1)
	want = map[string]uint64{"web": 6, "default": 2}
	if diff := cmp.Diff(want, e.counts(t, "edge", want)); diff != "" {
		t.Errorf("counters after v2 (-want +got):\n%s", diff)
	}
}

// TestApplyKeepsCountersOfMovedRules re-applies the same policy with its
// rules on other lines and read from another file: the rules count the
// same things, so the pinned counter map is the one the first apply made
// (not a copy) and the counts go on.
func TestApplyKeepsCountersOfMovedRules(t *testing.T) {
	e := newEnv(t)
	src := policySrc("edge", "native", []string{"dut0"}, "", webRule+dnsRule)
	e.apply(t, compileFile(t, "edge.hcl", src))
	first := e.counterMapID(t, "edge")
	s := e.sender(t)
	web := udpFrame(t, srcMAC, "192.0.2.1", "192.0.2.2", 80)
	s.sendN(t, web, 3)
	want := map[string]uint64{"web": 3}
	if diff := cmp.Diff(want, e.counts(t, "edge", want)); diff != "" {
		t.Fatalf("counters (-want +got):\n%s", diff)
	}

	moved := "# moved down\n\n\n" + strings.ReplaceAll(src, "\n  rule", "\n\n  rule")
	e.apply(t, compileFile(t, "/etc/xdpc/other.hcl", moved))
	if got := e.counterMapID(t, "edge"); got != first {
		t.Errorf("counter map %d after re-applying moved rules, want the kept map %d", got, first)
	}
	s.sendN(t, web, 2)
	want = map[string]uint64{"web": 5}
	if diff := cmp.Diff(want, e.counts(t, "edge", want)); diff != "" {
		t.Errorf("counters after re-apply (-want +got):\n%s", diff)
	}

	// Renaming a rule is a change of what a slot counts: a new map.
	renamed := strings.ReplaceAll(src, `rule "web"`, `rule "http"`)
	e.apply(t, compileFile(t, "edge.hcl", renamed))
	if got := e.counterMapID(t, "edge"); got == first {
		t.Errorf("counter map %d kept after renaming a rule", got)
	}
}

// counterMapID returns the id of the policy's pinned counter map.
func (e *env) counterMapID(t *testing.T, policyName string) ebpf.MapID {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(e.opts.PinRoot, "maps", policyName, "counters"), nil)
	if err != nil {
		t.Fatalf("open pinned counters: %v", err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("the kernel gives the counter map no id")
	}
	return id
}

// TestApplyModes checks auto's fallback to generic with a warning on an
// interface without native XDP, and that an explicit mode never falls back.
func TestApplyModes(t *testing.T) {
	e := newEnv(t)
	// Loopback has no native XDP.
	native := compileSrc(t, policySrc("edge", "native", []string{"lo"}, "", webRule))
	_, err := runtime.Apply(native, runtime.ApplyOptions{Options: e.opts})
	if err == nil || !strings.Contains(err.Error(), "native mode") {
		t.Fatalf("native apply on lo: error %v, want one naming native mode", err)
	}
	if st := e.status(t); len(st) != 0 {
		t.Fatalf("status after failed native apply = %+v, want nothing", st)
	}

	auto := compileSrc(t, policySrc("edge", "auto", []string{"lo"}, "", webRule))
	rep := e.apply(t, auto)
	if len(rep.Attachments) != 1 || rep.Attachments[0].Mode != runtime.ModeGeneric {
		t.Fatalf("attachments = %+v, want generic", rep.Attachments)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "generic mode") {
		t.Errorf("notes = %q, want a warning about generic mode", rep.Notes)
	}

	generic := compileSrc(t, policySrc("gen", "generic", []string{"dut0"}, "", webRule))
	rep = e.apply(t, generic)
	if len(rep.Attachments) != 1 || rep.Attachments[0].Mode != runtime.ModeGeneric || len(rep.Notes) != 0 {
		t.Fatalf("generic apply = %+v", rep)
	}
}

// TestApplyMountsBPFFS gives Apply a pin root on a file system that is not
// a bpffs: it mounts one there and pins on it.
func TestApplyMountsBPFFS(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(t.TempDir(), "pins")
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	e.opts.PinRoot = dir
	e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", webRule)))
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		t.Fatalf("pin root %s is not a bpffs after apply (statfs: %v)", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "links", e.ns.Name, "dut0", "link")); err != nil {
		t.Errorf("no pinned link: %v", err)
	}
	if _, err := runtime.Detach(e.opts, ""); err != nil {
		t.Fatal(err)
	}
}
