package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/artifact"
)

// keptMaps decides, for one apply, which maps of the new program are the
// pinned maps of the previous apply of the same policy and which are new:
//
//   - the counter map is reused when its layout and its slots (what each
//     counts: rule name and kind, artifact.SlotID) are unchanged, wherever
//     the rules are written; otherwise a new one is created and the old
//     per-CPU values are copied by SlotID before the program goes live;
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
	// oldCounters and oldSlots are the previous counters to carry by name.
	oldCounters *ebpf.Map
	oldSlots    []artifact.CounterSlot
	// carried is what was copied: new slot -> old slot and its values.
	carried map[uint32]carriedCounter
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

	if name := m.Counters.Map; name != "" {
		path := l.counterPin(m.Policy)
		pm, err := k.openPinned(path)
		if err != nil {
			k.close()
			return nil, err
		}
		switch {
		case pm == nil:
			k.pins[name] = path
		case hasOld && compatible(pm, spec.Maps[name]) == nil && old.Counters.SameSlots(m.Counters):
			k.replacements[name] = pm
		default:
			k.pins[name] = path
			if hasOld && artifact.MapCounters.Fits(pm.Type(), pm.KeySize(), pm.ValueSize()) == nil {
				k.oldCounters, k.oldSlots = pm, old.Counters.Slots
			}
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

// populate fills the new collection's maps: declared set elements, copied
// set elements and counters carried by rule name.
func (k *keptMaps) populate(coll *ebpf.Collection, m *artifact.Manifest) error {
	if err := fillSets(coll.Maps, k.fill); err != nil {
		return err
	}
	for name, old := range k.copies {
		if err := copyEntries(old, coll.Maps[name]); err != nil {
			return fmt.Errorf("copy elements into recreated map %s: %w", name, err)
		}
	}
	if k.oldCounters != nil {
		carried, err := carryCounters(k.oldCounters, k.oldSlots, coll.Maps[m.Counters.Map], m.Counters.Slots)
		if err != nil {
			return err
		}
		k.carried = carried
	}
	return nil
}

// catchUp adds to the new counters what the old program counted between
// populate and the replace. A frame the new program counts on the same
// slot and CPU during the read-modify-write of that slot can still be
// lost; the window is a few microseconds.
func (k *keptMaps) catchUp(coll *ebpf.Collection, m *artifact.Manifest) error {
	if len(k.carried) == 0 {
		return nil
	}
	nm := coll.Maps[m.Counters.Map]
	cpus := len(k.carried[firstKey(k.carried)].values)
	now := make([]Counter, cpus)
	cur := make([]Counter, cpus)
	for slot, c := range k.carried {
		if err := k.oldCounters.Lookup(c.from, now); err != nil {
			return fmt.Errorf("read counters: %w", err)
		}
		moved := false
		for i := range now {
			if now[i] != c.values[i] {
				moved = true
			}
		}
		if !moved {
			continue
		}
		if err := nm.Lookup(slot, cur); err != nil {
			return fmt.Errorf("read counters: %w", err)
		}
		for i := range cur {
			cur[i].Packets += now[i].Packets - c.values[i].Packets
			cur[i].Bytes += now[i].Bytes - c.values[i].Bytes
		}
		if err := nm.Put(slot, cur); err != nil {
			return fmt.Errorf("carry counters: %w", err)
		}
	}
	return nil
}

func firstKey(m map[uint32]carriedCounter) uint32 {
	for k := range m {
		return k
	}
	return 0
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

// carriedCounter is an old slot's per-CPU values as copied.
type carriedCounter struct {
	from   uint32
	values []Counter
}

// carryCounters copies the per-CPU counters of every rule that still
// exists (same name and kind) from the old map to the new one and returns
// what it copied, by new slot.
func carryCounters(old *ebpf.Map, oldSlots []artifact.CounterSlot, m *ebpf.Map, slots []artifact.CounterSlot) (map[uint32]carriedCounter, error) {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count possible cpus: %w", err)
	}
	carried := map[uint32]carriedCounter{}
	from := map[artifact.SlotID]int{}
	for _, s := range oldSlots {
		from[s.ID()] = s.Slot
	}
	for _, s := range slots {
		o, ok := from[s.ID()]
		if !ok || uint32(o) >= old.MaxEntries() {
			continue
		}
		values := make([]Counter, cpus)
		if err := old.Lookup(uint32(o), values); err != nil {
			return nil, fmt.Errorf("read counter %s: %w", s.Name, err)
		}
		if err := m.Put(uint32(s.Slot), values); err != nil {
			return nil, fmt.Errorf("carry counter %s: %w", s.Name, err)
		}
		carried[uint32(s.Slot)] = carriedCounter{uint32(o), values}
	}
	return carried, nil
}
