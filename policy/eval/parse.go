package eval

import (
	"fmt"
	"net/netip"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// Packet is a parsed frame: the fields of docs/datapath.md. A field whose
// presence flag (Tags, Family, HasPorts, HasTCPFlags, HasICMP) says it is
// absent holds its zero value.
//
// CTState is not read from the frame: it is the packet's ct_state, from
// the connection table as the packet arrived. Parse leaves it
// conntrack.StatusNone; Evaluate and a Session set it before the rules run
// when the policy tracks connections.
type Packet struct {
	Len              int // frame length n
	DstMAC, SrcMAC   policy.MAC
	Tags             int       // 0, 1 or 2 VLAN tags parsed
	VLAN             [2]uint16 // ids of the outer and inner tag
	EtherType        uint16    // after the tags
	Family           int       // 0 (not IP), 4 or 6
	Src, Dst         netip.Addr
	Proto, TTL       uint8
	Length           uint32
	Fragment         policy.Fragment
	HasPorts         bool
	SrcPort, DstPort uint16
	HasTCPFlags      bool
	TCPFlags         uint8
	HasICMP          bool
	ICMPType         uint8
	ICMPCode         uint8
	// HasARP says the frame is an Ethernet/IPv4 ARP message (hardware type
	// 1, protocol type 0x0800, address lengths 6 and 4), with its operation
	// and its sender and target protocol addresses. No rule reads them;
	// they are for the packet's summary.
	HasARP               bool
	ARPOp                uint16
	ARPSender, ARPTarget netip.Addr
	// EchoID is an ICMP or ICMPv6 echo request's or reply's identifier,
	// which connection tracking takes for both ports; 0 for every other
	// message.
	EchoID uint16
	// Carried is the packet an ICMP error carries, when HasCarried says
	// the error carries enough of it to know its flow (docs/conntrack.md
	// "The packet an ICMP error carries"). No rule reads it; connection
	// tracking and the summary do.
	HasCarried bool
	Carried    Carried
	CTState    conntrack.Status
}

// Carried is the packet an ICMP error carries: its flow as connection
// tracking reads it, its ICMP type when it is an echo, and how many bytes
// of it the error holds after its fixed IP header (20 bytes for IPv4, 40
// for IPv6): its IPv4 options and its layer 4, at least 8 bytes of which
// are there.
type Carried struct {
	conntrack.Endpoints
	ICMPType uint8
	Bytes    int
}

// Malformed says why a frame failed parsing: Reason names the header and the
// condition of docs/datapath.md that failed, Offset is where that header
// starts in the frame.
type Malformed struct {
	Reason string
	Offset int
}

func (m *Malformed) Error() string {
	return fmt.Sprintf("malformed: %s at offset %d", m.Reason, m.Offset)
}

// Reasons a frame is malformed, one per condition of docs/datapath.md.
const (
	reasonEthernetShort = "ethernet header cut short"
	reasonVLANShort     = "vlan tag cut short"
	reasonIPv4Short     = "ipv4 header cut short"
	reasonIPv4Version   = "ip version is not 4 under ether_type ipv4"
	reasonIPv4IHL       = "ipv4 ihl < 5"
	reasonIPv4Options   = "ipv4 header (ihl) beyond frame"
	reasonIPv4TotShort  = "ipv4 total length < header length"
	reasonIPv4TotLong   = "ipv4 total length beyond frame"
	reasonIPv6Short     = "ipv6 header cut short"
	reasonIPv6Version   = "ip version is not 6 under ether_type ipv6"
	reasonIPv6Payload   = "ipv6 payload length beyond frame"
	reasonIPv6ExtCount  = "ipv6 extension header chain longer than 8"
	reasonIPv6ExtShort  = "ipv6 extension header cut short"
	reasonIPv6ExtLen    = "ipv6 extension header length beyond packet"
	reasonIPv6FragShort = "ipv6 fragment header cut short"
	reasonTCPShort      = "tcp header cut short"
	reasonTCPDataOffset = "tcp data offset < 5"
	reasonTCPOptions    = "tcp data offset beyond packet"
	reasonUDPShort      = "udp header cut short"
	reasonICMPShort     = "icmp header cut short"
	reasonICMPv6Short   = "icmpv6 header cut short"
)

// Header numbers and bits the parser reads.
const (
	ipv4FragOffsetMask   = 0x1fff
	ipv4MoreFragments    = 0x2000
	ipv6FragOffsetMask   = 0xfff8
	ipv6MoreFragments    = 0x0001
	ethernetHeaderLength = 14
)

// Parse reads frame into a Packet, or says why it is malformed.
func Parse(frame []byte) (*Packet, *Malformed) {
	p := new(Packet)
	if reason, off := parse(frame, p); reason != "" {
		return nil, &Malformed{Reason: reason, Offset: off}
	}
	return p, nil
}

// parse fills p from frame. It returns the malformed reason and the
// offset of the failing header, or "" when the frame is well formed. It does
// not allocate, so Evaluate can run it on every packet.
func parse(frame []byte, p *Packet) (reason string, off int) {
	n := len(frame)
	p.Len = n
	if n < ethernetHeaderLength {
		return reasonEthernetShort, 0
	}
	copy(p.DstMAC[:], frame[0:6])
	copy(p.SrcMAC[:], frame[6:12])
	et := be16(frame, 12)
	off = ethernetHeaderLength
	for (et == wire.EtherTypeVLAN || et == wire.EtherTypeQinQ) && p.Tags < 2 {
		if off+4 > n {
			return reasonVLANShort, off
		}
		p.VLAN[p.Tags] = be16(frame, off) & 0x0fff
		p.Tags++
		et = be16(frame, off+2)
		off += 4
	}
	p.EtherType = et
	switch et {
	case wire.EtherTypeIPv4:
		return parseIPv4(frame, off, p)
	case wire.EtherTypeIPv6:
		return parseIPv6(frame, off, p)
	case wire.EtherTypeARP:
		parseARP(frame, off, p)
	}
	return "", 0
}

// ARP header fields of an Ethernet/IPv4 ARP message.
const (
	arpLength       = 28
	arpHardwareType = 1 // Ethernet
)

// parseARP reads the operation and protocol addresses of an Ethernet/IPv4
// ARP message at off. A frame of ether type ARP that holds anything else,
// or is cut short, is not malformed: no rule reads past a non-IP ether
// type. It just has no ARP fields.
func parseARP(frame []byte, off int, p *Packet) {
	if off+arpLength > len(frame) || be16(frame, off) != arpHardwareType ||
		be16(frame, off+2) != wire.EtherTypeIPv4 || frame[off+4] != 6 || frame[off+5] != 4 {
		return
	}
	p.HasARP = true
	p.ARPOp = be16(frame, off+6)
	p.ARPSender = netip.AddrFrom4([4]byte(frame[off+14 : off+18]))
	p.ARPTarget = netip.AddrFrom4([4]byte(frame[off+24 : off+28]))
}

// parseIPv4 reads the IPv4 header at l3 and, unless the packet is a later
// fragment, its layer-4 header.
func parseIPv4(frame []byte, l3 int, p *Packet) (string, int) {
	n := len(frame)
	if l3+20 > n {
		return reasonIPv4Short, l3
	}
	if frame[l3]>>4 != 4 {
		return reasonIPv4Version, l3
	}
	ihl := int(frame[l3] & 0x0f)
	if ihl < 5 {
		return reasonIPv4IHL, l3
	}
	hl := ihl * 4
	if l3+hl > n {
		return reasonIPv4Options, l3
	}
	tot := int(be16(frame, l3+2))
	if tot < hl {
		return reasonIPv4TotShort, l3
	}
	if l3+tot > n {
		return reasonIPv4TotLong, l3
	}
	p.Family = 4
	p.Length = uint32(tot)
	p.TTL = frame[l3+8]
	p.Proto = frame[l3+9]
	p.Src = netip.AddrFrom4([4]byte(frame[l3+12 : l3+16]))
	p.Dst = netip.AddrFrom4([4]byte(frame[l3+16 : l3+20]))
	fo := be16(frame, l3+6)
	switch {
	case fo&ipv4FragOffsetMask != 0:
		p.Fragment = policy.FragLater
		return "", 0
	case fo&ipv4MoreFragments != 0:
		p.Fragment = policy.FragFirst
	default:
		p.Fragment = policy.FragNone
	}
	return parseL4(frame, l3+hl, l3+tot, p)
}

// parseIPv6 reads the IPv6 header at l3, walks at most
// policy.MaxIPv6ExtHdrs extension headers to the upper-layer protocol and,
// unless the packet is a later fragment, reads its layer-4 header.
func parseIPv6(frame []byte, l3 int, p *Packet) (string, int) {
	n := len(frame)
	if l3+40 > n {
		return reasonIPv6Short, l3
	}
	if frame[l3]>>4 != 6 {
		return reasonIPv6Version, l3
	}
	plen := int(be16(frame, l3+4))
	if l3+40+plen > n {
		return reasonIPv6Payload, l3
	}
	end := l3 + 40 + plen
	p.Family = 6
	p.Length = uint32(40 + plen)
	p.TTL = frame[l3+7]
	p.Src = netip.AddrFrom16([16]byte(frame[l3+8 : l3+24]))
	p.Dst = netip.AddrFrom16([16]byte(frame[l3+24 : l3+40]))
	proto, cur, frag, reason, off := walkIPv6(frame, frame[l3+6], l3+40, end)
	if reason != "" {
		return reason, off
	}
	p.Proto, p.Fragment = proto, frag
	if p.Fragment == policy.FragLater {
		return "", 0
	}
	return parseL4(frame, cur, end, p)
}

// walkIPv6 walks at most policy.MaxIPv6ExtHdrs extension headers from
// offset cur, whose type is nh, bounded by the IP packet's end: it returns
// the upper-layer protocol, where its header starts and the fragment
// class, or the malformed reason and the offset of the failing header. A
// later fragment's protocol is its fragment header's next header.
func walkIPv6(frame []byte, nh uint8, cur, end int) (proto uint8, l4 int, frag policy.Fragment, reason string, off int) {
	frag = policy.FragNone
	exts := 0
	for {
		switch nh {
		case wire.IPv6ExtHopByHop, wire.IPv6ExtRouting, wire.IPv6ExtDestOpts:
			if exts == policy.MaxIPv6ExtHdrs {
				return 0, 0, 0, reasonIPv6ExtCount, cur
			}
			exts++
			if cur+8 > end {
				return 0, 0, 0, reasonIPv6ExtShort, cur
			}
			hlen := (int(frame[cur+1]) + 1) * 8
			if cur+hlen > end {
				return 0, 0, 0, reasonIPv6ExtLen, cur
			}
			nh = frame[cur]
			cur += hlen
		case wire.IPv6ExtFragment:
			if exts == policy.MaxIPv6ExtHdrs {
				return 0, 0, 0, reasonIPv6ExtCount, cur
			}
			exts++
			if cur+8 > end {
				return 0, 0, 0, reasonIPv6FragShort, cur
			}
			fo := be16(frame, cur+2)
			nh = frame[cur]
			cur += 8
			if fo&ipv6FragOffsetMask != 0 {
				return nh, cur, policy.FragLater, "", 0
			}
			if fo&ipv6MoreFragments != 0 {
				frag = policy.FragFirst
			}
		default:
			return nh, cur, frag, "", 0
		}
	}
}

// parseL4 reads the layer-4 header at o, bounded by the IP packet's end.
func parseL4(frame []byte, o, end int, p *Packet) (string, int) {
	switch {
	case p.Proto == wire.ProtoTCP:
		if o+20 > end {
			return reasonTCPShort, o
		}
		doff := int(frame[o+12] >> 4)
		if doff < 5 {
			return reasonTCPDataOffset, o
		}
		if o+doff*4 > end {
			return reasonTCPOptions, o
		}
		p.HasPorts, p.SrcPort, p.DstPort = true, be16(frame, o), be16(frame, o+2)
		p.HasTCPFlags, p.TCPFlags = true, frame[o+13]
	case p.Proto == wire.ProtoUDP:
		if o+8 > end {
			return reasonUDPShort, o
		}
		p.HasPorts, p.SrcPort, p.DstPort = true, be16(frame, o), be16(frame, o+2)
	case p.Proto == wire.ProtoICMP && p.Family == 4:
		if o+8 > end {
			return reasonICMPShort, o
		}
		p.HasICMP, p.ICMPType, p.ICMPCode = true, frame[o], frame[o+1]
		parseICMPBody(frame, o, end, p)
	case p.Proto == wire.ProtoICMPv6 && p.Family == 6:
		if o+8 > end {
			return reasonICMPv6Short, o
		}
		p.HasICMP, p.ICMPType, p.ICMPCode = true, frame[o], frame[o+1]
		parseICMPBody(frame, o, end, p)
	}
	return "", 0
}

// parseICMPBody reads what an ICMP message at o holds beyond its type and
// code that connection tracking reads: an echo's identifier, the packet
// an error carries.
func parseICMPBody(frame []byte, o, end int, p *Packet) {
	switch conntrack.ICMPKind(uint8(p.Family), p.ICMPType) {
	case conntrack.KindEchoRequest, conntrack.KindEchoReply:
		p.EchoID = be16(frame, o+icmpEchoIDOffset)
	case conntrack.KindICMPError:
		p.Carried, p.HasCarried = carriedPacket(frame, o+icmpHeaderLength, end, p.Family)
	}
}

func be16(b []byte, o int) uint16 { return uint16(b[o])<<8 | uint16(b[o+1]) }
