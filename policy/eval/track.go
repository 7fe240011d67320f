package eval

import (
	"net/netip"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// Sizes connection tracking reads of an ICMP message.
const (
	icmpHeaderLength = 8 // type, code, checksum, and 4 bytes (echo: id, seq)
	icmpEchoIDOffset = 4
	// embeddedL4Length is how much of the embedded packet's layer-4 header
	// an ICMP error must carry after the embedded IP header: the 8 bytes
	// RFC 792 promises, which hold the ports or the echo identifier.
	embeddedL4Length = 8
)

// Track returns what connection tracking reads of frame: its kind, flow
// and TCP flags, and for an ICMP error the flow of the packet it carries
// (docs/conntrack.md, "Which packets are tracked"). A malformed frame is
// not tracked (conntrack.KindUntracked).
func Track(frame []byte) conntrack.Packet {
	var pkt Packet
	if reason, _ := parse(frame, &pkt); reason != "" {
		return conntrack.Packet{}
	}
	return trackedPacket(&pkt)
}

// trackedPacket is what connection tracking reads of the well-formed
// packet pkt:
//
//   - TCP and UDP, unfragmented or a first fragment: addresses, ports, and
//     TCP's flags byte;
//   - ICMP echo request and reply (8, 0) and ICMPv6 echo (128, 129): the
//     addresses, the identifier as both ports;
//   - ICMP destination unreachable, time exceeded, parameter problem (3,
//     11, 12) and ICMPv6 1 to 4: an error, with the flow of the packet it
//     carries (carriedPacket, read by the parser);
//   - any other IP protocol, ICMP of the other family included: the
//     addresses, ports 0;
//   - not tracked: other ICMP and ICMPv6 messages (neighbour discovery,
//     redirects, ...), later fragments, anything that is not IP.
//
// VLAN tags and MAC addresses take no part.
func trackedPacket(pkt *Packet) conntrack.Packet {
	if pkt.Family == 0 || pkt.Fragment == policy.FragLater {
		return conntrack.Packet{}
	}
	p := conntrack.Packet{
		Kind:   conntrack.KindOther,
		Family: uint8(pkt.Family),
		Proto:  pkt.Proto,
		Src:    conntrack.Endpoint{Addr: pkt.Src},
		Dst:    conntrack.Endpoint{Addr: pkt.Dst},
	}
	switch {
	case pkt.Proto == wire.ProtoTCP:
		p.Kind = conntrack.KindTCP
		p.Src.Port, p.Dst.Port, p.TCPFlags = pkt.SrcPort, pkt.DstPort, pkt.TCPFlags
	case pkt.Proto == wire.ProtoUDP:
		p.Kind = conntrack.KindUDP
		p.Src.Port, p.Dst.Port = pkt.SrcPort, pkt.DstPort
	case pkt.HasICMP:
		p.Kind = conntrack.ICMPKind(p.Family, pkt.ICMPType)
		switch p.Kind {
		case conntrack.KindUntracked:
			return conntrack.Packet{}
		case conntrack.KindEchoRequest, conntrack.KindEchoReply:
			p.Src.Port, p.Dst.Port = pkt.EchoID, pkt.EchoID
		case conntrack.KindICMPError:
			p.Inner, p.HasInner = pkt.Carried.Endpoints, pkt.HasCarried
		}
	}
	return p
}

// carriedPacket reads the packet an ICMP error of family carries at o,
// bounded by the end of the error's IP packet, and whether the error
// carries enough of it to know its flow (docs/conntrack.md, "The packet
// an ICMP error carries"). The embedded packet's own length fields are not
// read: an error carries a packet cut short by design.
//
//   - IPv4 (family 4): version 4, IHL at least 5, the 20-byte header
//     carried; a later fragment has no flow. Options are skipped, not read.
//   - IPv6 (family 6): version 6, the 40-byte header carried. Extension
//     headers are not walked: the next header is the protocol.
//   - Then 8 bytes of its layer-4 header must be carried, whatever its
//     protocol. TCP and UDP give their ports; an ICMP echo request or reply
//     of the family (1 in IPv4, 58 in IPv6) its identifier as both ports;
//     any other ICMP message (an error about an error) has no flow; other
//     protocols have ports 0.
func carriedPacket(frame []byte, o, end, family int) (Carried, bool) {
	var c Carried
	var l4, fixed int
	switch family {
	case 4:
		fixed = ipv4HeaderLength
		if o+fixed > end || frame[o]>>4 != 4 {
			return Carried{}, false
		}
		ihl := int(frame[o] & 0x0f)
		if ihl < 5 || be16(frame, o+6)&ipv4FragOffsetMask != 0 {
			return Carried{}, false
		}
		l4 = o + ihl*4
		c.Proto = frame[o+9]
		c.Src.Addr = netip.AddrFrom4([4]byte(frame[o+12 : o+16]))
		c.Dst.Addr = netip.AddrFrom4([4]byte(frame[o+16 : o+20]))
	case 6:
		fixed = ipv6HeaderLength
		if o+fixed > end || frame[o]>>4 != 6 {
			return Carried{}, false
		}
		l4 = o + fixed
		c.Proto = frame[o+6]
		c.Src.Addr = netip.AddrFrom16([16]byte(frame[o+8 : o+24]))
		c.Dst.Addr = netip.AddrFrom16([16]byte(frame[o+24 : o+40]))
	default:
		return Carried{}, false
	}
	if l4+embeddedL4Length > end {
		return Carried{}, false
	}
	icmpProto := uint8(wire.ProtoICMP)
	if family == 6 {
		icmpProto = wire.ProtoICMPv6
	}
	switch c.Proto {
	case wire.ProtoTCP, wire.ProtoUDP:
		c.Src.Port, c.Dst.Port = be16(frame, l4), be16(frame, l4+2)
	case icmpProto:
		c.ICMPType = frame[l4]
		switch conntrack.ICMPKind(uint8(family), c.ICMPType) {
		case conntrack.KindEchoRequest, conntrack.KindEchoReply:
			id := be16(frame, l4+icmpEchoIDOffset)
			c.Src.Port, c.Dst.Port = id, id
		default:
			return Carried{}, false
		}
	}
	c.Bytes = end - (o + fixed)
	return c, true
}
