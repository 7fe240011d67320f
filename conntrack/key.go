package conntrack

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Endpoint is one side of a flow: an address and a port (0 for protocols
// without ports; the echo identifier for ICMP and ICMPv6 echo).
type Endpoint struct {
	Addr netip.Addr
	Port uint16
}

func (e Endpoint) String() string {
	if e.Addr.Is6() {
		return fmt.Sprintf("[%s]:%d", e.Addr, e.Port)
	}
	return fmt.Sprintf("%s:%d", e.Addr, e.Port)
}

// Key identifies a flow in both directions: its family's and protocol's
// numbers and its two endpoints in a fixed order (Lo before Hi), so a
// packet and its reply find the same entry with one lookup.
type Key struct {
	Family uint8 // 4 or 6
	Proto  uint8
	Lo, Hi Endpoint
}

// NewKey returns the key of a packet from src to dst, and whether src is
// the key's Lo endpoint.
func NewKey(family, proto uint8, src, dst Endpoint) (Key, bool) {
	k := Key{Family: family, Proto: proto, Lo: src, Hi: dst}
	if Less(dst, src) {
		k.Lo, k.Hi = dst, src
		return k, false
	}
	return k, true
}

// Less is the order of endpoints in a key, as the datapath compares them:
// the address as four 32-bit words read little-endian from its network
// bytes (the way a little-endian BPF program loads them), word by word,
// then the port. An IPv4 address fills the first word; the others are 0.
func Less(a, b Endpoint) bool {
	wa, wb := AddrWords(a.Addr), AddrWords(b.Addr)
	for i := range wa {
		if wa[i] != wb[i] {
			return wa[i] < wb[i]
		}
	}
	return a.Port < b.Port
}

// AddrWords returns an address as the datapath holds it: four
// little-endian 32-bit words of its bytes, IPv4 in the first.
func AddrWords(a netip.Addr) [4]uint32 {
	var b [16]byte
	if a.Is4() {
		v4 := a.As4()
		copy(b[:], v4[:])
	} else {
		b = a.As16()
	}
	var w [4]uint32
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return w
}

// Original returns the endpoints of the flow in its original direction,
// initiator first, given whether the initiator is the Lo endpoint.
func (k Key) Original(origIsLo bool) (from, to Endpoint) {
	if origIsLo {
		return k.Lo, k.Hi
	}
	return k.Hi, k.Lo
}

// KeySize is the size of an encoded key (Encode):
//
//	struct ct_key {
//	    u8  family;       // 4 or 6
//	    u8  proto;
//	    u16 pad;          // 0
//	    u16 lo_port;      // host order
//	    u16 hi_port;
//	    u8  lo_addr[16];  // network order; IPv4 in the first 4 bytes, 0 after
//	    u8  hi_addr[16];
//	};
const KeySize = 40

// Encode returns the key as the datapath's table holds it.
func (k Key) Encode() []byte {
	b := make([]byte, KeySize)
	b[0], b[1] = k.Family, k.Proto
	binary.NativeEndian.PutUint16(b[4:], k.Lo.Port)
	binary.NativeEndian.PutUint16(b[6:], k.Hi.Port)
	putAddr(b[8:24], k.Lo.Addr)
	putAddr(b[24:40], k.Hi.Addr)
	return b
}

func putAddr(b []byte, a netip.Addr) {
	if a.Is4() {
		v4 := a.As4()
		copy(b, v4[:])
		return
	}
	v6 := a.As16()
	copy(b, v6[:])
}

// DecodeKey reads an encoded key.
func DecodeKey(b []byte) (Key, error) {
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("conntrack key of %d bytes, want %d", len(b), KeySize)
	}
	k := Key{Family: b[0], Proto: b[1]}
	k.Lo.Port = binary.NativeEndian.Uint16(b[4:])
	k.Hi.Port = binary.NativeEndian.Uint16(b[6:])
	for _, e := range []struct {
		p   *netip.Addr
		raw []byte
	}{{&k.Lo.Addr, b[8:24]}, {&k.Hi.Addr, b[24:40]}} {
		switch k.Family {
		case 4:
			*e.p = netip.AddrFrom4([4]byte(e.raw[:4]))
		case 6:
			*e.p = netip.AddrFrom16([16]byte(e.raw))
		default:
			return Key{}, fmt.Errorf("conntrack key of family %d", k.Family)
		}
	}
	return k, nil
}

// Entry is the value of a table entry:
//
//	struct ct_entry {
//	    u64 expires;   // ns, monotonic: the entry is dead from then on
//	    u64 created;   // ns, monotonic
//	    u8  state;     // State
//	    u8  flags;     // Flag*
//	    u8  nat;       // NATKind: how the flow is translated (docs/nat.md)
//	    u8  nat_side;  // 1: the rewritten end is the key's Lo endpoint
//	    u16 nat_port;  // host order: the rewritten end's translated port
//	    u8  pad[2];
//	    u8  nat_addr[4];  // network order: its translated address
//	    u8  reserved[4];
//	};
type Entry struct {
	Expires, Created uint64
	State            State
	Flags            Flags
	// NAT says how the flow is translated; NATLo that the rewritten end
	// is the key's Lo endpoint; NATAddr and NATPort what it becomes.
	NAT     NATKind
	NATLo   bool
	NATPort uint16
	NATAddr [4]byte
}

// NATKind is how a flow is translated.
type NATKind uint8

const (
	// NATNone: the flow is not translated.
	NATNone NATKind = 0
	// NATSource: the originator's end is rewritten (masquerade, static
	// outbound).
	NATSource NATKind = 1
	// NATDestination: the responder's end is rewritten (forward, static
	// inbound).
	NATDestination NATKind = 2
)

func (k NATKind) String() string {
	switch k {
	case NATNone:
		return "none"
	case NATSource:
		return "snat"
	case NATDestination:
		return "dnat"
	}
	return fmt.Sprintf("NATKind(%d)", uint8(k))
}

// Live reports whether the entry is alive at time now: its timeout has
// not passed. A dead entry is as good as none.
func (e Entry) Live(now uint64) bool { return now < e.Expires }

// EntrySize is the size of an encoded Entry.
const EntrySize = 32

// Flags are an entry's flag bits.
type Flags uint8

const (
	// FlagOrigLo: the flow's originator is the key's Lo endpoint.
	FlagOrigLo Flags = 1 << iota
	// FlagEgress: the host's own packet created the entry (egress).
	FlagEgress
	// FlagPickedUp: the entry was picked up from the middle of a TCP
	// connection the host was already in (Pickup).
	FlagPickedUp
)

// Encode returns e as the datapath's table holds it.
func (e Entry) Encode() []byte {
	b := make([]byte, EntrySize)
	binary.NativeEndian.PutUint64(b[0:], e.Expires)
	binary.NativeEndian.PutUint64(b[8:], e.Created)
	b[16], b[17] = uint8(e.State), uint8(e.Flags)
	b[18] = uint8(e.NAT)
	if e.NATLo {
		b[19] = 1
	}
	binary.NativeEndian.PutUint16(b[20:], e.NATPort)
	copy(b[24:28], e.NATAddr[:])
	return b
}

// DecodeEntry reads an encoded entry.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) != EntrySize {
		return Entry{}, fmt.Errorf("conntrack entry of %d bytes, want %d", len(b), EntrySize)
	}
	return Entry{
		Expires: binary.NativeEndian.Uint64(b[0:]),
		Created: binary.NativeEndian.Uint64(b[8:]),
		State:   State(b[16]),
		Flags:   Flags(b[17]),
		NAT:     NATKind(b[18]),
		NATLo:   b[19] == 1,
		NATPort: binary.NativeEndian.Uint16(b[20:]),
		NATAddr: [4]byte(b[24:28]),
	}, nil
}
