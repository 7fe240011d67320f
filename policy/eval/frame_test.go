package eval

import (
	"encoding/binary"
	"net/netip"
)

// This file builds test frames byte by byte, so that the tests can write
// every malformed shape docs/datapath.md names; lab builds well-formed frames
// with gopacket.

var (
	testDstMAC = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	testSrcMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
)

// cat joins byte slices.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func put16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// ether is an Ethernet header of type et followed by payload.
func ether(et uint16, payload ...[]byte) []byte {
	return cat(testDstMAC[:], testSrcMAC[:], put16(et), cat(payload...))
}

// tag is a VLAN tag's TCI (id, plus priority bits pcp) and the next type.
func tag(pcp uint8, id uint16, next uint16) []byte {
	return cat(put16(uint16(pcp)<<13|id), put16(next))
}

// pad extends b with zeros to n bytes, as Ethernet pads short frames.
func pad(b []byte, n int) []byte {
	for len(b) < n {
		b = append(b, 0)
	}
	return b
}

// v4 describes an IPv4 header; zero values mean the usual.
type v4 struct {
	version  uint8  // 0: 4
	ihl      uint8  // 0: 5 + len(options)/4
	tot      int    // 0: header + payload
	fo       uint16 // flags and fragment offset
	ttl      uint8  // 0: 64
	proto    uint8
	src, dst string // "": 10.0.0.1 > 10.0.0.2
	options  int    // bytes of options (NOPs)
}

func (h v4) build(payload ...[]byte) []byte {
	pl := cat(payload...)
	opts := make([]byte, h.options)
	for i := range opts {
		opts[i] = 1 // NOP
	}
	b := make([]byte, 20, 20+len(opts)+len(pl))
	ver, ihl := or8(h.version, 4), or8(h.ihl, uint8(5+h.options/4))
	b[0] = ver<<4 | ihl&0x0f
	tot := h.tot
	if tot == 0 {
		tot = 20 + len(opts) + len(pl)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(tot))
	binary.BigEndian.PutUint16(b[6:], h.fo)
	b[8] = or8(h.ttl, 64)
	b[9] = h.proto
	copy(b[12:16], addr(h.src, "10.0.0.1").AsSlice())
	copy(b[16:20], addr(h.dst, "10.0.0.2").AsSlice())
	return cat(b, opts, pl)
}

// v6 describes an IPv6 header; zero values mean the usual.
type v6 struct {
	version  uint8 // 0: 6
	plen     int   // 0: len(payload); -1: 0
	nh       uint8
	hops     uint8  // 0: 64
	src, dst string // "": 2001:db8::1 > 2001:db8::2
}

func (h v6) build(payload ...[]byte) []byte {
	pl := cat(payload...)
	b := make([]byte, 40)
	b[0] = or8(h.version, 6) << 4
	plen := h.plen
	switch plen {
	case 0:
		plen = len(pl)
	case -1:
		plen = 0
	}
	binary.BigEndian.PutUint16(b[4:], uint16(plen))
	b[6] = h.nh
	b[7] = or8(h.hops, 64)
	copy(b[8:24], addr(h.src, "2001:db8::1").AsSlice())
	copy(b[24:40], addr(h.dst, "2001:db8::2").AsSlice())
	return cat(b, pl)
}

// ext is an IPv6 hop-by-hop, routing or destination-options header with
// next header nh and length field len8 ((len8+1)*8 bytes).
func ext(nh, len8 uint8) []byte {
	b := make([]byte, (int(len8)+1)*8)
	b[0], b[1] = nh, len8
	return b
}

// frag6 is an IPv6 fragment header: offset in 8-byte units, more fragments.
func frag6(nh uint8, offset uint16, more bool) []byte {
	b := make([]byte, 8)
	b[0] = nh
	fo := offset << 3
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(b[2:], fo)
	return b
}

// tcp is a TCP header with data offset doff (0: 5) and options bytes of zeros.
func tcp(sport, dport uint16, flags uint8, doff uint8) []byte {
	d := or8(doff, 5)
	n := max(int(d)*4, 20)
	b := make([]byte, n)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = d << 4
	b[13] = flags
	return b
}

func udp(sport, dport uint16) []byte {
	return cat(put16(sport), put16(dport), put16(8), put16(0))
}

func icmp(typ, code uint8) []byte { return []byte{typ, code, 0, 0, 0, 0, 0, 0} }

func zeros(n int) []byte { return make([]byte, n) }

func or8(v, def uint8) uint8 {
	if v == 0 {
		return def
	}
	return v
}

func addr(s, def string) netip.Addr {
	if s == "" {
		s = def
	}
	return netip.MustParseAddr(s)
}

// echo is an ICMP or ICMPv6 echo message of type typ with identifier id.
func echo(typ uint8, id, seq uint16) []byte {
	return cat([]byte{typ, 0, 0, 0}, put16(id), put16(seq))
}

// icmpError is an ICMP or ICMPv6 error of type typ and code carrying the
// packet embedded (its IP header and what follows).
func icmpError(typ, code uint8, embedded ...[]byte) []byte {
	return cat(icmp(typ, code), cat(embedded...))
}
