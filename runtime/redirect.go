package runtime

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/compiler"
)

// loopbackIndex is the index of "lo" in every network namespace.
const loopbackIndex = 1

// checkRedirectMap verifies that the manifest's redirect map exists and
// is a device map with room for every target.
func checkRedirectMap(spec *ebpf.CollectionSpec, m *compiler.Manifest) error {
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

// fillRedirects puts the interface index of every redirect target into
// the device map; index returns it. The kernel resolves indexes in the
// caller's network namespace, so this runs in the interfaces' namespace.
func fillRedirects(maps map[string]*ebpf.Map, m *compiler.Manifest, index func(string) (int, error)) error {
	if m.RedirectMap == "" {
		return nil
	}
	dm := maps[m.RedirectMap]
	for _, t := range m.Redirects {
		idx, err := index(t.Interface)
		if err != nil {
			return fmt.Errorf("redirect target: %w", err)
		}
		if err := dm.Put(uint32(t.Key), uint32(idx)); err != nil {
			return fmt.Errorf("add redirect target %s: %w", t.Interface, err)
		}
	}
	return nil
}
