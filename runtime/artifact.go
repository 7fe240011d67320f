package runtime

import (
	"bytes"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/compiler"
)

// ReadArtifact parses an ELF artifact: the collection spec to load into the
// kernel and its manifest. It checks that the maps the manifest names exist
// with the layouts it relies on.
func ReadArtifact(elf []byte) (*ebpf.CollectionSpec, *compiler.Manifest, error) {
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(elf))
	if err != nil {
		return nil, nil, fmt.Errorf("read artifact: %w", err)
	}
	manifest, err := compiler.ReadManifest(bytes.NewReader(elf))
	if err != nil {
		return nil, nil, fmt.Errorf("read artifact: %w", err)
	}
	if err := checkManifest(spec, manifest); err != nil {
		return nil, nil, fmt.Errorf("read artifact: %w", err)
	}
	return spec, manifest, nil
}

// checkManifest verifies that spec holds the program and maps manifest names.
func checkManifest(spec *ebpf.CollectionSpec, m *compiler.Manifest) error {
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
		for _, name := range setMapNames(set) {
			if spec.Maps[name] == nil {
				return fmt.Errorf("set %s: manifest names map %q, the object has none", set.Set, name)
			}
		}
	}
	return nil
}

// setMapNames returns the names of the maps holding set.
func setMapNames(set compiler.SetMap) []string {
	var names []string
	for _, n := range []string{set.V4Map, set.V6Map, set.Map} {
		if n != "" {
			names = append(names, n)
		}
	}
	return names
}
