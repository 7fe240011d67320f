package wire

import "slices"

// Ether types, as they follow the MAC addresses or a VLAN tag.
const (
	// EtherTypeIPv4 is an IPv4 packet (policy name "ipv4").
	EtherTypeIPv4 = 0x0800
	// EtherTypeARP is an ARP message (policy name "arp").
	EtherTypeARP = 0x0806
	// EtherTypeVLAN is an 802.1Q VLAN tag.
	EtherTypeVLAN = 0x8100
	// EtherTypeQinQ is an 802.1ad (outer, service) VLAN tag.
	EtherTypeQinQ = 0x88a8
	// EtherTypeIPv6 is an IPv6 packet (policy name "ipv6").
	EtherTypeIPv6 = 0x86dd
)

// IP protocol numbers: the IPv4 protocol field and the IPv6 next header
// that names the upper layer.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoGRE    = 47
	ProtoESP    = 50 // IPsec ESP; in IPv6 it ends the extension header walk
	ProtoAH     = 51 // IPsec AH; in IPv6 it ends the extension header walk
	ProtoICMPv6 = 58
	ProtoNoNext = 59 // IPv6 "no next header": nothing follows
	ProtoSCTP   = 132
)

// IPv6 extension headers, as next-header values: the headers xdpc walks
// between the IPv6 header and the upper layer (docs/datapath.md). AH and
// ESP are extension headers too, but xdpc does not walk past them: they
// are the packet's protocol (ProtoAH, ProtoESP).
const (
	// IPv6ExtHopByHop is the hop-by-hop options header; it may only
	// follow the IPv6 header, but xdpc walks it wherever it is.
	IPv6ExtHopByHop = 0
	// IPv6ExtRouting is the routing header.
	IPv6ExtRouting = 43
	// IPv6ExtFragment is the fragment header (always 8 bytes).
	IPv6ExtFragment = 44
	// IPv6ExtDestOpts is the destination options header.
	IPv6ExtDestOpts = 60
)

// TCP flag bits, as they appear in byte 13 of the TCP header.
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPPsh uint8 = 0x08
	TCPAck uint8 = 0x10
	TCPUrg uint8 = 0x20
	TCPEce uint8 = 0x40
	TCPCwr uint8 = 0x80
)

// TCPFlagLetters are tcpdump's letters for the TCP flags, lowest bit first
// (the packet syntax of docs/packets.md).
const TCPFlagLetters = "FSRPAUEC"

// TCPFlagNames are the policy language's names of the TCP flags, lowest bit
// first.
var TCPFlagNames = Names{[]Name{
	{"fin", uint16(TCPFin)}, {"syn", uint16(TCPSyn)}, {"rst", uint16(TCPRst)}, {"psh", uint16(TCPPsh)},
	{"ack", uint16(TCPAck)}, {"urg", uint16(TCPUrg)}, {"ece", uint16(TCPEce)}, {"cwr", uint16(TCPCwr)},
}}

// EtherTypes names the ether types the policy language knows by name.
var EtherTypes = Names{[]Name{
	{"ipv4", EtherTypeIPv4}, {"arp", EtherTypeARP}, {"ipv6", EtherTypeIPv6},
}}

// Protocols names the IP protocols the policy language and the packet
// syntax know by name.
var Protocols = Names{[]Name{
	{"icmp", ProtoICMP}, {"tcp", ProtoTCP}, {"udp", ProtoUDP}, {"gre", ProtoGRE},
	{"esp", ProtoESP}, {"ah", ProtoAH}, {"icmpv6", ProtoICMPv6}, {"sctp", ProtoSCTP},
}}

// ICMPTypes names ICMP (IPv4) message types.
var ICMPTypes = Names{[]Name{
	{"echo-reply", 0}, {"dest-unreachable", 3}, {"source-quench", 4}, {"redirect", 5},
	{"echo-request", 8}, {"router-advertisement", 9}, {"router-solicitation", 10},
	{"time-exceeded", 11}, {"parameter-problem", 12}, {"timestamp-request", 13},
	{"timestamp-reply", 14},
}}

// ICMPv6Types names ICMPv6 message types.
var ICMPv6Types = Names{[]Name{
	{"dest-unreachable", 1}, {"packet-too-big", 2}, {"time-exceeded", 3},
	{"parameter-problem", 4}, {"echo-request", 128}, {"echo-reply", 129},
	{"router-solicitation", 133}, {"router-advertisement", 134},
	{"neighbor-solicitation", 135}, {"neighbor-advertisement", 136}, {"redirect", 137},
}}

// ICMP message types the datapath and the packet syntax refer to.
const (
	ICMPEchoRequest   = 8
	ICMPv6EchoRequest = 128
)

// Name is one named number of a vocabulary.
type Name struct {
	Name   string
	Number uint16
}

// Names is a vocabulary: lower-case names of numbers, at most one name per
// number, in ascending order of number. The zero value names nothing.
type Names struct{ names []Name }

// Number returns the number named name; names are lower case and
// compared exactly.
func (n Names) Number(name string) (uint16, bool) {
	for _, e := range n.names {
		if e.Name == name {
			return e.Number, true
		}
	}
	return 0, false
}

// Name returns the name of number v.
func (n Names) Name(v uint16) (string, bool) {
	for _, e := range n.names {
		if e.Number == v {
			return e.Name, true
		}
	}
	return "", false
}

// List returns every name in ascending order of number.
func (n Names) List() []string {
	out := make([]string, len(n.names))
	for i, e := range n.names {
		out[i] = e.Name
	}
	return out
}

// All returns the vocabulary's entries in ascending order of number.
func (n Names) All() []Name { return slices.Clone(n.names) }
