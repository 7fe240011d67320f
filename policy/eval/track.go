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
	var lay layout
	if reason, _ := parse(frame, &pkt, &lay); reason != "" {
		return conntrack.Packet{}
	}
	return trackedPacket(frame, &pkt, lay)
}

// trackedPacket is what connection tracking reads of the well-formed
// packet pkt, parsed from frame with layout lay:
//
//   - TCP and UDP, unfragmented or a first fragment: addresses, ports, and
//     TCP's flags byte;
//   - ICMP echo request and reply (8, 0) and ICMPv6 echo (128, 129): the
//     addresses, the identifier as both ports;
//   - ICMP destination unreachable, time exceeded, parameter problem (3,
//     11, 12) and ICMPv6 1 to 4: an error, with the flow of the packet it
//     carries (embeddedFlow);
//   - any other IP protocol, ICMP of the other family included: the
//     addresses, ports 0;
//   - not tracked: other ICMP and ICMPv6 messages (neighbour discovery,
//     redirects, ...), later fragments, anything that is not IP.
//
// VLAN tags and MAC addresses take no part.
func trackedPacket(frame []byte, pkt *Packet, lay layout) conntrack.Packet {
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
			id := be16(frame, lay.l4+icmpEchoIDOffset)
			p.Src.Port, p.Dst.Port = id, id
		case conntrack.KindICMPError:
			p.Inner, p.HasInner = embeddedFlow(frame, lay.l4+icmpHeaderLength, lay.end, pkt.Family)
		}
	}
	return p
}

// embeddedFlow reads the flow of the packet an ICMP error of family
// carries at o, bounded by the end of the error's IP packet, and whether
// the error carries enough of it (docs/conntrack.md, "The packet an ICMP
// error carries"). The embedded packet's own length fields are not read:
// an error carries a packet cut short by design.
//
//   - IPv4 (family 4): version 4, IHL at least 5, the header with its
//     options carried; a later fragment has no flow.
//   - IPv6 (family 6): version 6, the 40-byte header carried; extension
//     headers are walked as the outer parser walks them (walkIPv6); a
//     chain that is malformed or runs past what is carried, or a later
//     fragment, has no flow.
//   - Then 8 bytes of its layer-4 header must be carried, whatever its
//     protocol. TCP and UDP give their ports; an ICMP echo request or reply
//     of the family (1 in IPv4, 58 in IPv6) its identifier as both ports;
//     any other ICMP message (an error about an error) has no flow; other
//     protocols have ports 0.
func embeddedFlow(frame []byte, o, end, family int) (conntrack.Endpoints, bool) {
	var f conntrack.Endpoints
	var l4 int
	switch family {
	case 4:
		if o+ipv4HeaderLength > end || frame[o]>>4 != 4 {
			return f, false
		}
		ihl := int(frame[o] & 0x0f)
		if ihl < 5 || be16(frame, o+6)&ipv4FragOffsetMask != 0 {
			return f, false
		}
		l4 = o + ihl*4
		f.Proto = frame[o+9]
		f.Src.Addr = netip.AddrFrom4([4]byte(frame[o+12 : o+16]))
		f.Dst.Addr = netip.AddrFrom4([4]byte(frame[o+16 : o+20]))
	case 6:
		if o+ipv6HeaderLength > end || frame[o]>>4 != 6 {
			return f, false
		}
		// Extension headers of the embedded packet are not walked: its
		// next header is the protocol (docs/conntrack.md).
		l4 = o + ipv6HeaderLength
		f.Proto = frame[o+6]
		f.Src.Addr = netip.AddrFrom16([16]byte(frame[o+8 : o+24]))
		f.Dst.Addr = netip.AddrFrom16([16]byte(frame[o+24 : o+40]))
	default:
		return f, false
	}
	if l4+embeddedL4Length > end {
		return conntrack.Endpoints{}, false
	}
	icmpProto := uint8(wire.ProtoICMP)
	if family == 6 {
		icmpProto = wire.ProtoICMPv6
	}
	switch f.Proto {
	case wire.ProtoTCP, wire.ProtoUDP:
		f.Src.Port, f.Dst.Port = be16(frame, l4), be16(frame, l4+2)
	case icmpProto:
		switch conntrack.ICMPKind(uint8(family), frame[l4]) {
		case conntrack.KindEchoRequest, conntrack.KindEchoReply:
			id := be16(frame, l4+icmpEchoIDOffset)
			f.Src.Port, f.Dst.Port = id, id
		default:
			return conntrack.Endpoints{}, false
		}
	}
	return f, true
}
