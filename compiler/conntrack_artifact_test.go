package compiler_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/compiler"
)

// TestTrackingArtifact checks what a tracking policy adds to its artifact:
// a TC egress program, the connection table's two maps sized from
// max_entries, and a manifest naming them; a policy that does not track
// gets none of them.
func TestTrackingArtifact(t *testing.T) {
	for _, c := range []struct {
		maxEntries         int
		assured, unassured uint32
	}{{65536, 65536, 16384}, {64, 64, 1024}, {4096, 4096, 1024}, {8192, 8192, 2048}} {
		t.Run(fmt.Sprint(c.maxEntries), func(t *testing.T) {
			art := compileSource(t, fmt.Sprintf(trackingPolicy, c.maxEntries))
			if art.Egress == nil || art.Manifest.Egress != art.Egress.Name {
				t.Fatalf("egress program %+v, manifest names %q", art.Egress, art.Manifest.Egress)
			}
			want := &artifact.ConntrackTables{Assured: compiler.CTAssuredMap, Unassured: compiler.CTUnassuredMap}
			if diff := cmp.Diff(want, art.Manifest.Conntrack); diff != "" {
				t.Errorf("manifest's connection table (-want +got):\n%s", diff)
			}
			sizes := map[string]uint32{}
			for _, m := range art.Maps {
				sizes[m.Name] = m.MaxEntries
			}
			if sizes[compiler.CTAssuredMap] != c.assured || sizes[compiler.CTUnassuredMap] != c.unassured {
				t.Errorf("maps hold %d and %d entries, want %d and %d", sizes[compiler.CTAssuredMap], sizes[compiler.CTUnassuredMap], c.assured, c.unassured)
			}
			var elf bytes.Buffer
			if err := art.WriteELF(&elf); err != nil {
				t.Fatal(err)
			}
			spec, m, err := artifact.Read(elf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if p := spec.Programs[m.Egress]; p == nil || p.Type != ebpf.SchedCLS || p.SectionName != artifact.EgressSection {
				t.Errorf("egress program %+v, want a SchedCLS program in section %s", p, artifact.EgressSection)
			}
		})
	}
	art := compileSource(t, compiledPolicy)
	if art.Egress != nil || art.Manifest.Egress != "" || art.Manifest.Conntrack != nil {
		t.Errorf("a policy without ct_state has egress %+v, manifest %q %+v", art.Egress, art.Manifest.Egress, art.Manifest.Conntrack)
	}
	for _, m := range art.Maps {
		if m.Name == compiler.CTAssuredMap || m.Name == compiler.CTUnassuredMap {
			t.Errorf("a policy without ct_state has map %s", m.Name)
		}
	}
}
