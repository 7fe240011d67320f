package runtime

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/artifact"
)

// ErrBadElement is returned for a set element that is not of the set's
// type (artifact.ErrBadElement).
var ErrBadElement = artifact.ErrBadElement

// fillSets inserts every set's declared elements into its loaded maps,
// keyed as the artifact's set maps are (artifact.SetMap.Entries).
func fillSets(maps map[string]*ebpf.Map, sets []artifact.SetMap) error {
	for _, set := range sets {
		entries, err := set.Entries(set.Elements)
		if err != nil {
			return err
		}
		if err := putEntries(maps, set, entries); err != nil {
			return err
		}
	}
	return nil
}

// putEntries puts the keys of set into its loaded maps.
func putEntries(maps map[string]*ebpf.Map, set artifact.SetMap, entries []artifact.SetEntry) error {
	for _, e := range entries {
		m := maps[e.Map]
		if m == nil {
			return fmt.Errorf("set %s: no map %s", set.Set, e.Map)
		}
		if err := m.Put(e.Key, artifact.SetMember); err != nil {
			return fmt.Errorf("insert into set %s (map %s): %w", set.Set, e.Map, err)
		}
	}
	return nil
}
