package nat

import (
	"net/netip"
	"sort"

	"github.com/xdpc/xdpc/conntrack"
)

// protoICMP is ICMP's protocol number: its flows are echoes, whose
// identifier is both ports.
const protoICMP = 1

// FragUntranslated is a fragment record's Which when its first fragment
// was not translated: its later fragments pass as they are.
const FragUntranslated = 0

// Reserved is a port that masquerade never allocates: the port of a
// listening socket of the host, for its protocol.
type Reserved struct {
	Proto uint8
	Port  uint16
}

// Translation is how a translated flow is rewritten: the NAT fields of
// its connection-table entry (conntrack.Entry.NAT, NATLo, NATAddr,
// NATPort). The rewritten end is the key's Lo endpoint when Lo; To is
// what it becomes on the other side of the translation.
type Translation struct {
	Kind conntrack.NATKind
	Lo   bool
	To   conntrack.Endpoint
}

// TranslationOf reads the translation an entry records.
func TranslationOf(e conntrack.Entry) Translation {
	return Translation{Kind: e.NAT, Lo: e.NATLo, To: conntrack.Endpoint{Addr: netip.AddrFrom4(e.NATAddr), Port: e.NATPort}}
}

// Record writes t into entry e's NAT fields.
func (t Translation) Record(e *conntrack.Entry) {
	e.NAT, e.NATLo, e.NATPort = t.Kind, t.Lo, t.To.Port
	e.NATAddr = [4]byte{}
	if t.To.Addr.Is4() {
		e.NATAddr = t.To.Addr.As4()
	}
}

// Rewritten returns the rewritten end of flow k as it first arrived.
func (t Translation) Rewritten(k conntrack.Key) conntrack.Endpoint {
	if t.Lo {
		return k.Lo
	}
	return k.Hi
}

// AliasKey returns the translated tuple of flow k: its key with the
// rewritten end replaced by To. An echo's identifier is both its ports,
// so the other end's port becomes To's port too.
func (t Translation) AliasKey(k conntrack.Key) conntrack.Key {
	other := k.Hi
	if !t.Lo {
		other = k.Lo
	}
	if k.Proto == protoICMP {
		other.Port = t.To.Port
	}
	ak, _ := conntrack.NewKey(k.Family, k.Proto, t.To, other)
	return ak
}

// Alias returns the alias of flow k under t, expiring at expires.
func (t Translation) Alias(k conntrack.Key, expires uint64) (conntrack.Key, Alias) {
	ak := t.AliasKey(k)
	orig := t.Rewritten(k)
	return ak, Alias{Expires: expires, OrigAddr: orig.Addr, OrigPort: orig.Port, Kind: t.Kind, Lo: ak.Lo == t.To}
}

// FlowKey returns the key of the flow alias a of translated tuple ak
// stands for: ak with the translated end replaced by the original one
// (both ports, for an echo).
func FlowKey(ak conntrack.Key, a Alias) conntrack.Key {
	other := ak.Hi
	if !a.Lo {
		other = ak.Lo
	}
	if ak.Proto == protoICMP {
		other.Port = a.OrigPort
	}
	k, _ := conntrack.NewKey(ak.Family, ak.Proto, conntrack.Endpoint{Addr: a.OrigAddr, Port: a.OrigPort}, other)
	return k
}

// Table is the NAT state of a network namespace as the reference
// evaluator keeps it beside the connection table: the translations of
// translated flows (their entries' NAT fields), the NAT map of aliases,
// the fragment map, the reserved ports and the seed. Unlike the
// datapath's maps its room is unbounded: the fragment map never evicts.
type Table struct {
	Seed         uint32
	reserved     map[Reserved]bool
	translations map[conntrack.Key]Translation
	aliases      map[conntrack.Key]Alias
	frags        map[FragKey]Frag
}

// NewTable returns an empty NAT table with seed and the reserved ports.
func NewTable(seed uint32, reserved []Reserved) *Table {
	t := &Table{
		Seed:         seed,
		reserved:     map[Reserved]bool{},
		translations: map[conntrack.Key]Translation{},
		aliases:      map[conntrack.Key]Alias{},
		frags:        map[FragKey]Frag{},
	}
	for _, r := range reserved {
		t.reserved[r] = true
	}
	return t
}

// IsReserved reports whether port of proto is reserved.
func (t *Table) IsReserved(proto uint8, port uint16) bool { return t.reserved[Reserved{proto, port}] }

// Translation returns the translation recorded for flow k.
func (t *Table) Translation(k conntrack.Key) (Translation, bool) {
	tr, ok := t.translations[k]
	return tr, ok
}

// Alias returns the live alias of translated tuple ak at time now.
func (t *Table) Alias(ak conntrack.Key, now uint64) (Alias, bool) {
	a, ok := t.aliases[ak]
	if !ok || !a.Live(now) {
		return Alias{}, false
	}
	return a, true
}

// Translate records that flow k is translated by tr, with an alias
// expiring at expires, replacing what k had.
func (t *Table) Translate(k conntrack.Key, tr Translation, expires uint64) {
	t.Forget(k)
	t.translations[k] = tr
	ak, a := tr.Alias(k, expires)
	t.aliases[ak] = a
}

// Refresh moves the expiry of flow k's alias to expires, with its entry's.
func (t *Table) Refresh(k conntrack.Key, expires uint64) {
	tr, ok := t.translations[k]
	if !ok {
		return
	}
	ak := tr.AliasKey(k)
	if a, ok := t.aliases[ak]; ok {
		a.Expires = expires
		t.aliases[ak] = a
	}
}

// Forget removes flow k's translation and its alias: its entry was
// replaced.
func (t *Table) Forget(k conntrack.Key) {
	tr, ok := t.translations[k]
	if !ok {
		return
	}
	ak := tr.AliasKey(k)
	if a, ok := t.aliases[ak]; ok && FlowKey(ak, a) == k {
		delete(t.aliases, ak)
	}
	delete(t.translations, k)
}

// Taken reports whether translated tuple ak has a live alias at time now
// of a flow other than k (a reopened flow's own alias does not count).
func (t *Table) Taken(ak, k conntrack.Key, now uint64) bool {
	a, ok := t.Alias(ak, now)
	return ok && FlowKey(ak, a) != k
}

// Allocate returns the port of a new masqueraded flow k from src to dst
// leaving with source to and a port from r (docs/nat.md, "Port
// allocation"): not reserved, and its translated tuple with no live alias.
func (t *Table) Allocate(r Ports, to netip.Addr, k conntrack.Key, src, dst conntrack.Endpoint, now uint64) (uint16, bool) {
	h := Hash(t.Seed, src.Addr, dst.Addr, src.Port, dst.Port, k.Proto)
	return Allocate(r, src.Port, h, func(p uint16) bool {
		if t.IsReserved(k.Proto, p) {
			return true
		}
		remote := dst
		if k.Proto == protoICMP {
			remote.Port = p
		}
		ak, _ := conntrack.NewKey(k.Family, k.Proto, conntrack.Endpoint{Addr: to, Port: p}, remote)
		return t.Taken(ak, k, now)
	})
}

// Fragment returns the record of the first fragment of key k.
func (t *Table) Fragment(k FragKey) (Frag, bool) {
	f, ok := t.frags[k]
	return f, ok
}

// RememberFragment records what the later fragments of key k get.
func (t *Table) RememberFragment(k FragKey, f Frag) { t.frags[k] = f }

// AliasEntry is one alias of the NAT map.
type AliasEntry struct {
	Key   conntrack.Key
	Alias Alias
}

// Aliases returns the live aliases at time now, sorted by key.
func (t *Table) Aliases(now uint64) []AliasEntry {
	var out []AliasEntry
	for k, a := range t.aliases {
		if a.Live(now) {
			out = append(out, AliasEntry{k, a})
		}
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].Key.Encode()) < string(out[j].Key.Encode()) })
	return out
}

// FragEntry is one record of the fragment map.
type FragEntry struct {
	Key  FragKey
	Frag Frag
}

// Fragments returns the fragment records, sorted by key.
func (t *Table) Fragments() []FragEntry {
	var out []FragEntry
	for k, f := range t.frags {
		out = append(out, FragEntry{k, f})
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].Key.Encode()) < string(out[j].Key.Encode()) })
	return out
}
