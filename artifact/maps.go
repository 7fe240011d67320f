package artifact

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/nat"
)

// MapKind is a kind of map xdpc programs use: what it holds, its BPF map
// type, its key and value layouts and whether it outlives an apply. Every
// layout fact lives in the kinds table below: the compiler makes its map
// blueprints from it (MapKind.Map), Read checks an object's maps against
// it, and the runtime reads keys and values by it. A new kind of map
// (connection tracking, NAT bindings, rate-limit buckets, a ring buffer, a
// classifier table) is one constant and one row.
type MapKind uint8

const (
	// MapCounters is the per-CPU array of counters: key u32 slot
	// (CounterTable), value Counter.
	MapCounters MapKind = iota + 1
	// MapCIDRv4 holds the IPv4 prefixes of a cidr set: an LPM trie keyed
	// by struct { prefixlen u32; addr [4]u8 } (LPMKey), value u8 1.
	MapCIDRv4
	// MapCIDRv6 holds the IPv6 prefixes of a cidr set, IPv4-mapped ones
	// included: an LPM trie keyed by struct { prefixlen u32; addr [16]u8 }.
	MapCIDRv6
	// MapPorts holds a port set: a hash keyed by u16 port in host order,
	// one key per port of every range (PortKey), value u8 1.
	MapPorts
	// MapMACs holds a mac set: a hash keyed by the six address bytes
	// (MACKey), value u8 1.
	MapMACs
	// MapRedirect is the device map of redirect targets: key u32 (the
	// RedirectTarget key), value u32 interface index.
	MapRedirect
	// MapCTAssured is the connection table's map of assured connections
	// (docs/conntrack.md): a hash keyed by struct ct_key
	// (conntrack.Key.Encode), value struct ct_entry (conntrack.Entry).
	// Nothing evicts its entries.
	MapCTAssured
	// MapCTUnassured is the connection table's map of new, unreplied and
	// closing flows: an LRU hash with the same key and value, which the
	// kernel evicts from under a flood.
	MapCTUnassured
	// MapNATAlias is the NAT map (docs/nat.md): a hash keyed by the
	// struct ct_key of a translated tuple, value struct nat_alias
	// (nat.Alias): the endpoint the translated one stands for.
	MapNATAlias
	// MapNATFragments remembers the translation of first fragments for
	// their later ones: an LRU hash keyed by struct nat_frag_key
	// (nat.FragKey), value struct nat_frag (nat.Frag).
	MapNATFragments
	// MapNATSettings holds the NAT table's settings: an array of one
	// entry, u32 seed of the port search (nat.Hash).
	MapNATSettings
	// MapNATReserved holds the ports masquerade never allocates: a hash
	// keyed by struct nat_reserved (nat.ReservedKey), value u8 1.
	MapNATReserved
)

// Keep says whether a kind's maps outlive an apply: pinned by the runtime
// and handed to the next apply of the same policy when their layout still
// fits, so their contents survive a program change.
type Keep uint8

const (
	// KeepNever maps are made afresh by every load and filled from the
	// manifest.
	KeepNever Keep = iota
	// KeepAlways maps are kept (the counters: counts carry over).
	KeepAlways
	// KeepDynamic maps are kept when the set they hold is dynamic, so
	// elements added at run time survive; a static set's are made afresh.
	KeepDynamic
	// KeepShared maps are pinned once per network namespace and shared by
	// every program there, whatever its policy (the connection table).
	KeepShared
)

// MapLayout is what every map of one kind has in common.
type MapLayout struct {
	Type      ebpf.MapType
	KeySize   uint32
	ValueSize uint32
	Flags     uint32
	Keep      Keep
	// key and value build the BTF of the key and value; a fresh type each
	// call, so that no two artifacts share type objects.
	key, value func() btf.Type
}

// Key returns a new BTF type describing the kind's key.
func (l MapLayout) Key() btf.Type { return l.key() }

// Value returns a new BTF type describing the kind's value.
func (l MapLayout) Value() btf.Type { return l.value() }

// MapFlagNoPrealloc is BPF_F_NO_PREALLOC, which the kernel requires of LPM tries.
const MapFlagNoPrealloc = 1

// Counter is the value of one counter slot on one CPU: the packets the
// slot counted and their bytes (frame lengths). The program adds to it
// without atomics, since every CPU has its own.
type Counter struct{ Packets, Bytes uint64 }

// SetMember is the value every key of a set map maps to.
const SetMember uint8 = 1

var (
	counterSize = uint32(binary.Size(Counter{}))
	lpmKeySize4 = uint32(4 + 4)
	lpmKeySize6 = uint32(4 + 16)
)

// kinds is the table of map kinds.
var kinds = [...]struct {
	name   string
	layout MapLayout
}{
	MapCounters: {"counters", MapLayout{
		Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: counterSize, Keep: KeepAlways,
		key: btfU32, value: btfCounter,
	}},
	MapCIDRv4: {"cidr-v4", MapLayout{
		Type: ebpf.LPMTrie, KeySize: lpmKeySize4, ValueSize: 1, Flags: MapFlagNoPrealloc, Keep: KeepDynamic,
		key: func() btf.Type { return btfLPMKey(4) }, value: btfU8,
	}},
	MapCIDRv6: {"cidr-v6", MapLayout{
		Type: ebpf.LPMTrie, KeySize: lpmKeySize6, ValueSize: 1, Flags: MapFlagNoPrealloc, Keep: KeepDynamic,
		key: func() btf.Type { return btfLPMKey(16) }, value: btfU8,
	}},
	MapPorts: {"ports", MapLayout{
		Type: ebpf.Hash, KeySize: 2, ValueSize: 1, Keep: KeepDynamic,
		key: btfU16, value: btfU8,
	}},
	MapMACs: {"macs", MapLayout{
		Type: ebpf.Hash, KeySize: 6, ValueSize: 1, Keep: KeepDynamic,
		key: func() btf.Type { return btfBytes(6) }, value: btfU8,
	}},
	MapRedirect: {"redirect", MapLayout{
		Type: ebpf.DevMapHash, KeySize: 4, ValueSize: 4, Keep: KeepNever,
		key: btfU32, value: btfU32,
	}},
	MapCTAssured: {"ct-assured", MapLayout{
		Type: ebpf.Hash, KeySize: conntrack.KeySize, ValueSize: conntrack.EntrySize, Keep: KeepShared,
		key: btfCTKey, value: btfCTEntry,
	}},
	MapCTUnassured: {"ct-unassured", MapLayout{
		Type: ebpf.LRUHash, KeySize: conntrack.KeySize, ValueSize: conntrack.EntrySize, Keep: KeepShared,
		key: btfCTKey, value: btfCTEntry,
	}},
	MapNATAlias: {"nat-alias", MapLayout{
		Type: ebpf.Hash, KeySize: conntrack.KeySize, ValueSize: nat.AliasSize, Keep: KeepShared,
		key: btfCTKey, value: btfNATAlias,
	}},
	MapNATFragments: {"nat-fragments", MapLayout{
		Type: ebpf.LRUHash, KeySize: nat.FragKeySize, ValueSize: nat.FragSize, Keep: KeepShared,
		key: btfNATFragKey, value: btfNATFrag,
	}},
	MapNATSettings: {"nat-settings", MapLayout{
		Type: ebpf.Array, KeySize: 4, ValueSize: 4, Keep: KeepShared,
		key: btfU32, value: btfU32,
	}},
	MapNATReserved: {"nat-reserved", MapLayout{
		Type: ebpf.Hash, KeySize: 4, ValueSize: 1, Keep: KeepShared,
		key: btfNATReserved, value: btfU8,
	}},
}

// MapKinds lists every kind, in declaration order.
func MapKinds() []MapKind {
	var out []MapKind
	for k := range kinds {
		if kinds[k].name != "" {
			out = append(out, MapKind(k))
		}
	}
	return out
}

func (k MapKind) known() bool { return int(k) < len(kinds) && kinds[k].name != "" }

// String names the kind: "counters", "cidr-v4", "cidr-v6", "ports",
// "macs", "redirect", "ct-assured", "ct-unassured", "nat-alias",
// "nat-fragments", "nat-settings", "nat-reserved".
func (k MapKind) String() string {
	if k.known() {
		return kinds[k].name
	}
	return fmt.Sprintf("MapKind(%d)", uint8(k))
}

// Layout returns the kind's layout; it panics on an unknown kind, which
// only a bug in xdpc can make.
func (k MapKind) Layout() MapLayout {
	if !k.known() {
		panic(fmt.Sprintf("artifact: no map kind %d", uint8(k)))
	}
	return kinds[k].layout
}

// Map returns the blueprint of a map of kind k with the given name and
// capacity.
func (k MapKind) Map(name string, maxEntries uint32) Map {
	l := k.Layout()
	return Map{
		Name: name, Type: l.Type, KeySize: l.KeySize, ValueSize: l.ValueSize,
		MaxEntries: maxEntries, Flags: l.Flags, Key: l.Key(), Value: l.Value(),
	}
}

// Fits reports why a map of the given type and key and value sizes cannot
// be of kind k; nil when it can.
func (k MapKind) Fits(typ ebpf.MapType, keySize, valueSize uint32) error {
	l := k.Layout()
	if typ != l.Type || keySize != l.KeySize || valueSize != l.ValueSize {
		return fmt.Errorf("%s with %d-byte keys and %d-byte values, want a %s map: %s with %d and %d",
			typ, keySize, valueSize, k, l.Type, l.KeySize, l.ValueSize)
	}
	return nil
}

// Check reports why the map spec cannot be of kind k; nil when it can.
func (k MapKind) Check(spec *ebpf.MapSpec) error {
	return k.Fits(spec.Type, spec.KeySize, spec.ValueSize)
}

func btfU8() btf.Type  { return &btf.Int{Name: "__u8", Size: 1} }
func btfU16() btf.Type { return &btf.Int{Name: "__u16", Size: 2} }
func btfU32() btf.Type { return &btf.Int{Name: "__u32", Size: 4} }
func btfU64() btf.Type { return &btf.Int{Name: "__u64", Size: 8} }

func btfBytes(n uint32) btf.Type {
	return &btf.Array{Index: btfU32(), Type: btfU8(), Nelems: n}
}

// btfCounter describes Counter.
func btfCounter() btf.Type {
	return &btf.Struct{
		Name: "xdpc_counter",
		Size: counterSize,
		Members: []btf.Member{
			{Name: "packets", Type: btfU64()},
			{Name: "bytes", Type: btfU64(), Offset: 64},
		},
	}
}

// btfLPMKey describes an LPM trie key with an address of addrLen bytes.
func btfLPMKey(addrLen uint32) btf.Type {
	return &btf.Struct{
		Name: fmt.Sprintf("xdpc_lpm_key%d", addrLen*8),
		Size: 4 + addrLen,
		Members: []btf.Member{
			{Name: "prefixlen", Type: btfU32()},
			{Name: "addr", Type: btfBytes(addrLen), Offset: 32},
		},
	}
}

// btfCTKey describes conntrack.Key as the datapath encodes it.
func btfCTKey() btf.Type {
	return &btf.Struct{
		Name: "xdpc_ct_key",
		Size: conntrack.KeySize,
		Members: []btf.Member{
			{Name: "family", Type: btfU8()},
			{Name: "proto", Type: btfU8(), Offset: 8},
			{Name: "pad", Type: btfU16(), Offset: 16},
			{Name: "lo_port", Type: btfU16(), Offset: 32},
			{Name: "hi_port", Type: btfU16(), Offset: 48},
			{Name: "lo_addr", Type: btfBytes(16), Offset: 64},
			{Name: "hi_addr", Type: btfBytes(16), Offset: 192},
		},
	}
}

// btfCTEntry describes conntrack.Entry as the datapath encodes it.
func btfCTEntry() btf.Type {
	return &btf.Struct{
		Name: "xdpc_ct_entry",
		Size: conntrack.EntrySize,
		Members: []btf.Member{
			{Name: "expires", Type: btfU64()},
			{Name: "created", Type: btfU64(), Offset: 64},
			{Name: "state", Type: btfU8(), Offset: 128},
			{Name: "flags", Type: btfU8(), Offset: 136},
			{Name: "nat", Type: btfU8(), Offset: 144},
			{Name: "nat_side", Type: btfU8(), Offset: 152},
			{Name: "nat_port", Type: btfU16(), Offset: 160},
			{Name: "pad", Type: btfBytes(2), Offset: 176},
			{Name: "nat_addr", Type: btfBytes(4), Offset: 192},
			{Name: "reserved", Type: btfBytes(4), Offset: 224},
		},
	}
}

// btfNATAlias describes nat.Alias as the datapath encodes it.
func btfNATAlias() btf.Type {
	return &btf.Struct{
		Name: "xdpc_nat_alias",
		Size: nat.AliasSize,
		Members: []btf.Member{
			{Name: "expires", Type: btfU64()},
			{Name: "orig_addr", Type: btfBytes(4), Offset: 64},
			{Name: "orig_port", Type: btfU16(), Offset: 96},
			{Name: "nat", Type: btfU8(), Offset: 112},
			{Name: "side", Type: btfU8(), Offset: 120},
		},
	}
}

// btfNATFragKey describes nat.FragKey as the datapath encodes it.
func btfNATFragKey() btf.Type {
	return &btf.Struct{
		Name: "xdpc_nat_frag_key",
		Size: nat.FragKeySize,
		Members: []btf.Member{
			{Name: "src", Type: btfBytes(4)},
			{Name: "dst", Type: btfBytes(4), Offset: 32},
			{Name: "id", Type: btfU16(), Offset: 64},
			{Name: "proto", Type: btfU8(), Offset: 80},
			{Name: "pad", Type: btfU8(), Offset: 88},
		},
	}
}

// btfNATFrag describes nat.Frag as the datapath encodes it.
func btfNATFrag() btf.Type {
	return &btf.Struct{
		Name: "xdpc_nat_frag",
		Size: nat.FragSize,
		Members: []btf.Member{
			{Name: "addr", Type: btfBytes(4)},
			{Name: "which", Type: btfU8(), Offset: 32},
			{Name: "pad", Type: btfBytes(3), Offset: 40},
		},
	}
}

// btfNATReserved describes a reserved port's key (nat.ReservedKey).
func btfNATReserved() btf.Type {
	return &btf.Struct{
		Name: "xdpc_nat_reserved",
		Size: 4,
		Members: []btf.Member{
			{Name: "proto", Type: btfU8()},
			{Name: "pad", Type: btfU8(), Offset: 8},
			{Name: "port", Type: btfU16(), Offset: 16},
		},
	}
}
