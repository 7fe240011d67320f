package runtime

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
)

// Each network namespace has one connection table (docs/conntrack.md
// "The tables in the datapath"): the two maps of kinds MapCTAssured and
// MapCTUnassured, pinned at PINROOT/conntrack/NETNS/{assured,unassured}
// and described by STATEDIR/conntrack/NETNS/table.json. Every artifact
// that tracks connections gets them in place of its own maps
// (CollectionOptions.MapReplacements), so its XDP and egress programs and
// every other xdpc program in the namespace share one table, whatever
// their policy, and it survives apply, the detach of one interface and
// policy changes. It is removed when no interface of the namespace runs a
// program that tracks any more.

var tableMapNames = [2]string{"assured", "unassured"}

// ErrNoConntrack is returned by OpenConntrack, ListConntrack and
// FlushConntrack for a network namespace without a connection table: no
// xdpc program there tracks connections.
var ErrNoConntrack = errors.New("no connection table")

// tableRecord is STATEDIR/conntrack/NETNS/table.json.
type tableRecord struct {
	// Layout is the key and entry layout the maps hold (tableLayout).
	Layout    string   `json:"layout"`
	Assured   tableMap `json:"assured"`
	Unassured tableMap `json:"unassured"`
}

type tableMap struct {
	MapID      ebpf.MapID `json:"map_id"`
	MaxEntries uint32     `json:"max_entries"`
}

func (r *tableRecord) maps() [2]*tableMap { return [2]*tableMap{&r.Assured, &r.Unassured} }

// tableLayout describes the key and value layout of a connection table's
// map as its BTF gives it (field names, types, offsets): two layouts are
// the same only when an entry written by one program reads the same in
// the other. A map without BTF is described by its sizes.
func tableLayout(ms *ebpf.MapSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "key %d ", ms.KeySize)
	writeBTF(&b, ms.Key)
	fmt.Fprintf(&b, "; value %d ", ms.ValueSize)
	writeBTF(&b, ms.Value)
	return b.String()
}

func writeBTF(b *strings.Builder, t btf.Type) {
	switch t := t.(type) {
	case nil:
		b.WriteString("?")
	case *btf.Int:
		fmt.Fprintf(b, "%s:%d", t.Name, t.Size)
	case *btf.Array:
		fmt.Fprintf(b, "[%d]", t.Nelems)
		writeBTF(b, t.Type)
	case *btf.Struct:
		fmt.Fprintf(b, "struct %s:%d{", t.Name, t.Size)
		for i, m := range t.Members {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(b, "%s@%d:", m.Name, m.Offset)
			writeBTF(b, m.Type)
		}
		b.WriteString("}")
	case *btf.Typedef:
		writeBTF(b, t.Type)
	default:
		fmt.Fprintf(b, "%T", t)
	}
}

// tablePlan is what one apply does with the namespace's table.
type tablePlan struct {
	l      layout
	names  [2]string // the maps' names in the artifact
	layout string
	// old are the pinned maps, nil when there are none.
	old [2]*ebpf.Map
	// cur are the maps the new programs use: old, or new ones.
	cur [2]*ebpf.Map
	// fresh: cur are new maps, pinned by commit.
	fresh bool
	// migrate: cur hold copies of old's live entries; commit copies
	// those that old's programs made meanwhile.
	migrate bool
	notes   []string
}

// replacements are the maps the collection takes instead of its own.
func (p *tablePlan) replacements() map[string]*ebpf.Map {
	if p == nil {
		return nil
	}
	return map[string]*ebpf.Map{p.names[assured]: p.cur[assured], p.names[unassured]: p.cur[unassured]}
}

// describe names the table in notes.
func (l layout) tableName() string {
	if l.netns == hostNetns {
		return "the connection table"
	}
	return "the connection table of network namespace " + l.netns
}

// planTable opens the namespace's table for an artifact that tracks
// connections and decides what its programs use:
//
//   - the pinned maps, when their layout, type and capacity are the
//     artifact's;
//   - new maps holding the live entries of the pinned ones (dead ones
//     dropped; those that do not fit said), when the capacity, type or
//     flags changed: a migration;
//   - new, empty maps, when the entry layout changed (an xdpc of another
//     table format): the old entries cannot be read;
//   - the pinned maps as they are, with the artifact made to fit, when
//     only the capacity changed and an interface not among bindings
//     still tracks in them: one table for the namespace, said in a note.
//
// It returns nil for an artifact that does not track.
func planTable(l layout, spec *ebpf.CollectionSpec, m *artifact.Manifest, bindings []artifact.InterfaceBinding) (*tablePlan, error) {
	if m.Conntrack == nil {
		return nil, nil
	}
	p := &tablePlan{l: l, names: [2]string{m.Conntrack.Assured, m.Conntrack.Unassured}}
	specs := [2]*ebpf.MapSpec{spec.Maps[p.names[assured]], spec.Maps[p.names[unassured]]}
	p.layout = tableLayout(specs[assured])
	if tableLayout(specs[unassured]) != p.layout {
		return nil, fmt.Errorf("connection table: the assured and unassured maps have different layouts")
	}
	for i := range p.old {
		om, err := ebpf.LoadPinnedMap(l.tablePin(tableMapNames[i]), nil)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			p.close()
			return nil, fmt.Errorf("open %s: %w", l.tableName(), err)
		}
		p.old[i] = om
	}
	if p.old[assured] == nil || p.old[unassured] == nil {
		// None yet (or half of one an interrupted apply left): start it.
		return p, p.create(specs)
	}
	var rec tableRecord
	oldLayout := ""
	if err := readJSON(l.tableRecordFile(), &rec); err == nil {
		oldLayout = rec.Layout
	} else if !errors.Is(err, os.ErrNotExist) {
		p.close()
		return nil, err
	}
	others, err := otherTrackers(l, bindings)
	if err != nil {
		p.close()
		return nil, err
	}
	stay := ""
	if len(others) > 0 {
		stay = fmt.Sprintf("; %s still track in the previous table until applied again", strings.Join(others, ", "))
	}

	sizes := func(i int) bool {
		return p.old[i].KeySize() == specs[i].KeySize && p.old[i].ValueSize() == specs[i].ValueSize
	}
	if !sizes(assured) || !sizes(unassured) || (oldLayout != "" && oldLayout != p.layout) {
		p.notes = append(p.notes, fmt.Sprintf("warning: %s: its entry layout changed (%d-byte keys and %d-byte entries, now %d and %d); recreated it empty, so connections count as new again until their next packets%s",
			l.tableName(), p.old[assured].KeySize(), p.old[assured].ValueSize(), specs[assured].KeySize, specs[assured].ValueSize, stay))
		return p, p.create(specs)
	}
	fits := func(i int) error { return compatible(p.old[i], specs[i]) }
	if fits(assured) == nil && fits(unassured) == nil {
		p.cur = p.old
		return p, nil
	}
	onlyCapacity := func(i int) bool {
		return p.old[i].Type() == specs[i].Type && p.old[i].Flags() == specs[i].Flags
	}
	if len(others) > 0 && onlyCapacity(assured) && onlyCapacity(unassured) {
		for i := range specs {
			specs[i].MaxEntries = p.old[i].MaxEntries()
		}
		p.cur = p.old
		p.notes = append(p.notes, fmt.Sprintf("warning: %s is shared with %s: kept its capacity (assured %d, unassured %d) rather than split it; apply them with the same conntrack settings, or detach them, to resize it",
			l.tableName(), strings.Join(others, ", "), p.old[assured].MaxEntries(), p.old[unassured].MaxEntries()))
		return p, nil
	}
	if err := p.create(specs); err != nil {
		return nil, err
	}
	p.migrate = true
	n, err := copyLive(p.old, p.cur, false)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("migrate %s: %w", l.tableName(), err)
	}
	what := []string{}
	for i, name := range tableMapNames {
		if err := fits(i); err != nil {
			what = append(what, fmt.Sprintf("%s %v", name, err))
		}
	}
	p.notes = append(p.notes, fmt.Sprintf("%s: map layout changed (%s); recreated it and copied %s%s",
		l.tableName(), strings.Join(what, "; "), n, stay))
	return p, nil
}

// otherTrackers names the interfaces of the namespace, not among
// bindings, whose programs track connections.
func otherTrackers(l layout, bindings []artifact.InterfaceBinding) ([]string, error) {
	recs, err := records(l)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range recs {
		if r.Netns != l.netns || r.Egress == nil || slices.ContainsFunc(bindings, func(b artifact.InterfaceBinding) bool { return b.Name == r.Interface }) {
			continue
		}
		names = append(names, r.Interface)
	}
	return names, nil
}

// create makes new maps for the table from the artifact's specs.
func (p *tablePlan) create(specs [2]*ebpf.MapSpec) error {
	for i, s := range specs {
		s = s.Copy()
		s.Pinning = ebpf.PinNone
		nm, err := ebpf.NewMap(s)
		if err != nil {
			p.close()
			return fmt.Errorf("create %s: map %s: %w", p.l.tableName(), s.Name, err)
		}
		p.cur[i] = nm
	}
	p.fresh = true
	return nil
}

// commit makes the table the programs now use the namespace's: pins new
// maps and records them. After a migration it waits until no program
// can be writing in the old maps and copies the entries they made since
// the first copy. Then it removes the dead entries.
func (p *tablePlan) commit() error {
	if p == nil {
		return nil
	}
	if p.fresh {
		for i, name := range tableMapNames {
			if err := pinReplace(p.cur[i], p.l.tablePin(name)); err != nil {
				return err
			}
		}
	}
	rec := tableRecord{Layout: p.layout}
	for i, tm := range rec.maps() {
		id, err := mapID(p.cur[i])
		if err != nil {
			return fmt.Errorf("%s: %w", p.l.tableName(), err)
		}
		tm.MapID, tm.MaxEntries = id, p.cur[i].MaxEntries()
	}
	if err := writeJSON(p.l.tableRecordFile(), rec); err != nil {
		return err
	}
	if p.migrate {
		// The previous programs run on other CPUs until an RCU grace
		// period after their replace; after that the old maps change no
		// more. Entries they made meanwhile are copied when new maps lack
		// them (an entry the new programs made is newer).
		if err := synchronizeRCU(); err != nil {
			time.Sleep(time.Second)
		}
		if _, err := copyLive(p.old, p.cur, true); err != nil {
			return fmt.Errorf("migrate %s: %w", p.l.tableName(), err)
		}
	}
	if _, err := removeDead(p.cur); err != nil {
		return fmt.Errorf("%s: %w", p.l.tableName(), err)
	}
	return nil
}

func (p *tablePlan) close() {
	if p == nil {
		return
	}
	for i := range p.old {
		if p.old[i] != nil {
			p.old[i].Close()
		}
		if p.fresh && p.cur[i] != nil {
			p.cur[i].Close()
		}
	}
}

// copied counts what a migration copied.
type copied struct {
	live, dead, overflow, lost int
}

func (c copied) String() string {
	s := count(c.live, "live entry", "live entries")
	var more []string
	if c.dead > 0 {
		more = append(more, fmt.Sprintf("%s dropped", count(c.dead, "dead one", "dead ones")))
	}
	if c.overflow > 0 {
		more = append(more, fmt.Sprintf("%d assured in the unassured map, the assured one being full", c.overflow))
	}
	if c.lost > 0 {
		more = append(more, fmt.Sprintf("%d did not fit", c.lost))
	}
	if len(more) > 0 {
		s += " (" + strings.Join(more, ", ") + ")"
	}
	return s
}

// copyLive copies the live entries of from into to, map by map; with
// onlyMissing, only those to lacks. Into the assured map the entries that
// expire last go first; when it is full the others go into the unassured
// map, as the datapath keeps a connection there while the assured map is
// full. Into the unassured map (an LRU) those that expire first go first,
// so that they are the ones it evicts when it is too small.
func copyLive(from, to [2]*ebpf.Map, onlyMissing bool) (copied, error) {
	var c copied
	now := monotonicNow()
	var flows [2][]rawEntry
	for i := range from {
		es, err := readRaw(from[i])
		if err != nil {
			return c, err
		}
		for _, e := range es {
			if e.entry.Expires <= now {
				c.dead++
				continue
			}
			flows[i] = append(flows[i], e)
		}
	}
	flag := ebpf.UpdateAny
	if onlyMissing {
		flag = ebpf.UpdateNoExist
	}
	slices.SortFunc(flows[assured], func(a, b rawEntry) int { return cmp.Compare(b.entry.Expires, a.entry.Expires) })
	rest := flows[unassured]
	for _, e := range flows[assured] {
		err := to[assured].Update(e.key, e.value, flag)
		switch {
		case err == nil:
			c.live++
		case errors.Is(err, ebpf.ErrKeyExist):
		case errors.Is(err, unix.E2BIG):
			e.spilled = true
			rest = append(rest, e)
		default:
			return c, fmt.Errorf("copy into %s: %w", to[assured], err)
		}
	}
	slices.SortFunc(rest, func(a, b rawEntry) int { return cmp.Compare(a.entry.Expires, b.entry.Expires) })
	put := 0
	for _, e := range rest {
		err := to[unassured].Update(e.key, e.value, flag)
		switch {
		case err == nil:
			put++
			if e.spilled {
				c.overflow++
			}
		case errors.Is(err, ebpf.ErrKeyExist):
		case errors.Is(err, unix.E2BIG):
			c.lost++
		default:
			return c, fmt.Errorf("copy into %s: %w", to[unassured], err)
		}
	}
	if !onlyMissing {
		// An LRU map takes every entry, evicting older ones when full:
		// what it holds now is what fitted.
		n, err := countEntries(to[unassured])
		if err != nil {
			return c, err
		}
		if n < put {
			c.lost += put - n
			put = n
		}
	}
	c.live += put
	return c, nil
}

// gcTables removes the connection table of every namespace where no
// recorded interface runs a program that tracks any more.
func gcTables(l layout) error {
	recs, err := records(l)
	if err != nil {
		return err
	}
	inUse := map[string]bool{}
	for _, r := range recs {
		if r.Egress != nil {
			inUse[r.Netns] = true
		}
	}
	var errs []error
	for _, parent := range []string{filepath.Join(l.pinRoot, "conntrack"), filepath.Join(l.stateDir, "conntrack")} {
		entries, err := os.ReadDir(parent)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list connection tables: %w", err)
		}
		for _, e := range entries {
			if inUse[e.Name()] {
				continue
			}
			if err := os.RemoveAll(filepath.Join(parent, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("remove the connection table of %s: %w", e.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// ConntrackTable is a network namespace's pinned connection table.
type ConntrackTable struct {
	// Netns names the namespace, "host" for the caller's.
	Netns              string
	Assured, Unassured *ebpf.Map
}

// OpenConntrack opens the connection table of opts.Netns (the caller's
// namespace when ""); ErrNoConntrack when it has none.
func OpenConntrack(opts Options) (*ConntrackTable, error) {
	l := opts.layout()
	if err := checkNetns(l); err != nil {
		return nil, err
	}
	return openTable(l)
}

func openTable(l layout) (*ConntrackTable, error) {
	t := &ConntrackTable{Netns: l.netns}
	for i, name := range tableMapNames {
		m, err := ebpf.LoadPinnedMap(l.tablePin(name), nil)
		if errors.Is(err, os.ErrNotExist) {
			t.Close()
			where := "in this network namespace"
			if l.nsName != "" {
				where = "in network namespace " + l.nsName
			}
			return nil, fmt.Errorf("%w %s: no xdpc program there tracks connections", ErrNoConntrack, where)
		}
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("open %s: %w", l.tableName(), err)
		}
		if i == assured {
			t.Assured = m
		} else {
			t.Unassured = m
		}
	}
	return t, nil
}

func (t *ConntrackTable) maps() [2]*ebpf.Map { return [2]*ebpf.Map{t.Assured, t.Unassured} }

// Flows returns the live entries (ReadConntrack) and the kernel's time.
func (t *ConntrackTable) Flows() ([]ConntrackFlow, uint64, error) {
	return ReadConntrack(t.Assured, t.Unassured)
}

// Age makes every entry older by d (AgeConntrack).
func (t *ConntrackTable) Age(d time.Duration) error {
	return AgeConntrack(d, t.Assured, t.Unassured)
}

// RemoveDead deletes the entries whose time is up and says how many went.
func (t *ConntrackTable) RemoveDead() (int, error) { return removeDead(t.maps()) }

// Close releases the maps (the table stays pinned).
func (t *ConntrackTable) Close() {
	for _, m := range t.maps() {
		if m != nil {
			m.Close()
		}
	}
}

// TableFill is how full a connection table's maps are.
type TableFill struct {
	Assured, Unassured MapFill
}

// MapFill is how many entries a map holds, dead ones not yet removed
// included, of how many it has room for.
type MapFill struct {
	Entries    int    `json:"entries"`
	MaxEntries uint32 `json:"max_entries"`
}

// Fill counts the entries of both maps.
func (t *ConntrackTable) Fill() (TableFill, error) {
	var f TableFill
	for i, m := range t.maps() {
		n, err := countEntries(m)
		if err != nil {
			return f, fmt.Errorf("count entries of %s: %w", m, err)
		}
		mf := MapFill{Entries: n, MaxEntries: m.MaxEntries()}
		if i == assured {
			f.Assured = mf
		} else {
			f.Unassured = mf
		}
	}
	return f, nil
}

// ConntrackListing is what ListConntrack read.
type ConntrackListing struct {
	Netns string
	// Now is the kernel's monotonic time the flows were read at.
	Now   uint64
	Flows []ConntrackFlow
	Fill  TableFill
	// NAT is the fill of the NAT map, nil when the namespace has no NAT
	// table.
	NAT *MapFill
	// Removed is how many dead entries were removed first.
	Removed int
}

// ListConntrack removes the dead entries of the connection table of
// opts.Netns (and dead aliases of its NAT map) and returns its live ones
// and its fill. It takes no lock.
func ListConntrack(opts Options) (*ConntrackListing, error) {
	t, err := OpenConntrack(opts)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	out := &ConntrackListing{Netns: t.Netns}
	if out.Removed, err = t.RemoveDead(); err != nil {
		return nil, err
	}
	if out.Flows, out.Now, err = t.Flows(); err != nil {
		return nil, err
	}
	if out.Fill, err = t.Fill(); err != nil {
		return nil, err
	}
	nt, err := openNAT(opts.layout())
	if errors.Is(err, ErrNoNAT) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer nt.Close()
	if _, err := removeDeadAliases(nt.Aliases); err != nil {
		return nil, err
	}
	n, err := countEntries(nt.Aliases)
	if err != nil {
		return nil, fmt.Errorf("count entries of %s: %w", nt.Aliases, err)
	}
	out.NAT = &MapFill{Entries: n, MaxEntries: nt.Aliases.MaxEntries()}
	return out, nil
}

// ConntrackFlush is what FlushConntrack removed.
type ConntrackFlush struct {
	Netns string
	// Assured and Unassured count the entries removed from each map,
	// Dead those among them whose time was up.
	Assured, Unassured, Dead int
	// NAT says the namespace has a NAT table; Aliases and Fragments
	// count what was removed from its NAT and fragment maps.
	NAT                bool
	Aliases, Fragments int
}

// FlushConntrack empties the connection table of opts.Netns, and the NAT
// and fragment maps of its NAT table, under the lock. Programs go on tracking while it does: an entry they make during
// the flush may stay.
func FlushConntrack(opts Options) (*ConntrackFlush, error) {
	l := opts.layout()
	if err := checkNetns(l); err != nil {
		return nil, err
	}
	lock, err := acquireLock(l)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	t, err := openTable(l)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	out := &ConntrackFlush{Netns: t.Netns}
	now := monotonicNow()
	for i, m := range t.maps() {
		es, err := readRaw(m)
		if err != nil {
			return out, err
		}
		for _, e := range es {
			if err := m.Delete(e.key); err != nil {
				if errors.Is(err, ebpf.ErrKeyNotExist) {
					continue
				}
				return out, fmt.Errorf("flush %s: %w", l.tableName(), err)
			}
			if e.entry.Expires <= now {
				out.Dead++
			}
			if i == assured {
				out.Assured++
			} else {
				out.Unassured++
			}
		}
	}
	// The flows are gone: so are their translations.
	nt, err := openNAT(l)
	if errors.Is(err, ErrNoNAT) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	defer nt.Close()
	out.NAT = true
	if out.Aliases, err = flushMap(nt.Aliases); err != nil {
		return out, err
	}
	if out.Fragments, err = flushMap(nt.Fragments); err != nil {
		return out, err
	}
	return out, nil
}
