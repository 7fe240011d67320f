package runtime

import (
	"errors"
	"fmt"
	"os"

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

// openLoaded opens the maps of a static set in a program that runs the
// version of its policy applied last, by spec map name (the kernel's
// name of each map); nil when no interface runs that version. A static
// set's maps are not pinned: they live as long as a program uses them.
func (s appliedSet) openLoaded(l layout) (map[string]*ebpf.Map, error) {
	want := map[string]bool{}
	for _, name := range s.MapNames() {
		want[name] = true
	}
	recs, err := records(l)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Policy != s.manifest.Policy || r.Hash != s.manifest.Hash {
			continue
		}
		maps, err := programMaps(l.withNetns(r.Netns).progPin(r.Interface), want)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", s, err)
		}
		if len(maps) == len(want) {
			return maps, nil
		}
		closeMaps(maps)
	}
	return nil, nil
}

// programMaps opens the maps named in want that the program pinned at
// path uses; none when nothing is pinned there.
func programMaps(path string, want map[string]bool) (map[string]*ebpf.Map, error) {
	prog, err := ebpf.LoadPinnedProgram(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	info, err := prog.Info()
	prog.Close()
	if err != nil {
		return nil, fmt.Errorf("read program %s: %w", path, err)
	}
	ids, _ := info.MapIDs()
	maps := map[string]*ebpf.Map{}
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			closeMaps(maps)
			return nil, fmt.Errorf("open map %d of program %s: %w", id, path, err)
		}
		mi, err := m.Info()
		if err != nil || !want[mi.Name] || maps[mi.Name] != nil {
			m.Close()
			continue
		}
		maps[mi.Name] = m
	}
	return maps, nil
}
