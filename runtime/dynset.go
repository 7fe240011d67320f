package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
)

// ErrSetFull is returned when a dynamic set holds max_elements already.
var ErrSetFull = errors.New("the set is full")

// ErrNoSuchSet is returned for a set name no applied policy declares.
var ErrNoSuchSet = errors.New("no such set")

// ErrNotDynamic is returned for a change to a set declared without dynamic = true.
var ErrNotDynamic = errors.New("set is not dynamic; declare it with dynamic = true to change it at run time")

// SetOptions name the dynamic set an operation changes.
type SetOptions struct {
	Options
	// Policy is the applied policy the set belongs to; "" when only one
	// applied policy has a set of that name.
	Policy string
	Set    string
}

// readKeptManifest returns the manifest the policy's kept maps follow.
func readKeptManifest(l layout, policy string) (*artifact.Manifest, error) {
	var m artifact.Manifest
	if err := readJSON(l.keptManifest(policy), &m); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("policy %s is not applied", policy)
		}
		return nil, err
	}
	return &m, nil
}

// openSet finds the set and opens its pinned maps by spec map name.
func openSet(l layout, opts SetOptions) (artifact.SetMap, map[string]*ebpf.Map, error) {
	var found []artifact.SetMap
	var owners []string
	files, err := filepath.Glob(filepath.Join(l.stateDir, "maps", "*", "manifest.json"))
	if err != nil {
		return artifact.SetMap{}, nil, fmt.Errorf("list applied policies: %w", err)
	}
	for _, f := range files {
		var m artifact.Manifest
		if err := readJSON(f, &m); err != nil {
			return artifact.SetMap{}, nil, err
		}
		if opts.Policy != "" && m.Policy != opts.Policy {
			continue
		}
		for _, s := range m.Sets {
			if s.Set == opts.Set {
				found = append(found, s)
				owners = append(owners, m.Policy)
			}
		}
	}
	switch {
	case len(found) == 0 && opts.Policy != "":
		return artifact.SetMap{}, nil, fmt.Errorf("set %s: %w in applied policy %s", opts.Set, ErrNoSuchSet, opts.Policy)
	case len(found) == 0:
		return artifact.SetMap{}, nil, fmt.Errorf("set %s: %w in any applied policy", opts.Set, ErrNoSuchSet)
	case len(found) > 1:
		return artifact.SetMap{}, nil, fmt.Errorf("set %s: policies %s have one; choose with --policy", opts.Set, strings.Join(owners, ", "))
	}
	set, policy := found[0], owners[0]
	if !set.Dynamic {
		return set, nil, fmt.Errorf("set %s of policy %s: %w", set.Set, policy, ErrNotDynamic)
	}
	maps := map[string]*ebpf.Map{}
	for name, path := range l.setPins(policy, set) {
		m, err := ebpf.LoadPinnedMap(path, nil)
		if err != nil {
			for _, m := range maps {
				m.Close()
			}
			return set, nil, fmt.Errorf("open set %s of policy %s: %w", set.Set, policy, err)
		}
		maps[name] = m
	}
	return set, maps, nil
}

func closeMaps(maps map[string]*ebpf.Map) {
	for _, m := range maps {
		m.Close()
	}
}

// SetAdd adds elements to a dynamic set; the program sees them at once.
// Elements are read by the policy language's rules (artifact.ParseElements):
// an address or CIDR without host bits (an IPv4-mapped IPv6 address stays
// IPv6), a port or range, a MAC address.
func SetAdd(opts SetOptions, elements []string) error {
	return changeSet(opts, elements, func(m *ebpf.Map, key []byte) error {
		return m.Put(key, artifact.SetMember)
	})
}

// SetDel removes elements from a dynamic set; removing an absent element
// is not an error.
func SetDel(opts SetOptions, elements []string) error {
	return changeSet(opts, elements, func(m *ebpf.Map, key []byte) error {
		if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
		return nil
	})
}

func changeSet(opts SetOptions, elements []string, op func(*ebpf.Map, []byte) error) error {
	l := opts.layout()
	lock, err := acquireLock(l)
	if err != nil {
		return err
	}
	defer lock.release()
	set, maps, err := openSet(l, opts)
	if err != nil {
		return err
	}
	defer closeMaps(maps)
	els, err := artifact.ParseElements(set.Type, elements)
	if es, ok := errors.AsType[artifact.ElementErrors](err); ok {
		err = es.InSet(set.Set)
	}
	if err != nil {
		return fmt.Errorf("set %s: %w", set.Set, err)
	}
	entries, err := set.Entries(els)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := op(maps[e.Map], e.Key); err != nil {
			if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) {
				return fmt.Errorf("change set %s: %w (max_elements %d)", set.Set, ErrSetFull, set.MaxElements)
			}
			return fmt.Errorf("change set %s: %w", set.Set, err)
		}
	}
	return nil
}

// SetList returns the elements of a dynamic set, sorted: prefixes, ports
// or MAC addresses, one per map key (a port range lists its ports).
func SetList(opts SetOptions) ([]string, error) {
	l := opts.layout()
	set, maps, err := openSet(l, opts)
	if err != nil {
		return nil, err
	}
	defer closeMaps(maps)
	var els artifact.Elements
	for _, ref := range set.Maps() {
		m := maps[ref.Name]
		if m == nil {
			continue
		}
		key := make([]byte, m.KeySize())
		val := make([]byte, m.ValueSize())
		it := m.Iterate()
		for it.Next(&key, &val) {
			if err := els.AddKey(ref.Kind, key); err != nil {
				return nil, fmt.Errorf("list set %s: %w", set.Set, err)
			}
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("list set %s: %w", set.Set, err)
		}
	}
	els.Sort()
	return els.Strings(), nil
}
