package runtime

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/conntrack"
)

// What replaying conversations needs of a TestProgram beyond running,
// aging and reading its table (testrun.go): emptying the table between
// two conversations, and a second program on the same table, as every
// program of a namespace shares one (the lab's ct_state probe).

// FlushConntrack removes every entry of the program's connection table,
// live or dead.
func (t *TestProgram) FlushConntrack() error {
	a, u, err := t.conntrackMaps()
	if err != nil {
		return err
	}
	for _, m := range []*ebpf.Map{a, u} {
		var keys [][]byte
		key, value := make([]byte, conntrack.KeySize), make([]byte, conntrack.EntrySize)
		it := m.Iterate()
		for it.Next(&key, &value) {
			keys = append(keys, append([]byte(nil), key...))
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("flush connection table: iterate %s: %w", m, err)
		}
		for _, k := range keys {
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("flush connection table: delete from %s: %w", m, err)
			}
		}
	}
	return nil
}

// LoadSharingConntrack loads another artifact that tracks connections for
// BPF_PROG_TEST_RUN, as NewTestProgram does, with t's connection table in
// place of its own, as apply puts a namespace's table in place of every
// artifact's: its programs read and write the entries t's do. Its table's
// map specs take the capacity of t's, so any tracking artifact fits.
func (t *TestProgram) LoadSharingConntrack(elf []byte) (*TestProgram, error) {
	a, u, err := t.conntrackMaps()
	if err != nil {
		return nil, err
	}
	spec, manifest, err := artifact.Read(elf)
	if err != nil {
		return nil, err
	}
	c := manifest.Conntrack
	if c == nil {
		return nil, fmt.Errorf("share a connection table: %w in the artifact to load", ErrNoTable)
	}
	repl := map[string]*ebpf.Map{c.Assured: a, c.Unassured: u}
	for name, m := range repl {
		ms, ok := spec.Maps[name]
		if !ok {
			return nil, fmt.Errorf("share a connection table: the artifact has no map %s", name)
		}
		ms.MaxEntries = m.MaxEntries()
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, fmt.Errorf("load artifact: %w", describeLoadError(err, loadedProgram(err, spec, manifest)))
	}
	s := &TestProgram{coll: coll, prog: coll.Programs[manifest.Program], manifest: manifest}
	if manifest.Egress != "" {
		s.egress = coll.Programs[manifest.Egress]
	}
	if err := s.init(); err != nil {
		coll.Close()
		return nil, err
	}
	return s, nil
}
