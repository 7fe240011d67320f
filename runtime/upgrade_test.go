package runtime_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/runtime"
)

// oldState puts what the previous xdpc left on a host into e's pin root
// and state directory: the kept manifest of policy edge (format 1,
// testdata/format1/NAME) and pinned maps it describes, made as that xdpc
// made them and holding what it had put there: the declared elements,
// elements added at run time (192.0.2.1 and 2001:db8:1::1 in set allow,
// port 9999 in set ports), and counts on every slot.
func oldState(t *testing.T, e *env, name string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "format1", name))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(data, &m); err != nil || m.Format != 1 {
		t.Fatalf("%s: format %d, %v; want a format-1 manifest", name, m.Format, err)
	}
	dir := filepath.Join(e.opts.StateDir, "maps", "edge")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	pins := filepath.Join(e.opts.PinRoot, "maps", "edge")
	if err := os.MkdirAll(pins, 0o700); err != nil {
		t.Fatal(err)
	}
	pin := func(pin string, k artifact.MapKind, max uint32, keys [][]byte, values []any) {
		t.Helper()
		l := k.Layout()
		mp, err := ebpf.NewMap(&ebpf.MapSpec{Type: l.Type, KeySize: l.KeySize, ValueSize: l.ValueSize, MaxEntries: max, Flags: l.Flags})
		if err != nil {
			t.Fatal(err)
		}
		defer mp.Close()
		for i, key := range keys {
			if err := mp.Put(key, values[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := mp.Pin(filepath.Join(pins, pin)); err != nil {
			t.Fatal(err)
		}
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	var slots [][]byte
	var counts []any
	for slot := range 6 {
		per := make([]artifact.Counter, cpus)
		per[0] = artifact.Counter{Packets: uint64(10 * (slot + 1)), Bytes: uint64(600 * (slot + 1))}
		slots = append(slots, []byte{byte(slot), 0, 0, 0})
		counts = append(counts, per)
	}
	pin("counters", artifact.MapCounters, 6, slots, counts)
	member := func(keys [][]byte) []any {
		v := make([]any, len(keys))
		for i := range v {
			v[i] = artifact.SetMember
		}
		return v
	}
	lpm := func(ps ...string) [][]byte {
		var keys [][]byte
		for _, p := range ps {
			keys = append(keys, artifact.LPMKey(netip.MustParsePrefix(p)))
		}
		return keys
	}
	v4, v6 := lpm("10.9.0.0/16", "192.0.2.1/32"), lpm("2001:db8:9::/48", "2001:db8:1::1/128")
	pin("set_allow_v4", artifact.MapCIDRv4, 16, v4, member(v4))
	pin("set_allow_v6", artifact.MapCIDRv6, 16, v6, member(v6))
	var ports [][]byte
	for _, p := range []uint16{22, 8000, 8001, 8002, 8003, 9999} {
		ports = append(ports, artifact.PortKey(p))
	}
	pin("set_ports", artifact.MapPorts, 16, ports, member(ports))
}

// TestUpgradeFromFormat1 takes a host as the previous xdpc left it (a
// kept manifest of format 1, as the last xdpc of that format and an
// earlier one wrote it, and the pinned maps it describes): set list and
// add work on it, stats reads its counters, and applying the policy with
// this xdpc keeps the dynamic sets' run-time elements and the counters,
// reusing the pinned maps, and writes the manifest in the current format.
func TestUpgradeFromFormat1(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "format1", "edge.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	elf := compileFile(t, "edge.hcl", string(src))
	for _, name := range []string{"manifest.json", "manifest-early.json"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			oldState(t, e, name)
			allow := runtime.SetOptions{Options: e.opts, Set: "allow"}
			list := func(so runtime.SetOptions) []string {
				t.Helper()
				sc, err := runtime.SetList(so)
				if err != nil {
					t.Fatalf("list set %s: %v", so.Set, err)
				}
				return sc.Elements.Strings()
			}
			wantAllow := []string{"10.9.0.0/16", "192.0.2.1/32", "2001:db8:1::1/128", "2001:db8:9::/48"}
			if diff := cmp.Diff(wantAllow, list(allow)); diff != "" {
				t.Errorf("set list before the apply (-want +got):\n%s", diff)
			}
			ch, err := runtime.SetAdd(allow, []string{"198.51.100.1", "10.9.0.0/16"})
			if err != nil || ch.Changed != 1 {
				t.Errorf("set add before the apply: %+v, %v; want 1 of 2 added", ch, err)
			}
			wantAllow = []string{"10.9.0.0/16", "192.0.2.1/32", "198.51.100.1/32", "2001:db8:1::1/128", "2001:db8:9::/48"}
			wantCounts := []runtime.RuleStats{
				{Rule: "udp", Kind: artifact.SlotCount, Pos: "28:3", Packets: 10, Bytes: 600},
				{Rule: "allowed", Kind: artifact.SlotRule, Pos: "33:3", Packets: 20, Bytes: 1200},
				{Rule: "service", Kind: artifact.SlotRule, Pos: "38:3", Packets: 30, Bytes: 1800},
				{Rule: "echo", Kind: artifact.SlotRule, Pos: "44:3", Packets: 40, Bytes: 2400},
				{Rule: "default", Kind: artifact.SlotDefault, Packets: 50, Bytes: 3000},
				{Rule: "malformed", Kind: artifact.SlotMalformed, Packets: 60, Bytes: 3600},
			}
			ps, err := runtime.PolicyCounters(e.opts, "edge")
			if err != nil {
				t.Fatalf("counters before the apply: %v", err)
			}
			if diff := cmp.Diff(wantCounts, ps.Rules); diff != "" {
				t.Errorf("counters before the apply (-want +got):\n%s", diff)
			}

			rep := e.apply(t, elf)
			for _, n := range rep.Notes {
				if strings.Contains(n, "recreated") {
					t.Errorf("apply note %q: the old maps fit and should be reused", n)
				}
			}
			if diff := cmp.Diff(wantAllow, list(allow)); diff != "" {
				t.Errorf("set allow after the apply (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"22", "8000", "8001", "8002", "8003", "9999"}, list(runtime.SetOptions{Options: e.opts, Set: "ports"})); diff != "" {
				t.Errorf("set ports after the apply (-want +got):\n%s", diff)
			}
			ps, err = runtime.PolicyCounters(e.opts, "edge")
			if err != nil {
				t.Fatalf("counters after the apply: %v", err)
			}
			if diff := cmp.Diff(wantCounts, ps.Rules); diff != "" {
				t.Errorf("counters after the apply (-want +got):\n%s", diff)
			}
			var now struct {
				Format int `json:"format"`
			}
			data, err := os.ReadFile(filepath.Join(e.opts.StateDir, "maps", "edge", "manifest.json"))
			if err != nil || json.Unmarshal(data, &now) != nil || now.Format != artifact.ManifestFormat {
				t.Errorf("kept manifest after the apply: format %d, %v; want %d", now.Format, err, artifact.ManifestFormat)
			}
		})
	}
}

// TestKeptManifestOfNewerFormat gives the runtime a kept manifest of a
// format it does not know, as a newer xdpc would leave: set and stats
// say so, and an apply fails rather than start the policy's counters
// and sets afresh.
func TestKeptManifestOfNewerFormat(t *testing.T) {
	e := newEnv(t)
	elf := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, allowSet(16), allowRule))
	e.apply(t, elf)
	path := filepath.Join(e.opts.StateDir, "maps", "edge", "manifest.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	m["format"] = artifact.ManifestFormat + 1
	data, _ = json.Marshal(m)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.SetList(runtime.SetOptions{Options: e.opts, Set: "allow"}); !errors.Is(err, runtime.ErrManifestFormat) {
		t.Errorf("set list: error %v, want ErrManifestFormat", err)
	}
	if _, err := runtime.PolicyCounters(e.opts, "edge"); !errors.Is(err, runtime.ErrManifestFormat) {
		t.Errorf("counters: error %v, want ErrManifestFormat", err)
	}
	_, err = runtime.Apply(elf, runtime.ApplyOptions{Options: e.opts})
	want := fmt.Sprintf("format %d, this xdpc reads formats 1 to %d", artifact.ManifestFormat+1, artifact.ManifestFormat)
	if !errors.Is(err, runtime.ErrManifestFormat) || !strings.Contains(err.Error(), want) {
		t.Errorf("apply: error %v, want ErrManifestFormat saying %s", err, want)
	}
}
