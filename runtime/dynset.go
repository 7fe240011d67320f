package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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

// SetAdd adds elements (in the policy's syntax) to a dynamic set; the
// program sees them at once.
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
	set.Elements = elements
	entries, err := setEntries(set)
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
// or MAC addresses.
func SetList(opts SetOptions) ([]string, error) {
	l := opts.layout()
	set, maps, err := openSet(l, opts)
	if err != nil {
		return nil, err
	}
	defer closeMaps(maps)
	var out []string
	for _, m := range maps {
		key := make([]byte, m.KeySize())
		val := make([]byte, m.ValueSize())
		it := m.Iterate()
		for it.Next(&key, &val) {
			out = append(out, formatKey(set.Type, key))
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("list set %s: %w", set.Set, err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return lessElement(set.Type, out[i], out[j]) })
	return out, nil
}

// formatKey renders a set map key in the policy's syntax.
func formatKey(typ string, key []byte) string {
	switch typ {
	case "cidr":
		bits := int(binary.LittleEndian.Uint32(key))
		addr, _ := netip.AddrFromSlice(key[4:])
		return netip.PrefixFrom(addr, bits).String()
	case "port":
		return strconv.Itoa(int(binary.NativeEndian.Uint16(key)))
	case "mac":
		return net.HardwareAddr(key).String()
	}
	return fmt.Sprintf("%x", key)
}

func lessElement(typ, a, b string) bool {
	switch typ {
	case "port":
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x < y
	case "cidr":
		x, _ := netip.ParsePrefix(a)
		y, _ := netip.ParsePrefix(b)
		if c := x.Addr().Compare(y.Addr()); c != 0 {
			return c < 0
		}
		return x.Bits() < y.Bits()
	}
	return a < b
}
