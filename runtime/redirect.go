package runtime

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/artifact"
)

// loopbackIndex is the index of "lo" in every network namespace.
const loopbackIndex = 1

// fillRedirects puts the interface index of every redirect target into
// the device map; index returns it. The kernel resolves indexes in the
// caller's network namespace, so this runs in the interfaces' namespace.
func fillRedirects(maps map[string]*ebpf.Map, m *artifact.Manifest, index func(string) (int, error)) error {
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
