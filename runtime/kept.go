package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/artifact"
)

// keptMaps decides, for one apply, which maps of the new program are the
// pinned maps of the previous apply of the same policy and which are new:
//
//   - the counter map is reused when its layout and its slots (what each
//     counts: rule name and kind, artifact.SlotID) are unchanged, wherever
//     the rules are written; otherwise the program gets a new, zeroed map
//     and the old one is retired as a generation that readers go on
//     adding (generations.go): no count is ever copied into a map a
//     program is counting in;
//   - a dynamic set's maps are reused when their layout is unchanged, and
//     elements newly declared in the policy are added; when the layout
//     changed they are recreated, the old elements copied when the key
//     layout allows, and a note says so;
//   - every other set gets new maps holding its declared elements.
type keptMaps struct {
	l      layout
	policy string
	// replacements are pinned maps the collection uses instead of new ones.
	replacements map[string]*ebpf.Map
	// pins are new maps of the collection to pin: spec map name -> path.
	pins map[string]string
	// counters is what happens to the counter map; nil when the
	// program has none.
	counters *counterPlan
	// fill are the sets whose declared elements go into new maps; extend
	// the elements newly declared for reused maps, added only once the new
	// program runs so that a failed apply leaves the sets as they were.
	fill, extend []artifact.SetMap
	// copies are old maps whose entries go into recreated set maps.
	copies map[string]*ebpf.Map
	notes  []string
	opened []*ebpf.Map
}

// counterPin and setPin name the pins of a policy's kept maps.
func (l layout) counterPin(policy string) string {
	return filepath.Join(l.mapPinDir(policy), "counters")
}
func (l layout) setPin(policy, set, suffix string) string {
	return filepath.Join(l.mapPinDir(policy), "set_"+set+suffix)
}

// setPins returns spec map name -> pin path for a dynamic set.
func (l layout) setPins(policy string, set artifact.SetMap) map[string]string {
	pins := map[string]string{}
	if set.V4Map != "" {
		pins[set.V4Map] = l.setPin(policy, set.Set, "_v4")
	}
	if set.V6Map != "" {
		pins[set.V6Map] = l.setPin(policy, set.Set, "_v6")
	}
	if set.Map != "" {
		pins[set.Map] = l.setPin(policy, set.Set, "")
	}
	return pins
}

// planKeptMaps opens the policy's pinned maps and plans the apply.
func planKeptMaps(l layout, spec *ebpf.CollectionSpec, m *artifact.Manifest) (*keptMaps, error) {
	k := &keptMaps{
		l: l, policy: m.Policy,
		replacements: map[string]*ebpf.Map{},
		pins:         map[string]string{},
		copies:       map[string]*ebpf.Map{},
	}
	// The kept maps follow the manifest of the previous apply, in any
	// format an xdpc wrote (an upgrade keeps them); one this xdpc cannot
	// read fails the apply rather than lose what the maps hold.
	var old artifact.Manifest
	prev, err := loadKeptManifest(l.keptManifest(m.Policy))
	hasOld := err == nil
	switch {
	case hasOld:
		old = *prev
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w (detach the policy's interfaces to start it afresh)", err)
	}

	if m.Counters.Map != "" {
		// prev is nil when there was no previous apply.
		if err := k.planCounters(spec, m, prev); err != nil {
			k.close()
			return nil, err
		}
	}

	oldSets := map[string]artifact.SetMap{}
	if hasOld {
		for _, s := range old.Sets {
			oldSets[s.Set] = s
		}
	}
	for _, set := range m.Sets {
		if !keptAcrossApply(set) {
			k.fill = append(k.fill, set)
			continue
		}
		if err := k.planDynamicSet(spec, set, oldSets); err != nil {
			k.close()
			return nil, err
		}
	}
	return k, nil
}

// keptAcrossApply reports whether the set's maps outlive an apply, as
// their kinds say (artifact.Keep): set maps are kept when the set is
// dynamic.
func keptAcrossApply(set artifact.SetMap) bool {
	for _, r := range set.Maps() {
		switch r.Kind.Layout().Keep {
		case artifact.KeepAlways:
			return true
		case artifact.KeepDynamic:
			if set.Dynamic {
				return true
			}
		}
	}
	return false
}

// planDynamicSet reuses, recreates or creates the maps of a dynamic set.
func (k *keptMaps) planDynamicSet(spec *ebpf.CollectionSpec, set artifact.SetMap, oldSets map[string]artifact.SetMap) error {
	prev, hadSet := oldSets[set.Set]
	fresh := false
	for name, path := range k.l.setPins(k.policy, set) {
		pm, err := k.openPinned(path)
		if err != nil {
			return err
		}
		if pm == nil || !hadSet || !prev.Dynamic || prev.Type != set.Type {
			k.pins[name] = path
			fresh = true
			continue
		}
		if err := compatible(pm, spec.Maps[name]); err != nil {
			k.pins[name] = path
			k.copies[name] = pm
			k.notes = append(k.notes, fmt.Sprintf("set %s of policy %s: map layout changed (%v); recreated it and copied its elements", set.Set, k.policy, err))
			continue
		}
		k.replacements[name] = pm
	}
	if fresh {
		k.fill = append(k.fill, set)
		return nil
	}
	// Kept contents: add only what the policy newly declares.
	added := set
	added.Elements = set.Elements.Without(prev.Elements)
	if added.Elements.Len() > 0 {
		k.extend = append(k.extend, added)
	}
	return nil
}

// openPinned opens the map pinned at path; nil when nothing is.
func (k *keptMaps) openPinned(path string) (*ebpf.Map, error) {
	m, err := ebpf.LoadPinnedMap(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open kept map %s: %w", path, err)
	}
	k.opened = append(k.opened, m)
	return m, nil
}

// compatible reports why the loaded map m cannot stand in for spec.
func compatible(m *ebpf.Map, spec *ebpf.MapSpec) error {
	switch {
	case spec == nil:
		return errors.New("the program has no such map")
	case m.Type() != spec.Type:
		return fmt.Errorf("type %s, now %s", m.Type(), spec.Type)
	case m.KeySize() != spec.KeySize || m.ValueSize() != spec.ValueSize:
		return fmt.Errorf("key/value size %d/%d, now %d/%d", m.KeySize(), m.ValueSize(), spec.KeySize, spec.ValueSize)
	case m.MaxEntries() != spec.MaxEntries:
		return fmt.Errorf("capacity %d, now %d", m.MaxEntries(), spec.MaxEntries)
	case m.Flags() != spec.Flags:
		return fmt.Errorf("flags %#x, now %#x", m.Flags(), spec.Flags)
	}
	return nil
}

// populate fills the new collection's maps: declared set elements and
// copied set elements.
func (k *keptMaps) populate(coll *ebpf.Collection) error {
	if err := fillSets(coll.Maps, k.fill); err != nil {
		return err
	}
	for name, old := range k.copies {
		if err := copyEntries(old, coll.Maps[name]); err != nil {
			return fmt.Errorf("copy elements into recreated map %s: %w", name, err)
		}
	}
	return nil
}

// extendSets adds the newly declared elements to reused set maps.
func (k *keptMaps) extendSets(coll *ebpf.Collection) error {
	return fillSets(coll.Maps, k.extend)
}

// pin pins the new kept maps of coll, replacing the old pins.
func (k *keptMaps) pin(coll *ebpf.Collection) error {
	for name, path := range k.pins {
		if err := pinReplace(coll.Maps[name], path); err != nil {
			return err
		}
	}
	return nil
}

func (k *keptMaps) close() {
	for _, m := range k.opened {
		m.Close()
	}
}

// copyEntries copies what fits of old's entries into m when their keys and
// values have the same sizes.
func copyEntries(old, m *ebpf.Map) error {
	if old.KeySize() != m.KeySize() || old.ValueSize() != m.ValueSize() {
		return nil
	}
	key := make([]byte, old.KeySize())
	val := make([]byte, old.ValueSize())
	it := old.Iterate()
	for it.Next(&key, &val) {
		if err := m.Put(key, val); err != nil {
			return err
		}
	}
	return it.Err()
}

// counterPlan is what one apply does with the policy's counter map.
type counterPlan struct {
	name string // the counter map's name in the spec
	// rec is the record of generations before the apply; nil when there
	// is none (first apply, or counters of unknown slots).
	rec *counterRecord
	// pinned is the map pinned as the current generation, cur the same
	// when it is the map rec says is current.
	pinned, cur *ebpf.Map
	// reuse: the program counts in cur. retire: cur is retired.
	reuse, retire bool
	// recorded: rec was read from the record, not made from the kept
	// manifest of counters older than records of generations.
	recorded bool
	// next is the record a new generation started; nil until then.
	next *counterRecord
}

// planCounters decides whether the program counts in the current
// generation's map or in a new one.
func (k *keptMaps) planCounters(spec *ebpf.CollectionSpec, m *artifact.Manifest, old *artifact.Manifest) error {
	c := &counterPlan{name: m.Counters.Map}
	k.counters = c
	rec, err := readCounterRecord(k.l, k.policy)
	if err != nil {
		return err
	}
	c.recorded = rec != nil
	if rec == nil && old != nil {
		rec = legacyRecord(old)
	}
	c.rec = rec
	pm, err := k.openPinned(k.l.counterPin(k.policy))
	if err != nil || pm == nil || rec == nil {
		c.pinned = pm
		return err
	}
	c.pinned = pm
	id, err := mapID(pm)
	if err != nil {
		return fmt.Errorf("kept counters of policy %s: %w", k.policy, err)
	}
	if rec.Current.MapID != 0 && rec.Current.MapID != id {
		// Not the map the record names: an apply was interrupted after
		// it had retired that map (and listed it) and before it pinned
		// the next. Start a new generation.
		return nil
	}
	rec.Current.MapID = id
	c.cur = pm
	if compatible(pm, spec.Maps[c.name]) == nil && (artifact.CounterTable{Slots: rec.Current.Slots}).SameSlots(m.Counters) {
		c.reuse = true
		k.replacements[c.name] = pm
		return nil
	}
	c.retire = artifact.MapCounters.Fits(pm.Type(), pm.KeySize(), pm.ValueSize()) == nil
	return nil
}

// startCounters makes the new collection's counter map the current
// generation, before the program goes live: the current one is pinned
// as retired, with the programs that count in it, and the record names
// both; then the new map takes the pin. A reader sees the old record
// with the old pins or the new record with the new ones (or, for the
// moment between the last two steps, a pin that does not match, and
// reads again).
func (k *keptMaps) startCounters(coll *ebpf.Collection, m *artifact.Manifest) error {
	c := k.counters
	if c == nil || c.reuse {
		return nil
	}
	nm := coll.Maps[c.name]
	id, err := mapID(nm)
	if err != nil {
		return fmt.Errorf("new counters: %w", err)
	}
	next := &counterRecord{Next: 1}
	if c.rec != nil {
		next = c.rec.clone()
	}
	if c.retire {
		g := c.rec.Current
		if g.Programs, err = writersOf(k.l, g.MapID); err != nil {
			return fmt.Errorf("retire counters: %w", err)
		}
		if err := pinReplace(c.cur, k.l.retiredCounterPin(k.policy, g.Gen)); err != nil {
			return err
		}
		next.Retired = append(next.Retired, g)
	}
	next.Current = counterGeneration{Gen: next.Next, MapID: id, Slots: m.Counters.Slots}
	next.Next++
	if err := writeJSON(k.l.counterRecordFile(k.policy), next); err != nil {
		return err
	}
	c.next = next
	return pinReplace(nm, k.l.counterPin(k.policy))
}

// restoreCounters undoes startCounters after a failed attach: the
// previous generation is current again. When the new program ran on an
// interface before it was undone (ran), its counts are kept: its map
// stays as a retired generation.
func (k *keptMaps) restoreCounters(coll *ebpf.Collection, prog *ebpf.Program, ran bool) error {
	c := k.counters
	if c == nil || c.next == nil {
		return nil
	}
	path := k.l.counterRecordFile(k.policy)
	if c.rec == nil {
		// Nothing was counted before; nothing runs the new program now.
		os.Remove(path)
		if c.pinned != nil {
			return pinReplace(c.pinned, k.l.counterPin(k.policy))
		}
		os.Remove(k.l.counterPin(k.policy))
		return nil
	}
	back := c.rec.clone()
	back.Next = c.next.Next
	if ran {
		g := c.next.Current
		if info, err := prog.Info(); err == nil {
			if pid, ok := info.ID(); ok {
				g.Programs = []ebpf.ProgramID{pid}
			}
		}
		if err := pinReplace(coll.Maps[c.name], k.l.retiredCounterPin(k.policy, g.Gen)); err != nil {
			return err
		}
		back.Retired = append(back.Retired, g)
	}
	if err := writeJSON(path, back); err != nil {
		return err
	}
	if c.pinned != nil {
		if err := pinReplace(c.pinned, k.l.counterPin(k.policy)); err != nil {
			return err
		}
	}
	if c.retire {
		os.Remove(k.l.retiredCounterPin(k.policy, c.rec.Current.Gen))
	}
	return nil
}

// commitCounters records, once the program runs, the slots of a reused
// counter map as the new manifest gives them (rules may have moved), and
// the map's id when the map predates records of generations.
func (k *keptMaps) commitCounters(m *artifact.Manifest) error {
	c := k.counters
	if c == nil || !c.reuse || (c.recorded && slices.Equal(c.rec.Current.Slots, m.Counters.Slots)) {
		return nil
	}
	next := c.rec.clone()
	next.Current.Slots = m.Counters.Slots
	return writeJSON(k.l.counterRecordFile(k.policy), next)
}
