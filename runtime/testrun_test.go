package runtime_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/runtime"
)

func newProbe(t *testing.T, nets, ports, macs []string) *runtime.TestProgram {
	t.Helper()
	prog, err := runtime.NewTestProgram(elfBytes(t, probeArtifact(nets, ports, macs)))
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("load probe: %+v", ve)
		}
		t.Fatalf("load probe: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// TestRunFillsSets checks that every set element the manifest declares
// reaches its map in the kernel's encoding: each frame is looked up by the
// probe program and lands on the slot of the set that holds it.
func TestRunFillsSets(t *testing.T) {
	prog := newProbe(t,
		[]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "2001:db8:ffff::1/128"},
		[]string{"53", "8000-8099"},
		[]string{"aa:bb:cc:dd:ee:ff"})
	other := srcMAC
	tests := []struct {
		name  string
		frame []byte
		want  runtime.Outcome
	}{
		{"v4 in prefix", udpFrame(t, other, "10.200.0.1", "198.51.100.1", 9), runtime.Outcome{Action: xdpPass, Moved: []int{slotV4}}},
		{"v4 host", udpFrame(t, other, "192.0.2.7", "198.51.100.1", 9), runtime.Outcome{Action: xdpPass, Moved: []int{slotV4}}},
		{"v4 next to host", udpFrame(t, other, "192.0.2.8", "198.51.100.1", 9), runtime.Outcome{Action: xdpDrop, Moved: []int{slotDefault}}},
		{"v6 in prefix", udpFrame(t, other, "2001:db8:1::1", "2001:db9::1", 9), runtime.Outcome{Action: xdpPass, Moved: []int{slotV6}}},
		{"v6 outside", udpFrame(t, other, "2001:db9::1", "2001:db8::1", 9), runtime.Outcome{Action: xdpDrop, Moved: []int{slotDefault}}},
		{"port single", udpFrame(t, other, "198.51.100.1", "198.51.100.2", 53), runtime.Outcome{Action: xdpPass, Moved: []int{slotPort}}},
		{"port range first", udpFrame(t, other, "198.51.100.1", "198.51.100.2", 8000), runtime.Outcome{Action: xdpPass, Moved: []int{slotPort}}},
		{"port range last", udpFrame(t, other, "198.51.100.1", "198.51.100.2", 8099), runtime.Outcome{Action: xdpPass, Moved: []int{slotPort}}},
		{"port after range", udpFrame(t, other, "198.51.100.1", "198.51.100.2", 8100), runtime.Outcome{Action: xdpDrop, Moved: []int{slotDefault}}},
		{"mac", udpFrame(t, []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}, "198.51.100.1", "198.51.100.2", 9), runtime.Outcome{Action: xdpPass, Moved: []int{slotMAC}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := prog.Run(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCounters(t *testing.T) {
	prog := newProbe(t, []string{"10.0.0.0/8"}, nil, nil)
	in := udpFrame(t, srcMAC, "10.0.0.1", "10.0.0.2", 9)
	out := udpFrame(t, srcMAC, "2001:db8::1", "2001:db8::2", 9)
	for _, f := range [][]byte{in, in, out} {
		if _, err := prog.Run(f); err != nil {
			t.Fatal(err)
		}
	}
	got, err := prog.Counters()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]runtime.Counter, slotCount)
	want[slotV4] = runtime.Counter{Packets: 2, Bytes: 2 * uint64(len(in))}
	want[slotDefault] = runtime.Counter{Packets: 1, Bytes: uint64(len(out))}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestRunWithoutCounters(t *testing.T) {
	prog, err := runtime.NewTestProgram(elfBytes(t, passArtifact()))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	got, err := prog.Run(make([]byte, runtime.MinTestFrame))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(runtime.Outcome{Action: xdpPass}, got); diff != "" {
		t.Errorf("outcome (-want +got):\n%s", diff)
	}
	if c, err := prog.Counters(); err != nil || c != nil {
		t.Errorf("Counters() = %v, %v; want nil, nil", c, err)
	}
}

func TestRunShortFrame(t *testing.T) {
	prog := newProbe(t, nil, nil, nil)
	for _, n := range []int{0, 1, runtime.MinTestFrame - 1} {
		_, err := prog.Run(make([]byte, n))
		if err == nil || !strings.Contains(err.Error(), "at least 14 bytes") {
			t.Errorf("Run(%d bytes) error = %v, want one saying a frame needs at least 14 bytes", n, err)
		}
	}
	c, err := prog.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(make([]runtime.Counter, slotCount), c); diff != "" {
		t.Errorf("short frames moved counters (-want +got):\n%s", diff)
	}
}

func TestNewTestProgramVerifierError(t *testing.T) {
	_, err := runtime.NewTestProgram(elfBytes(t, rejectedArtifact()))
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) {
		t.Fatalf("NewTestProgram error = %v, want an *ebpf.VerifierError", err)
	}
	if !strings.Contains(strings.Join(ve.Log, "\n"), "R5 !read_ok") {
		t.Errorf("verifier log does not name the uninitialised register:\n%s", strings.Join(ve.Log, "\n"))
	}
	var rej *runtime.VerifierRejection
	if !errors.As(err, &rej) {
		t.Fatalf("NewTestProgram error = %v, want a *runtime.VerifierRejection", err)
	}
	if rej.Insn != 2 || rej.Source != rejectedSource {
		t.Errorf("rejection at instruction %d (%q), want 2 (%q)", rej.Insn, rej.Source, rejectedSource)
	}
	if !strings.Contains(err.Error(), rejectedSource) {
		t.Errorf("error %q does not name the rule and line", err)
	}
	report := rej.Report()
	if !strings.Contains(report, "R5 !read_ok") || len(rej.Tail) == 0 || len(rej.Tail) > 20 {
		t.Errorf("report lacks the log's tail:\n%s", report)
	}
}

// TestNewTestProgramBadElement checks that a manifest whose set elements
// the language would refuse does not load.
func TestNewTestProgramBadElement(t *testing.T) {
	tests := map[string]func(*artifact.Artifact){
		"host bits": func(a *artifact.Artifact) {
			a.Manifest.Sets[0].Elements.Prefixes = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}
		},
		"reversed range": func(a *artifact.Artifact) {
			a.Manifest.Sets[1].Elements.Ports = []artifact.PortRange{{Lo: 80, Hi: 70}}
		},
		"mac in a port set": func(a *artifact.Artifact) {
			a.Manifest.Sets[1].Elements.MACs = []artifact.MAC{{2, 0, 0, 0, 0, 1}}
		},
		"v6 without its map": func(a *artifact.Artifact) {
			a.Manifest.Sets[0].V6Map = ""
			a.Manifest.Sets[0].Elements.Prefixes = []netip.Prefix{netip.MustParsePrefix("::ffff:192.0.2.1/128")}
		},
	}
	for name, breakIt := range tests {
		a := probeArtifact([]string{"10.0.0.0/8"}, []string{"80"}, nil)
		breakIt(a)
		t.Run(name, func(t *testing.T) {
			if _, err := runtime.NewTestProgram(elfBytes(t, a)); err == nil {
				t.Fatal("NewTestProgram succeeded, want an error")
			}
		})
	}
}
