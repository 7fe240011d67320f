package eval

import (
	"encoding/binary"
	"net/netip"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/wire"
)

// This file rewrites the bytes of a translated IPv4 packet and updates its
// checksums incrementally, as docs/nat.md ("Checksums", "ICMP errors")
// says the datapath does.

// Offsets in an IPv4 header and in the layer-4 headers NAT rewrites.
const (
	ipv4ChecksumOffset = 10
	ipv4SrcOffset      = 12
	ipv4DstOffset      = 16
	tcpChecksumOffset  = 16
	udpChecksumOffset  = 6
	icmpChecksumOffset = 2
)

// l3Offset returns where the IP header of a well-formed frame starts:
// after the Ethernet header and the VLAN tags parse reads (two at most).
func l3Offset(frame []byte) int {
	off := ethernetHeaderLength
	et := be16(frame, 12)
	for tags := 0; (et == wire.EtherTypeVLAN || et == wire.EtherTypeQinQ) && tags < 2; tags++ {
		et = be16(frame, off+2)
		off += 4
	}
	return off
}

func setBE16(b []byte, o int, v uint16) { binary.BigEndian.PutUint16(b[o:], v) }

// addrOffset is the offset in an IPv4 header of its source or destination.
func addrOffset(source bool) int {
	if source {
		return ipv4SrcOffset
	}
	return ipv4DstOffset
}

// setAddress writes a into the IPv4 header at l3 as its source or
// destination and updates the header's checksum; it returns the address
// it replaced.
func setAddress(b []byte, l3 int, source bool, a netip.Addr) [4]byte {
	o := l3 + addrOffset(source)
	old, v4 := [4]byte(b[o:o+4]), a.As4()
	copy(b[o:], v4[:])
	cs := l3 + ipv4ChecksumOffset
	setBE16(b, cs, nat.Update(be16(b, cs), nat.Words(old[:]), nat.Words(v4[:])))
	return old
}

// ipv4Layout is where a well-formed IPv4 packet's parts are.
type ipv4Layout struct {
	l3, l4, end int
	proto       uint8
}

func layoutAt(b []byte, l3 int) ipv4Layout {
	return ipv4Layout{
		l3:    l3,
		l4:    l3 + int(b[l3]&0x0f)*4,
		end:   l3 + int(be16(b, l3+2)),
		proto: b[l3+9],
	}
}

// rewritePacket rewrites the source (or destination) of the IPv4 packet
// at l3 to e: its address, and its port or echo identifier when it has
// one (not a later fragment), with the IPv4, TCP, UDP or ICMP checksum.
func rewritePacket(b []byte, l3 int, source bool, e conntrack.Endpoint) {
	ly := layoutAt(b, l3)
	fo := be16(b, l3+6)
	if fo&ipv4FragOffsetMask == 0 {
		first := fo&ipv4MoreFragments != 0
		switch {
		case ly.proto == wire.ProtoTCP || ly.proto == wire.ProtoUDP:
			rewriteTransport(b, ly, source, e, first)
		case ly.proto == wire.ProtoICMP && isEcho(b[ly.l4]):
			// A computed 0 is written 0xffff, as the datapath does: only
			// 0xffff verifies for a message of all zeros.
			if cs := ly.l4 + icmpChecksumOffset; be16(b, ly.l4+icmpEchoIDOffset) != e.Port {
				setEchoID(b, ly.l4, e.Port)
				if be16(b, cs) == 0 {
					setBE16(b, cs, 0xffff)
				}
			}
		}
	}
	setAddress(b, l3, source, e.Addr)
}

func isEcho(typ uint8) bool {
	k := conntrack.ICMPKind(4, typ)
	return k == conntrack.KindEchoRequest || k == conntrack.KindEchoReply
}

// setEchoID writes an echo's identifier at l4 and updates its checksum.
func setEchoID(b []byte, l4 int, id uint16) {
	o, cs := l4+icmpEchoIDOffset, l4+icmpChecksumOffset
	old := be16(b, o)
	setBE16(b, o, id)
	setBE16(b, cs, nat.Update(be16(b, cs), []uint16{old}, []uint16{id}))
}

// rewriteTransport writes the port of a TCP or UDP header and updates
// its checksum for the address (still the old one in the IP header) and
// the port: a UDP checksum of 0 stays 0 and a computed 0 is 0xffff; a
// partial checksum (partialChecksum) is updated for the address only, not
// complemented.
func rewriteTransport(b []byte, ly ipv4Layout, source bool, e conntrack.Endpoint, first bool) {
	po := ly.l4 + 2
	if source {
		po = ly.l4
	}
	cs := ly.l4 + tcpChecksumOffset
	if ly.proto == wire.ProtoUDP {
		cs = ly.l4 + udpChecksumOffset
	}
	field := be16(b, cs)
	partial := !first && partialChecksum(b, ly, field)
	ao := ly.l3 + addrOffset(source)
	oldAddr, newAddr := [4]byte(b[ao:ao+4]), e.Addr.As4()
	oldPort := be16(b, po)
	setBE16(b, po, e.Port)
	switch {
	case ly.proto == wire.ProtoUDP && field == 0:
	case partial:
		field = nat.UpdatePartial(field, nat.Words(oldAddr[:]), nat.Words(newAddr[:]))
	default:
		field = nat.Update(field, append(nat.Words(oldAddr[:]), oldPort), append(nat.Words(newAddr[:]), e.Port))
		if ly.proto == wire.ProtoUDP && field == 0 {
			field = 0xffff
		}
	}
	setBE16(b, cs, field)
}

// partialChecksum reports whether the TCP or UDP checksum field of the
// packet laid out as ly is partial: it equals the folded sum of the
// pseudo-header (length: the IP packet's payload) and the segment's full
// checksum does not verify.
func partialChecksum(b []byte, ly ipv4Layout, field uint16) bool {
	ps := nat.PseudoSum([4]byte(b[ly.l3+ipv4SrcOffset:]), [4]byte(b[ly.l3+ipv4DstOffset:]), ly.proto, uint16(ly.end-ly.l4))
	return field == ps && summable(ly.l4, ly.end) && nat.Sum(ps, b[ly.l4:ly.end]) != 0xffff
}

// summable reports whether the datapath sums the segment from offset l4
// to end of the frame to verify its checksum (compiler: emitPartialCheck):
// seven chunks of 512 bytes at most, then pieces of 256 down to 4 bytes,
// then the last bytes, each step starting at an offset of at most 4,096.
// A segment it does not sum is taken as full.
func summable(l4, end int) bool {
	const chunk, chunks, maxOffset = 512, 7, 4096
	cursor := l4
	for range chunks {
		if end-cursor >= chunk {
			if cursor > maxOffset {
				return false
			}
			cursor += chunk
		}
	}
	if end-cursor >= chunk {
		return false
	}
	for size := chunk / 2; size >= 4; size /= 2 {
		if end-cursor >= size {
			if cursor > maxOffset {
				return false
			}
			cursor += size
		}
	}
	return end == cursor || cursor <= maxOffset
}

// rewriteError translates the ICMP error at l3 whose embedded packet's
// source (embeddedSource) or destination becomes e: the embedded
// address, port or echo identifier, its IPv4 checksum, its UDP checksum
// unless 0 or its echo's checksum, the error's ICMP checksum for all of
// that, and the outer address that names the same host (the destination
// when the embedded source is rewritten, else the source) with the outer
// IPv4 checksum.
func rewriteError(b []byte, l3 int, embeddedSource bool, e conntrack.Endpoint) {
	ly := layoutAt(b, l3)
	in := ly.l4 + icmpHeaderLength
	inner := layoutAt(b, in)
	before := append([]byte(nil), b[ly.l4:inner.l4+embeddedL4Length]...)
	old := rewriteEmbedded(b, inner, embeddedSource, e)
	cs := ly.l4 + icmpChecksumOffset
	setBE16(b, cs, nat.Update(be16(b, cs), nat.Words(before[4:]), nat.Words(b[ly.l4+4:inner.l4+embeddedL4Length])))
	outerSource := !embeddedSource
	if [4]byte(b[l3+addrOffset(outerSource):]) == old {
		setAddress(b, l3, outerSource, e.Addr)
	}
}

// rewriteEmbedded rewrites the embedded packet laid out as ly (an IPv4
// header and the 8 bytes after it) and returns the address it replaced.
func rewriteEmbedded(b []byte, ly ipv4Layout, source bool, e conntrack.Endpoint) [4]byte {
	ao := ly.l3 + addrOffset(source)
	oldAddr, newAddr := [4]byte(b[ao:ao+4]), e.Addr.As4()
	switch ly.proto {
	case wire.ProtoTCP, wire.ProtoUDP:
		po := ly.l4 + 2
		if source {
			po = ly.l4
		}
		oldPort := be16(b, po)
		setBE16(b, po, e.Port)
		if cs := ly.l4 + udpChecksumOffset; ly.proto == wire.ProtoUDP && be16(b, cs) != 0 {
			field := nat.Update(be16(b, cs), append(nat.Words(oldAddr[:]), oldPort), append(nat.Words(newAddr[:]), e.Port))
			if field == 0 {
				field = 0xffff
			}
			setBE16(b, cs, field)
		}
	case wire.ProtoICMP:
		setEchoID(b, ly.l4, e.Port)
	}
	return setAddress(b, ly.l3, source, e.Addr)
}
