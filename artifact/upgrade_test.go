package artifact

import (
	"net/netip"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReadFormat1 reads an artifact the previous xdpc wrote
// (testdata/format1/edge.o, built from edge.hcl beside it by xdpc at
// commit 3ad25ed): a host upgraded from it holds such artifacts as the
// programs it runs, and apply --confirm rolls back to them.
func TestReadFormat1(t *testing.T) {
	elf, err := os.ReadFile("testdata/format1/edge.o")
	if err != nil {
		t.Fatal(err)
	}
	spec, m, err := Read(elf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if m.Format != ManifestFormat || m.Policy != "edge" || spec.Programs[m.Program] == nil {
		t.Fatalf("manifest format %d policy %q program %q", m.Format, m.Policy, m.Program)
	}
	var got []string
	for _, s := range m.Counters.Slots {
		got = append(got, s.Name+" "+s.Kind.String()+" "+s.Pos.String())
	}
	want := []string{"blocked rule 20:3", "web rule 25:3", "seen count 31:3", "arp rule 36:3", "default default ", "malformed malformed "}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slots (-want +got):\n%s", diff)
	}
	sets := map[string]SetMap{}
	for _, s := range m.Sets {
		sets[s.Set] = s
	}
	block := sets["blocklist"]
	if !block.Dynamic || len(block.Elements.Prefixes) != 2 || block.Elements.Prefixes[1] != netip.MustParsePrefix("2001:db8:bad::/48") {
		t.Errorf("blocklist = %+v", block)
	}
	if web := sets["web"]; len(web.Elements.Ports) != 3 || web.Elements.Ports[2] != (PortRange{Lo: 8000, Hi: 8001}) {
		t.Errorf("web = %+v", web)
	}
}
