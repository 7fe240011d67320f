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

// ErrSetFull is returned when the elements given would not fit in a
// dynamic set's max_elements.
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

// SetChange says what SetAdd or SetDel did.
type SetChange struct {
	Policy string
	Set    string
	// Given is the number of elements given; Changed how many of them the
	// set gained (SetAdd) or lost (SetDel). The others changed nothing:
	// they were in the set already (SetAdd) or not in it (SetDel), or
	// repeated an element given before them.
	Given, Changed int
}

// readKeptManifest returns the manifest the policy's kept maps follow, in
// the current format whichever xdpc wrote it (loadKeptManifest).
func readKeptManifest(l layout, policy string) (*artifact.Manifest, error) {
	m, err := loadKeptManifest(l.keptManifest(policy))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("policy %s is not applied", policy)
	}
	return m, err
}

// appliedSet is a set of an applied policy, and the manifest of the
// policy's kept maps that declares it.
type appliedSet struct {
	artifact.SetMap
	manifest *artifact.Manifest
}

// String names the set and its policy for messages.
func (s appliedSet) String() string {
	return fmt.Sprintf("set %s of policy %s", s.Set, s.manifest.Policy)
}

// findSet finds the set opts names among the applied policies.
func findSet(l layout, opts SetOptions) (appliedSet, error) {
	files, err := filepath.Glob(filepath.Join(l.stateDir, "maps", "*", "manifest.json"))
	if err != nil {
		return appliedSet{}, fmt.Errorf("list applied policies: %w", err)
	}
	var found []appliedSet
	var owners []string
	for _, f := range files {
		if opts.Policy != "" && filepath.Base(filepath.Dir(f)) != opts.Policy {
			continue
		}
		m, err := loadKeptManifest(f)
		if err != nil {
			return appliedSet{}, err
		}
		for _, s := range m.Sets {
			if s.Set == opts.Set {
				found = append(found, appliedSet{s, m})
				owners = append(owners, m.Policy)
			}
		}
	}
	switch {
	case len(found) == 0 && opts.Policy != "":
		return appliedSet{}, fmt.Errorf("set %s: %w in applied policy %s", opts.Set, ErrNoSuchSet, opts.Policy)
	case len(found) == 0:
		return appliedSet{}, fmt.Errorf("set %s: %w in any applied policy", opts.Set, ErrNoSuchSet)
	case len(found) > 1:
		return appliedSet{}, fmt.Errorf("set %s: policies %s have one; choose with --policy", opts.Set, strings.Join(owners, ", "))
	}
	return found[0], nil
}

// openPinned opens the pinned maps of a dynamic set by spec map name.
func (s appliedSet) openPinned(l layout) (map[string]*ebpf.Map, error) {
	if !s.Dynamic {
		return nil, fmt.Errorf("%s: %w", s, ErrNotDynamic)
	}
	maps := map[string]*ebpf.Map{}
	for name, path := range l.setPins(s.manifest.Policy, s.SetMap) {
		m, err := ebpf.LoadPinnedMap(path, nil)
		if err != nil {
			closeMaps(maps)
			return nil, fmt.Errorf("open %s: %w", s, err)
		}
		maps[name] = m
	}
	return maps, nil
}

func closeMaps(maps map[string]*ebpf.Map) {
	for _, m := range maps {
		m.Close()
	}
}

// SetAdd adds elements to a dynamic set; the program sees them at once.
// Elements are read by the policy language's rules (artifact.ParseElements):
// an address or CIDR without host bits (an IPv4-mapped IPv6 address stays
// IPv6), a port or range, a MAC address. The change is all or nothing:
// when an element is not one of the set's type (every such element is
// named, ErrBadElement), when the elements would not fit in max_elements
// (ErrSetFull, saying how many would not), or when the kernel refuses a
// key half way (what was inserted is removed again), the set is left as
// it was. Elements the set holds already are not added again, and are not
// counted in SetChange.Changed.
func SetAdd(opts SetOptions, elements []string) (*SetChange, error) {
	return changeSet(opts, elements, setAdd)
}

// SetDel removes elements from a dynamic set, all or nothing as SetAdd
// adds them; an element the set does not hold is not an error, and is not
// counted in SetChange.Changed.
func SetDel(opts SetOptions, elements []string) (*SetChange, error) {
	return changeSet(opts, elements, setDel)
}

// setOp is the change SetAdd or SetDel makes.
type setOp bool

const (
	setAdd setOp = true
	setDel setOp = false
)

// changeSet changes a dynamic set under the lock, which every apply
// holds too: an apply that recreates the set's maps copies them either
// before or after the change, never during it.
func changeSet(opts SetOptions, texts []string, op setOp) (*SetChange, error) {
	l := opts.layout()
	lock, err := acquireLock(l)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	set, err := findSet(l, opts)
	if err != nil {
		return nil, err
	}
	maps, err := set.openPinned(l)
	if err != nil {
		return nil, err
	}
	defer closeMaps(maps)
	plan, err := planSetChange(set, maps, texts, op)
	if err != nil {
		return nil, err
	}
	if err := plan.run(); err != nil {
		return nil, err
	}
	return &plan.change, nil
}

// setChange is a planned SetAdd or SetDel: the keys it inserts or
// deletes, each once, in the order the elements were given.
type setChange struct {
	set    appliedSet
	op     setOp
	maps   map[string]*ebpf.Map
	kinds  map[string]artifact.MapKind
	keys   []artifact.SetEntry
	change SetChange
}

// planSetChange reads the elements and the keys the set's maps hold now
// and decides which keys change. It refuses elements that are not of the
// set's type, all of them named, and an add that would not fit.
func planSetChange(set appliedSet, maps map[string]*ebpf.Map, texts []string, op setOp) (*setChange, error) {
	c := &setChange{
		set: set, op: op, maps: maps, kinds: map[string]artifact.MapKind{},
		change: SetChange{Policy: set.manifest.Policy, Set: set.Set, Given: len(texts)},
	}
	for _, r := range set.Maps() {
		c.kinds[r.Name] = r.Kind
	}
	var bad []error
	entries := make([][]artifact.SetEntry, len(texts))
	for i, text := range texts {
		els, err := artifact.ParseElements(set.Type, []string{text})
		if es, ok := errors.AsType[artifact.ElementErrors](err); ok {
			err = es.InSet(set.Set)
		}
		if err == nil {
			entries[i], err = set.Entries(els)
		}
		if err != nil {
			bad = append(bad, err)
		}
	}
	if len(bad) > 0 {
		return nil, &badElementsError{set: set, given: len(texts), errs: bad}
	}

	// Which keys the maps the change touches hold, exactly: a lookup in
	// an LPM trie finds the longest prefix that matches, not the key, so
	// the keys are read.
	held := map[string]map[string]bool{}
	for _, es := range entries {
		for _, e := range es {
			if held[e.Map] != nil {
				continue
			}
			keys, err := mapKeys(maps[e.Map])
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", set, err)
			}
			held[e.Map] = keys
		}
	}
	seen := map[string]map[string]bool{}
	for name := range maps {
		seen[name] = map[string]bool{}
	}
	for _, es := range entries {
		changed := false
		for _, e := range es {
			k := string(e.Key)
			if seen[e.Map][k] || held[e.Map][k] != (op == setDel) {
				continue
			}
			seen[e.Map][k] = true
			c.keys = append(c.keys, e)
			changed = true
		}
		if changed {
			c.change.Changed++
		}
	}
	if op == setAdd {
		if err := c.checkRoom(held, seen); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// checkRoom refuses an add whose new keys would not fit in their maps.
func (c *setChange) checkRoom(held, added map[string]map[string]bool) error {
	var full []string
	for _, r := range c.set.Maps() {
		m := c.maps[r.Name]
		if m == nil || len(added[r.Name]) == 0 {
			continue
		}
		have, add, room := len(held[r.Name]), len(added[r.Name]), int(m.MaxEntries())
		if have+add <= room {
			continue
		}
		one, many := entryNoun(r.Kind)
		msg := fmt.Sprintf("%d of %s would not fit (it holds %s, max_elements %d",
			min(add, have+add-room), count(add, "new "+one, "new "+many), count(have, one, many), room)
		switch r.Kind {
		case artifact.MapCIDRv4, artifact.MapCIDRv6:
			msg += " per address family"
		case artifact.MapPorts:
			msg += "; a range takes one per port"
		}
		full = append(full, msg+")")
	}
	if len(full) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w: %s; nothing changed", c.set, ErrSetFull, strings.Join(full, "; "))
}

// entryNoun names what a map of kind k holds, one and many.
func entryNoun(k artifact.MapKind) (one, many string) {
	switch k {
	case artifact.MapCIDRv4:
		return "IPv4 prefix", "IPv4 prefixes"
	case artifact.MapCIDRv6:
		return "IPv6 prefix", "IPv6 prefixes"
	case artifact.MapPorts:
		return "port", "ports"
	case artifact.MapMACs:
		return "MAC address", "MAC addresses"
	}
	return "entry", "entries"
}

// count says n things: "1 port", "3 ports".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// run inserts or deletes the planned keys. When the kernel refuses one,
// the keys changed before it are changed back, so the set is as it was.
func (c *setChange) run() error {
	for i, e := range c.keys {
		err := c.apply(e, c.op)
		if err == nil {
			continue
		}
		verb := map[setOp]string{setAdd: "insert", setDel: "delete"}[c.op]
		err = fmt.Errorf("%s: %s %s: %w", c.set, verb, c.element(e), err)
		if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) {
			err = fmt.Errorf("%w (%w)", err, ErrSetFull)
		}
		undo := map[setOp]string{setAdd: "removed the %s inserted", setDel: "put back the %s deleted"}[c.op]
		for j := i - 1; j >= 0; j-- {
			if uerr := c.apply(c.keys[j], !c.op); uerr != nil {
				return fmt.Errorf("%w; undoing the %d changes before it failed at %s: %v", err, i, c.element(c.keys[j]), uerr)
			}
		}
		return fmt.Errorf("%w; "+undo+" before it, so nothing changed", err, count(i, "entry", "entries"))
	}
	return nil
}

// apply inserts or deletes one key.
func (c *setChange) apply(e artifact.SetEntry, op setOp) error {
	m := c.maps[e.Map]
	if op == setAdd {
		return m.Update(e.Key, artifact.SetMember, ebpf.UpdateAny)
	}
	if err := m.Delete(e.Key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// element renders the element a key stands for.
func (c *setChange) element(e artifact.SetEntry) string {
	var els artifact.Elements
	if err := els.AddKey(c.kinds[e.Map], e.Key); err != nil || els.Len() != 1 {
		return fmt.Sprintf("key %x", e.Key)
	}
	return els.Strings()[0]
}

// badElementsError is a set change refused for elements that are not of
// the set's type; it names every one.
type badElementsError struct {
	set   appliedSet
	given int
	errs  []error
}

func (e *badElementsError) Error() string {
	if e.given == 1 {
		return fmt.Sprintf("%s: %v", e.set, e.errs[0])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d of %d elements refused, nothing changed:", e.set, len(e.errs), e.given)
	for _, err := range e.errs {
		b.WriteString("\n  ")
		b.WriteString(strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return b.String()
}

func (e *badElementsError) Unwrap() []error { return e.errs }

// mapKeys returns every key of m.
func mapKeys(m *ebpf.Map) (map[string]bool, error) {
	keys := map[string]bool{}
	var prev any
	for {
		next, err := m.NextKeyBytes(prev)
		if err != nil {
			return nil, err
		}
		if next == nil {
			return keys, nil
		}
		keys[string(next)] = true
		prev = next
	}
}

// SetContents are the elements of a set of an applied policy.
type SetContents struct {
	Policy string
	Set    string
	Type   artifact.SetType
	// Static is set for a set declared without dynamic = true, or made
	// of a rule's long list (Implicit): it holds what the policy declares
	// and changes only with the policy.
	Static, Implicit bool
	// Declared is set when the elements of a static set are read from
	// the policy's manifest because no interface runs the version of the
	// policy applied last (whose program holds the set's maps).
	Declared bool
	// Elements, sorted, one per map key: a port range lists its ports.
	Elements artifact.Elements
}

// SetList returns the elements of a set: of a dynamic set from its pinned
// maps, of a static one from the maps of a program that runs its policy
// (or, when none does, from the policy's manifest).
func SetList(opts SetOptions) (*SetContents, error) {
	l := opts.layout()
	set, err := findSet(l, opts)
	if err != nil {
		return nil, err
	}
	sc := &SetContents{Policy: set.manifest.Policy, Set: set.Set, Type: set.Type, Static: !set.Dynamic, Implicit: set.Implicit}
	var maps map[string]*ebpf.Map
	if set.Dynamic {
		maps, err = set.openPinned(l)
	} else {
		maps, err = set.openLoaded(l)
	}
	if err != nil {
		return nil, err
	}
	defer closeMaps(maps)
	if maps == nil {
		sc.Declared = true
		entries, err := set.Entries(set.Elements)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", set, err)
		}
		kinds := map[string]artifact.MapKind{}
		for _, r := range set.Maps() {
			kinds[r.Name] = r.Kind
		}
		for _, e := range entries {
			if err := sc.Elements.AddKey(kinds[e.Map], e.Key); err != nil {
				return nil, fmt.Errorf("list %s: %w", set, err)
			}
		}
		sc.Elements.Sort()
		return sc, nil
	}
	for _, ref := range set.Maps() {
		m := maps[ref.Name]
		if m == nil {
			continue
		}
		keys, err := mapKeys(m)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", set, err)
		}
		for key := range keys {
			if err := sc.Elements.AddKey(ref.Kind, []byte(key)); err != nil {
				return nil, fmt.Errorf("list %s: %w", set, err)
			}
		}
	}
	sc.Elements.Sort()
	return sc, nil
}
