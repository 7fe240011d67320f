package artifact

import (
	"bytes"
	"fmt"

	"github.com/cilium/ebpf"
)

// Read parses an ELF artifact: the collection spec a loader hands to the
// kernel and the manifest that describes it. It checks that they agree:
// the manifest's program is in the object, and every map the manifest
// names is there with the layout its kind has. It makes no kernel calls.
func Read(elf []byte) (*ebpf.CollectionSpec, *Manifest, error) {
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(elf))
	if err != nil {
		return nil, nil, fmt.Errorf("read artifact: %w", err)
	}
	manifest, err := ReadManifest(bytes.NewReader(elf))
	if err != nil {
		return nil, nil, fmt.Errorf("read artifact: %w", err)
	}
	if err := checkManifest(spec, manifest); err != nil {
		return nil, nil, fmt.Errorf("read artifact: %w", err)
	}
	return spec, manifest, nil
}

// checkManifest verifies that spec holds the program m names, and every
// map m names with the layout of its kind.
func checkManifest(spec *ebpf.CollectionSpec, m *Manifest) error {
	if p := spec.Programs[m.Program]; p == nil || p.Type != ebpf.XDP {
		return fmt.Errorf("manifest names XDP program %q, the object has none", m.Program)
	}
	if m.Egress != "" {
		if p := spec.Programs[m.Egress]; p == nil || p.Type != ebpf.SchedCLS {
			return fmt.Errorf("manifest names TC egress program %q, the object has none", m.Egress)
		}
	}
	if (m.Egress != "") != (m.Conntrack != nil) {
		return fmt.Errorf("manifest names an egress program and a connection table only together")
	}
	if m.NAT != nil && m.Conntrack == nil {
		return fmt.Errorf("manifest names NAT maps but no connection table: translated flows are tracked")
	}
	if len(m.Redirects) > 0 && m.RedirectMap == "" {
		return fmt.Errorf("manifest names redirect targets but no redirect map")
	}
	for _, set := range m.Sets {
		if len(set.Maps()) == 0 {
			return fmt.Errorf("set %s: manifest names no map of a %s set", set.Set, set.Type)
		}
		if _, err := set.Entries(set.Elements); err != nil {
			return err
		}
	}
	for _, ref := range m.Maps() {
		ms := spec.Maps[ref.Name]
		if ms == nil {
			return fmt.Errorf("manifest names %s map %q, the object has none", ref.Kind, ref.Name)
		}
		if err := ref.Kind.Check(ms); err != nil {
			return fmt.Errorf("map %s: %w", ref.Name, err)
		}
	}
	if m.Counters.Map != "" {
		if err := m.Counters.check(int(spec.Maps[m.Counters.Map].MaxEntries)); err != nil {
			return err
		}
	} else if len(m.Counters.Slots) > 0 {
		return fmt.Errorf("manifest names counter slots but no counter map")
	}
	if m.RedirectMap != "" {
		if n := spec.Maps[m.RedirectMap].MaxEntries; int(n) < len(m.Redirects) {
			return fmt.Errorf("redirect map %s has room for %d targets, the manifest names %d", m.RedirectMap, n, len(m.Redirects))
		}
	}
	return nil
}
