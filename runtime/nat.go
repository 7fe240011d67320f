package runtime

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/nat"
)

// A network namespace's NAT table (docs/nat.md "Data layout") is four
// maps pinned beside its connection table, at
// PINROOT/conntrack/NETNS/{nat,nat_fragments,nat_settings,nat_reserved}:
// the NAT map of aliases, the fragment map, the settings (the port
// allocation's seed) and the reserved ports. Every artifact with NAT gets
// them in place of its own, as it gets the connection table; they follow
// the table's keep and migrate rules, and go with it. The NAT map has
// room for one alias per entry of the table: the capacity of its assured
// and unassured maps together.

// The NAT maps, as indexes into natMapNames.
const (
	natAlias = iota
	natFragments
	natSettings
	natReserved
)

// natMapNames are the NAT maps' pin names in the table's directory.
var natMapNames = [4]string{"nat", "nat_fragments", "nat_settings", "nat_reserved"}

// natKinds are the NAT maps' kinds, by index.
var natKinds = [4]artifact.MapKind{artifact.MapNATAlias, artifact.MapNATFragments, artifact.MapNATSettings, artifact.MapNATReserved}

// ErrNoNAT is returned by OpenNAT for a network namespace without a NAT
// table: no xdpc program there translates.
var ErrNoNAT = errors.New("no NAT table")

// natPlan is what one apply does with the namespace's NAT table.
type natPlan struct {
	l     layout
	names [4]string // the maps' names in the artifact
	old   [4]*ebpf.Map
	cur   [4]*ebpf.Map
	// fresh says which of cur are new maps, pinned by commit.
	fresh [4]bool
	// migrate: the new NAT map holds copies of the old one's live
	// aliases; commit copies those old programs made meanwhile.
	migrate bool
	// Seed is the port allocation's seed the table has.
	seed  uint32
	notes []string
}

// natTableName names the NAT table in notes.
func (l layout) natTableName() string {
	if l.netns == hostNetns {
		return "the NAT table"
	}
	return "the NAT table of network namespace " + l.netns
}

// planNAT opens the namespace's NAT table for an artifact with NAT, after
// planTable decided on the connection table, and decides what its
// programs use. The NAT map is kept, migrated or recreated as the table
// is (recreated empty when the table is: its aliases lead nowhere then);
// the fragment and reserved-port maps are kept when they fit, else
// recreated; the settings are kept, or recreated holding the same seed.
// A new table gets a seed from crypto/rand. It returns nil for an
// artifact without NAT.
func planNAT(l layout, spec *ebpf.CollectionSpec, m *artifact.Manifest, table *tablePlan) (*natPlan, error) {
	if m.NAT == nil {
		return nil, nil
	}
	if table == nil {
		return nil, fmt.Errorf("NAT maps without a connection table: translated flows are tracked")
	}
	p := &natPlan{l: l, names: [4]string{m.NAT.Alias, m.NAT.Fragments, m.NAT.Settings, m.NAT.Reserved}}
	var specs [4]*ebpf.MapSpec
	for i, name := range p.names {
		s := spec.Maps[name]
		if s == nil {
			return nil, fmt.Errorf("NAT: the artifact has no map %q (%s)", name, natKinds[i])
		}
		specs[i] = s
	}
	// One alias per entry of the table; the artifact is made to fit.
	specs[natAlias].MaxEntries = table.cur[assured].MaxEntries() + table.cur[unassured].MaxEntries()

	for i, name := range natMapNames {
		om, err := ebpf.LoadPinnedMap(l.tablePin(name), nil)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			p.close()
			return nil, fmt.Errorf("open %s: %w", l.natTableName(), err)
		}
		p.old[i] = om
	}
	// The seed stays with the table: read it before deciding anything.
	haveSeed := false
	if s := p.old[natSettings]; s != nil && s.KeySize() == 4 && s.ValueSize() == 4 {
		var v uint32
		if err := s.Lookup(uint32(0), &v); err == nil {
			p.seed, haveSeed = v, true
		}
	}
	if !haveSeed {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			p.close()
			return nil, fmt.Errorf("draw the NAT seed: %w", err)
		}
		p.seed = binary.LittleEndian.Uint32(b[:])
	}

	// A connection table made anew holds no flow an alias could lead to.
	tableReset := table.fresh && !table.migrate
	for i := range specs {
		old := p.old[i]
		switch {
		case old != nil && compatible(old, specs[i]) == nil && !(i == natAlias && tableReset):
			p.cur[i] = old
			continue
		case i == natAlias && old != nil && tableReset:
			if table.old[assured] != nil {
				p.notes = append(p.notes, fmt.Sprintf("%s: recreated its NAT map empty with the connection table; translated flows start again", l.natTableName()))
			}
		case i == natAlias && old != nil && old.KeySize() == specs[i].KeySize && old.ValueSize() == specs[i].ValueSize:
			p.migrate = true
		case old != nil && i != natSettings:
			p.notes = append(p.notes, fmt.Sprintf("%s: recreated map %s (%v)", l.natTableName(), natMapNames[i], compatible(old, specs[i])))
		}
		if err := p.create(i, specs[i]); err != nil {
			return nil, err
		}
	}
	if p.fresh[natSettings] {
		if err := p.cur[natSettings].Put(uint32(0), p.seed); err != nil {
			p.close()
			return nil, fmt.Errorf("%s: write the seed: %w", l.natTableName(), err)
		}
	}
	if p.migrate {
		n, err := copyAliases(p.old[natAlias], p.cur[natAlias], false)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("migrate %s: %w", l.natTableName(), err)
		}
		p.notes = append(p.notes, fmt.Sprintf("%s: NAT map resized to %d; copied %s", l.natTableName(), p.cur[natAlias].MaxEntries(), count(n, "live alias", "live aliases")))
	}
	return p, nil
}

// create makes a new map i from the artifact's spec.
func (p *natPlan) create(i int, s *ebpf.MapSpec) error {
	s = s.Copy()
	s.Pinning = ebpf.PinNone
	nm, err := ebpf.NewMap(s)
	if err != nil {
		p.close()
		return fmt.Errorf("create %s: map %s: %w", p.l.natTableName(), s.Name, err)
	}
	p.cur[i], p.fresh[i] = nm, true
	return nil
}

// replacements are the maps the collection takes instead of its own.
func (p *natPlan) replacements() map[string]*ebpf.Map {
	if p == nil {
		return nil
	}
	r := map[string]*ebpf.Map{}
	for i, name := range p.names {
		r[name] = p.cur[i]
	}
	return r
}

// commit pins the new maps. After a migration it copies the aliases the
// previous programs made since the first copy (planTable's commit has
// waited for them to stop), then removes the dead aliases.
func (p *natPlan) commit() error {
	if p == nil {
		return nil
	}
	for i, name := range natMapNames {
		if p.fresh[i] {
			if err := pinReplace(p.cur[i], p.l.tablePin(name)); err != nil {
				return err
			}
		}
	}
	if p.migrate {
		if err := synchronizeRCU(); err != nil {
			time.Sleep(time.Second)
		}
		if _, err := copyAliases(p.old[natAlias], p.cur[natAlias], true); err != nil {
			return fmt.Errorf("migrate %s: %w", p.l.natTableName(), err)
		}
	}
	if _, err := removeDeadAliases(p.cur[natAlias]); err != nil {
		return fmt.Errorf("%s: %w", p.l.natTableName(), err)
	}
	return nil
}

func (p *natPlan) close() {
	if p == nil {
		return
	}
	for i := range p.old {
		if p.old[i] != nil {
			p.old[i].Close()
		}
		if p.fresh[i] && p.cur[i] != nil {
			p.cur[i].Close()
		}
	}
}

// aliasEntry is one alias of a NAT map, as stored.
type aliasEntry struct {
	key   []byte
	alias nat.Alias
	value []byte
}

func readAliases(m *ebpf.Map) ([]aliasEntry, error) {
	var out []aliasEntry
	key, value := make([]byte, m.KeySize()), make([]byte, m.ValueSize())
	it := m.Iterate()
	for it.Next(&key, &value) {
		a, err := nat.DecodeAlias(value)
		if err != nil {
			return nil, fmt.Errorf("read NAT map %s: %w", m, err)
		}
		out = append(out, aliasEntry{slices.Clone(key), a, slices.Clone(value)})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read NAT map %s: %w", m, err)
	}
	return out, nil
}

// copyAliases copies the live aliases of from into to; with onlyMissing,
// those to lacks. Aliases that do not fit are left behind: their flows
// translate no more replies.
func copyAliases(from, to *ebpf.Map, onlyMissing bool) (int, error) {
	as, err := readAliases(from)
	if err != nil {
		return 0, err
	}
	flag := ebpf.UpdateAny
	if onlyMissing {
		flag = ebpf.UpdateNoExist
	}
	now, n := monotonicNow(), 0
	for _, a := range as {
		if !a.alias.Live(now) {
			continue
		}
		switch err := to.Update(a.key, a.value, flag); {
		case err == nil:
			n++
		case errors.Is(err, ebpf.ErrKeyExist):
		case errors.Is(err, unix.E2BIG):
		default:
			return n, fmt.Errorf("copy into %s: %w", to, err)
		}
	}
	return n, nil
}

// removeDeadAliases deletes the aliases whose time is up.
func removeDeadAliases(m *ebpf.Map) (int, error) {
	as, err := readAliases(m)
	if err != nil {
		return 0, err
	}
	now, n := monotonicNow(), 0
	for _, a := range as {
		if a.alias.Live(now) {
			continue
		}
		if err := m.Delete(a.key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return n, fmt.Errorf("remove dead alias: %w", err)
		}
		n++
	}
	return n, nil
}

// NATTable is a network namespace's pinned NAT table.
type NATTable struct {
	Netns string
	// Aliases is the NAT map, Fragments the fragment map, Settings the
	// settings array, Reserved the reserved ports.
	Aliases, Fragments, Settings, Reserved *ebpf.Map
}

// OpenNAT opens the NAT table of opts.Netns; ErrNoNAT when it has none.
func OpenNAT(opts Options) (*NATTable, error) {
	l := opts.layout()
	if err := checkNetns(l); err != nil {
		return nil, err
	}
	return openNAT(l)
}

func openNAT(l layout) (*NATTable, error) {
	t := &NATTable{Netns: l.netns}
	ptrs := [4]**ebpf.Map{&t.Aliases, &t.Fragments, &t.Settings, &t.Reserved}
	for i, name := range natMapNames {
		m, err := ebpf.LoadPinnedMap(l.tablePin(name), nil)
		if errors.Is(err, os.ErrNotExist) {
			t.Close()
			return nil, fmt.Errorf("%w in %s", ErrNoNAT, l.netnsPhrase())
		}
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("open %s: %w", l.natTableName(), err)
		}
		*ptrs[i] = m
	}
	return t, nil
}

// netnsPhrase names the namespace in a sentence.
func (l layout) netnsPhrase() string {
	if l.nsName != "" {
		return "network namespace " + l.nsName
	}
	return "this network namespace"
}

// Seed is the port allocation's seed (settings entry 0).
func (t *NATTable) Seed() (uint32, error) {
	var v uint32
	if err := t.Settings.Lookup(uint32(0), &v); err != nil {
		return 0, fmt.Errorf("read the NAT seed: %w", err)
	}
	return v, nil
}

// LiveAliases returns the live aliases of the NAT map, by encoded key.
func (t *NATTable) LiveAliases() (map[string]nat.Alias, error) {
	as, err := readAliases(t.Aliases)
	if err != nil {
		return nil, err
	}
	now := monotonicNow()
	out := map[string]nat.Alias{}
	for _, a := range as {
		if a.alias.Live(now) {
			out[string(a.key)] = a.alias
		}
	}
	return out, nil
}

// Close releases the maps (they stay pinned).
func (t *NATTable) Close() {
	for _, m := range []*ebpf.Map{t.Aliases, t.Fragments, t.Settings, t.Reserved} {
		if m != nil {
			m.Close()
		}
	}
}

// flushMap deletes every entry of m and says how many went.
func flushMap(m *ebpf.Map) (int, error) {
	var keys [][]byte
	key, value := make([]byte, m.KeySize()), make([]byte, m.ValueSize())
	it := m.Iterate()
	for it.Next(&key, &value) {
		keys = append(keys, slices.Clone(key))
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", m, err)
	}
	n := 0
	for _, k := range keys {
		if err := m.Delete(k); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				continue
			}
			return n, fmt.Errorf("flush %s: %w", m, err)
		}
		n++
	}
	return n, nil
}

// removeNAT unpins the NAT table of the namespace when it has one and no
// interface there plays a part in NAT any more.
func removeNAT(l layout, recs []Attachment) error {
	for _, r := range recs {
		if r.Netns == l.netns && r.NAT != "" {
			return nil
		}
	}
	var errs []error
	for _, name := range natMapNames {
		if err := os.Remove(l.tablePin(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", l.natTableName(), err))
		}
	}
	return errors.Join(errs...)
}

// tidyNAT gives the host back what NAT took in the namespace once no
// interface there plays a part in NAT: the sysctls apply changed, and
// the NAT table (the connection table may stay for other programs).
func tidyNAT(l layout) ([]string, error) {
	recs, err := records(l)
	if err != nil {
		return nil, err
	}
	notes, err := restoreSysctls(l, recs)
	return notes, errors.Join(err, removeNAT(l, recs))
}
