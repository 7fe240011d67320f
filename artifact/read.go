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

// checkManifest verifies that spec holds the program and maps m names.
func checkManifest(spec *ebpf.CollectionSpec, m *Manifest) error {
	if spec.Programs[m.Program] == nil {
		return fmt.Errorf("manifest names program %q, the object has none", m.Program)
	}
	if m.Counters.Map != "" {
		if err := checkCounterMap(spec.Maps[m.Counters.Map], m.Counters.Map); err != nil {
			return err
		}
	}
	if err := checkRedirectMap(spec, m); err != nil {
		return err
	}
	for _, set := range m.Sets {
		for _, name := range set.MapNames() {
			if spec.Maps[name] == nil {
				return fmt.Errorf("set %s: manifest names map %q, the object has none", set.Set, name)
			}
		}
	}
	return nil
}

// checkCounterMap verifies the layout of the counter map: a per-CPU array
// of u32 slot to Counter.
func checkCounterMap(spec *ebpf.MapSpec, name string) error {
	if spec == nil {
		return fmt.Errorf("manifest names counter map %q, the object has none", name)
	}
	if spec.Type != ebpf.PerCPUArray || spec.KeySize != 4 || spec.ValueSize != 16 {
		return fmt.Errorf("counter map %s: %s with %d-byte keys and %d-byte values, want %s with 4 and %d",
			name, spec.Type, spec.KeySize, spec.ValueSize, ebpf.PerCPUArray, 16)
	}
	return nil
}

// checkRedirectMap verifies that the manifest's redirect map exists and
// is a device map with room for every target.
func checkRedirectMap(spec *ebpf.CollectionSpec, m *Manifest) error {
	if m.RedirectMap == "" {
		if len(m.Redirects) > 0 {
			return fmt.Errorf("manifest names redirect targets but no redirect map")
		}
		return nil
	}
	ms := spec.Maps[m.RedirectMap]
	if ms == nil {
		return fmt.Errorf("manifest names redirect map %q, the object has none", m.RedirectMap)
	}
	if ms.Type != ebpf.DevMapHash || ms.KeySize != 4 || ms.ValueSize != 4 || int(ms.MaxEntries) < len(m.Redirects) {
		return fmt.Errorf("redirect map %s: %s with %d-byte keys and values and %d entries, want %s with 4 and at least %d",
			m.RedirectMap, ms.Type, ms.KeySize, ms.MaxEntries, ebpf.DevMapHash, len(m.Redirects))
	}
	return nil
}
