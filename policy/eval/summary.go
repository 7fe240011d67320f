package eval

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// Defaults of the packet syntax (docs/packets.md) that Summary leaves out.
var (
	defaultSrcMAC = policy.MAC{0x02, 0, 0, 0, 0, 0x01}
	defaultDstMAC = policy.MAC{0x02, 0, 0, 0, 0, 0x02}
)

const (
	arpRequest       = 1
	arpReply         = 2
	defaultTTL       = 64
	ipv4HeaderLength = 20
	ipv6HeaderLength = 40
	ipv6FragLength   = 8
)

// Summary renders p on one line in the packet syntax of docs/packets.md, the
// syntax lab.ParsePacket reads: building a frame from the summary gives a
// packet that every rule treats as it treats p. Defaults (MACs, ttl 64,
// len 0, op request) are left out; TCP flags, the ICMP type and ARP
// addresses are always given. A frame of ether type ARP that is not an
// Ethernet/IPv4 ARP message prints as "ether 0x0806".
//
// Header bytes the syntax cannot spell (IPv4 options, TCP options, IPv6
// extension headers other than the fragment header) are counted in len, so
// that the IP length stays the same.
//
// What connection tracking reads is given too: an echo's identifier (id,
// unless 0) and the flow of the packet an ICMP error carries (about ...),
// when it carries enough of it to have one; an error that does not prints
// what it carries as len, zeros in the frame built from it, which carry no
// flow either.
func (p *Packet) Summary() string {
	var b strings.Builder
	if p.SrcMAC != defaultSrcMAC || p.DstMAC != defaultDstMAC {
		fmt.Fprintf(&b, "ether %s > %s ", p.SrcMAC, p.DstMAC)
	}
	for i := range p.Tags {
		fmt.Fprintf(&b, "vlan %d ", p.VLAN[i])
	}
	switch {
	case p.HasARP:
		fmt.Fprintf(&b, "arp %s > %s", p.ARPSender, p.ARPTarget)
		switch p.ARPOp {
		case arpRequest:
		case arpReply:
			b.WriteString(" op reply")
		default:
			fmt.Fprintf(&b, " op %d", p.ARPOp)
		}
		return b.String()
	case p.Family == 0:
		fmt.Fprintf(&b, "ether 0x%04x", p.EtherType)
		return b.String()
	case p.HasPorts:
		fmt.Fprintf(&b, "%s %s > %s", protoName(p.Proto),
			netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort))
	case p.HasICMP:
		fmt.Fprintf(&b, "%s %s > %s", protoName(p.Proto), p.Src, p.Dst)
	default:
		fmt.Fprintf(&b, "ip %s > %s proto %d", p.Src, p.Dst, p.Proto)
	}
	if p.HasTCPFlags {
		fmt.Fprintf(&b, " flags %s", flagLetters(p.TCPFlags))
	}
	if p.HasICMP {
		fmt.Fprintf(&b, " type %s", icmpTypeText(p.Family, p.ICMPType))
		if p.ICMPCode != 0 {
			fmt.Fprintf(&b, " code %d", p.ICMPCode)
		}
		if p.EchoID != 0 {
			fmt.Fprintf(&b, " id %d", p.EchoID)
		}
	}
	if p.TTL != defaultTTL {
		fmt.Fprintf(&b, " ttl %d", p.TTL)
	}
	if p.Fragment != policy.FragNone {
		fmt.Fprintf(&b, " frag %s", p.Fragment)
	}
	if n := p.payloadLength(); n != 0 {
		fmt.Fprintf(&b, " len %d", n)
	}
	if p.HasCarried {
		b.WriteString(" about ")
		p.Carried.summarize(&b, p.Family)
	}
	return b.String()
}

// summarize writes the about clause of an ICMP error of family that
// carries c: the body of the packet it carries, its echo type and
// identifier, and carry N unless the error holds the 8 bytes of its layer
// 4 that every error must (after its fixed IP header; IPv4 options count
// as carried bytes, so the error's length stays the same). The flow is
// what connection tracking reads; nothing else of the carried packet is
// read by anything, so nothing else is printed.
func (c *Carried) summarize(b *strings.Builder, family int) {
	icmpProto := uint8(wire.ProtoICMP)
	if family == 6 {
		icmpProto = wire.ProtoICMPv6
	}
	switch c.Proto {
	case wire.ProtoTCP, wire.ProtoUDP:
		fmt.Fprintf(b, "%s %s > %s", protoName(c.Proto),
			netip.AddrPortFrom(c.Src.Addr, c.Src.Port), netip.AddrPortFrom(c.Dst.Addr, c.Dst.Port))
	case icmpProto:
		fmt.Fprintf(b, "%s %s > %s type %s", protoName(c.Proto), c.Src.Addr, c.Dst.Addr, icmpTypeText(family, c.ICMPType))
		if c.Src.Port != 0 {
			fmt.Fprintf(b, " id %d", c.Src.Port)
		}
	default:
		fmt.Fprintf(b, "ip %s > %s proto %d", c.Src.Addr, c.Dst.Addr, c.Proto)
	}
	if c.Bytes != embeddedL4Length {
		fmt.Fprintf(b, " carry %d", c.Bytes)
	}
}

// payloadLength is the len option of p's summary: the IP length less the
// headers the packet syntax builds by itself. An ICMP error's about clause
// spells everything after its ICMP header.
func (p *Packet) payloadLength() int {
	if p.HasCarried {
		return 0
	}
	n := int(p.Length) - ipv4HeaderLength
	if p.Family == 6 {
		n = int(p.Length) - ipv6HeaderLength
		if p.Fragment != policy.FragNone {
			n -= ipv6FragLength
		}
	}
	switch {
	case p.HasTCPFlags:
		n -= 20
	case p.HasPorts, p.HasICMP:
		n -= 8
	}
	return n
}

// flagLetters renders a TCP flags byte in tcpdump letters, "." for none.
func flagLetters(flags uint8) string {
	if flags == 0 {
		return "."
	}
	var b []byte
	for i := range 8 {
		if flags&(1<<i) != 0 {
			b = append(b, wire.TCPFlagLetters[i])
		}
	}
	return string(b)
}

// icmpTypeText names an ICMP (family 4) or ICMPv6 (family 6) type, or gives
// its number.
func icmpTypeText(family int, t uint8) string {
	names := wire.ICMPTypes
	if family == 6 {
		names = wire.ICMPv6Types
	}
	if n, ok := names.Name(uint16(t)); ok {
		return n
	}
	return fmt.Sprint(t)
}
