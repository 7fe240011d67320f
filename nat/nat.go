// Package nat defines what xdpc's NAT means beside the connection table
// (docs/nat.md): the alias that leads a translated tuple back to its
// flow, the fragment record that lets later fragments follow their first,
// the hash and the probe sequence that make a masquerade's port choice
// deterministic, and the map layouts the datapath keeps them in. The
// reference evaluator runs it in Go; the compiler emits the same decisions
// as BPF. It depends on the standard library and package conntrack only.
package nat

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/xdpc/xdpc/conntrack"
)

// Alias is the NAT map's value for a translated tuple: the endpoint the
// translated one stands for.
//
//	struct nat_alias {
//	    u64 expires;      // ns, monotonic, as the flow's entry
//	    u8  orig_addr[4]; // network order
//	    u16 orig_port;    // host order
//	    u8  nat;          // conntrack.NATKind
//	    u8  side;         // 1: the translated end is the key's Lo endpoint
//	};
type Alias struct {
	Expires  uint64
	OrigAddr netip.Addr
	OrigPort uint16
	Kind     conntrack.NATKind
	// Lo says the translated end is the alias key's Lo endpoint.
	Lo bool
}

// AliasSize is the size of an encoded Alias.
const AliasSize = 16

// Live reports whether the alias is alive at time now.
func (a Alias) Live(now uint64) bool { return now < a.Expires }

// Encode returns the alias as the NAT map holds it.
func (a Alias) Encode() []byte {
	b := make([]byte, AliasSize)
	binary.NativeEndian.PutUint64(b[0:], a.Expires)
	if a.OrigAddr.Is4() {
		v4 := a.OrigAddr.As4()
		copy(b[8:12], v4[:])
	}
	binary.NativeEndian.PutUint16(b[12:], a.OrigPort)
	b[14] = uint8(a.Kind)
	if a.Lo {
		b[15] = 1
	}
	return b
}

// DecodeAlias reads an encoded alias.
func DecodeAlias(b []byte) (Alias, error) {
	if len(b) != AliasSize {
		return Alias{}, fmt.Errorf("nat alias of %d bytes, want %d", len(b), AliasSize)
	}
	return Alias{
		Expires:  binary.NativeEndian.Uint64(b[0:]),
		OrigAddr: netip.AddrFrom4([4]byte(b[8:12])),
		OrigPort: binary.NativeEndian.Uint16(b[12:]),
		Kind:     conntrack.NATKind(b[14]),
		Lo:       b[15] == 1,
	}, nil
}

// FragKey identifies the fragments of one IPv4 packet as they arrived:
//
//	struct nat_frag_key { u8 src[4]; u8 dst[4]; u16 id; u8 proto; u8 pad; };
type FragKey struct {
	Src, Dst netip.Addr
	ID       uint16
	Proto    uint8
}

// FragKeySize is the size of an encoded FragKey.
const FragKeySize = 12

// Encode returns the key as the fragment map holds it (id in host order).
func (k FragKey) Encode() []byte {
	b := make([]byte, FragKeySize)
	s, d := k.Src.As4(), k.Dst.As4()
	copy(b[0:4], s[:])
	copy(b[4:8], d[:])
	binary.NativeEndian.PutUint16(b[8:], k.ID)
	b[10] = k.Proto
	return b
}

// Which end of a packet a fragment record rewrites.
const (
	FragSource      = 1
	FragDestination = 2
)

// Frag is the fragment map's value: the address a first fragment's later
// fragments get, and which end it replaces.
//
//	struct nat_frag { u8 addr[4]; u8 which; u8 pad[3]; };
type Frag struct {
	Addr  netip.Addr
	Which uint8
}

// FragSize is the size of an encoded Frag.
const FragSize = 8

// Encode returns the record as the fragment map holds it.
func (f Frag) Encode() []byte {
	b := make([]byte, FragSize)
	a := f.Addr.As4()
	copy(b[0:4], a[:])
	b[4] = f.Which
	return b
}

// DecodeFrag reads an encoded fragment record.
func DecodeFrag(b []byte) (Frag, error) {
	if len(b) != FragSize {
		return Frag{}, fmt.Errorf("nat fragment record of %d bytes, want %d", len(b), FragSize)
	}
	return Frag{Addr: netip.AddrFrom4([4]byte(b[0:4])), Which: b[4]}, nil
}

// FragmentEntries is the capacity of the fragment map.
const FragmentEntries = 4096

// ReservedKey is a reserved port's key in the reserved-ports map:
//
//	struct nat_reserved { u8 proto; u8 pad; u16 port; };  // port in host order
func ReservedKey(proto uint8, port uint16) []byte {
	b := make([]byte, 4)
	b[0] = proto
	binary.NativeEndian.PutUint16(b[2:], port)
	return b
}

// FNV-1a, 32 bits.
const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)

// Hash is the start of a masquerade's port search for a flow from src:sp
// to dst:dp of protocol proto: FNV-1a over seed (4 bytes, little-endian),
// src and dst (network order), sp and dp (big-endian) and proto.
func Hash(seed uint32, src, dst netip.Addr, sp, dp uint16, proto uint8) uint32 {
	h := uint32(fnvOffset)
	for _, c := range hashBytes(seed, src, dst, sp, dp, proto) {
		h ^= uint32(c)
		h *= fnvPrime
	}
	return h
}

// hashBytes are the 15 bytes Hash reads, in order.
func hashBytes(seed uint32, src, dst netip.Addr, sp, dp uint16, proto uint8) []byte {
	b := make([]byte, 0, 15)
	b = binary.LittleEndian.AppendUint32(b, seed)
	s, d := src.As4(), dst.As4()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = binary.BigEndian.AppendUint16(b, sp)
	b = binary.BigEndian.AppendUint16(b, dp)
	return append(b, proto)
}

// MaxProbes bounds a masquerade's port search.
const MaxProbes = 64

// Ports is a masquerade block's port range.
type Ports struct{ Lo, Hi uint16 }

// Allocate returns the port a new masqueraded flow gets (docs/nat.md):
// its own source port sp when it lies in the range, else the range's port
// at offset hash % size; then the next ones in turn, at most MaxProbes of
// them, skipping those taken says are reserved or in use. false: no port.
func Allocate(r Ports, sp uint16, hash uint32, taken func(port uint16) bool) (uint16, bool) {
	n := uint32(r.Hi) - uint32(r.Lo) + 1
	start := uint32(sp) - uint32(r.Lo)
	if sp < r.Lo || sp > r.Hi {
		start = hash % n
	}
	probes := min(n, MaxProbes)
	for i := uint32(0); i < probes; i++ {
		p := uint16(uint32(r.Lo) + (start+i)%n)
		if !taken(p) {
			return p, true
		}
	}
	return 0, false
}
