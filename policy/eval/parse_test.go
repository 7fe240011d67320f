package eval

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// Packets the parse tests expect; Len is filled in from the frame.

func want4(proto uint8, length uint32, mods ...func(*Packet)) *Packet {
	return wantIP(4, "10.0.0.1", "10.0.0.2", proto, length, mods...)
}

func want6(proto uint8, length uint32, mods ...func(*Packet)) *Packet {
	return wantIP(6, "2001:db8::1", "2001:db8::2", proto, length, mods...)
}

func wantIP(family int, src, dst string, proto uint8, length uint32, mods ...func(*Packet)) *Packet {
	et := uint16(wire.EtherTypeIPv4)
	if family == 6 {
		et = wire.EtherTypeIPv6
	}
	p := &Packet{
		DstMAC: testDstMAC, SrcMAC: testSrcMAC, EtherType: et, Family: family,
		Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
		Proto: proto, TTL: 64, Length: length, Fragment: policy.FragNone,
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func wantL2(et uint16, mods ...func(*Packet)) *Packet {
	p := &Packet{DstMAC: testDstMAC, SrcMAC: testSrcMAC, EtherType: et}
	for _, m := range mods {
		m(p)
	}
	return p
}

func withPorts(s, d uint16) func(*Packet) {
	return func(p *Packet) { p.HasPorts, p.SrcPort, p.DstPort = true, s, d }
}

func withFlags(f uint8) func(*Packet) {
	return func(p *Packet) { p.HasTCPFlags, p.TCPFlags = true, f }
}

func withTCP(s, d uint16, f uint8) func(*Packet) {
	return func(p *Packet) { withPorts(s, d)(p); withFlags(f)(p) }
}

func withICMP(t, c uint8) func(*Packet) {
	return func(p *Packet) { p.HasICMP, p.ICMPType, p.ICMPCode = true, t, c }
}

// withCarried gives the packet an ICMP error carries: its protocol,
// endpoints, ICMP type and bytes after its fixed IP header.
func withCarried(proto uint8, src, dst string, icmpType uint8, bytes int) func(*Packet) {
	return func(p *Packet) {
		s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
		p.HasCarried = true
		p.Carried = Carried{Endpoints: conntrack.Endpoints{Proto: proto,
			Src: conntrack.Endpoint{Addr: s.Addr(), Port: s.Port()}, Dst: conntrack.Endpoint{Addr: d.Addr(), Port: d.Port()}},
			ICMPType: icmpType, Bytes: bytes}
	}
}

func withFrag(f policy.Fragment) func(*Packet) {
	return func(p *Packet) { p.Fragment = f }
}

func withVLAN(ids ...uint16) func(*Packet) {
	return func(p *Packet) {
		p.Tags = len(ids)
		copy(p.VLAN[:], ids)
	}
}

func withTTL(ttl uint8) func(*Packet) { return func(p *Packet) { p.TTL = ttl } }

func withARP(op uint16, sender, target string) func(*Packet) {
	return func(p *Packet) {
		p.HasARP, p.ARPOp = true, op
		p.ARPSender, p.ARPTarget = netip.MustParseAddr(sender), netip.MustParseAddr(target)
	}
}

// arp is an Ethernet/IPv4 ARP message with zero hardware addresses.
func arp(op uint16, sender, target string) []byte {
	b := []byte{0, 1, 0x08, 0x00, 6, 4, byte(op >> 8), byte(op)}
	b = append(b, zeros(6)...)
	b = append(b, netip.MustParseAddr(sender).AsSlice()...)
	b = append(b, zeros(6)...)
	return append(b, netip.MustParseAddr(target).AsSlice()...)
}

const (
	syn    = wire.TCPSyn
	synAck = wire.TCPSyn | wire.TCPAck
	// IPv4 flags and offset field: more fragments, and an offset of 1480
	// bytes (185 units of 8).
	mf       = 0x2000
	offset1k = 185
)

// parseCase is a frame and what Parse must make of it: a packet or the
// malformed reason and offset.
type parseCase struct {
	name      string
	frame     []byte
	want      *Packet
	malformed *Malformed
}

func bad(reason string, off int) *Malformed { return &Malformed{Reason: reason, Offset: off} }

// parseCases covers every condition of docs/datapath.md and every "Parsing"
// line of PITFALLS.md.
var parseCases = []parseCase{
	// Ethernet and VLAN.
	{name: "empty frame", frame: nil, malformed: bad(reasonEthernetShort, 0)},
	{name: "ethernet 13 bytes", frame: ether(0x0800)[:13], malformed: bad(reasonEthernetShort, 0)},
	{name: "ethernet header only", frame: ether(0x88cc), want: wantL2(0x88cc)},
	{name: "lldp padded", frame: pad(ether(0x88cc), 60), want: wantL2(0x88cc)},
	{name: "arp without ethernet/ipv4 fields", frame: ether(wire.EtherTypeARP, zeros(28)), want: wantL2(wire.EtherTypeARP)},
	{name: "arp reply", frame: ether(wire.EtherTypeARP, arp(2, "192.0.2.9", "192.0.2.1")),
		want: wantL2(wire.EtherTypeARP, withARP(2, "192.0.2.9", "192.0.2.1"))},
	{name: "arp cut short", frame: ether(wire.EtherTypeARP, arp(1, "192.0.2.9", "192.0.2.1")[:27]), want: wantL2(wire.EtherTypeARP)},
	{name: "arp with 16-byte protocol addresses", frame: ether(wire.EtherTypeARP, func() []byte {
		b := arp(1, "192.0.2.9", "192.0.2.1")
		b[5] = 16
		return b
	}()), want: wantL2(wire.EtherTypeARP)},
	{name: "arp in vlan", frame: ether(0x8100, tag(0, 7, wire.EtherTypeARP), zeros(28)),
		want: wantL2(wire.EtherTypeARP, withVLAN(7))},
	{name: "vlan tag cut", frame: ether(0x8100, []byte{0, 10}), malformed: bad(reasonVLANShort, 14)},
	{name: "vlan tag without payload", frame: ether(0x8100, tag(0, 10, 0x88cc)), want: wantL2(0x88cc, withVLAN(10))},
	{name: "second vlan tag cut", frame: ether(0x88a8, tag(0, 10, 0x8100), []byte{0, 20, 8}),
		malformed: bad(reasonVLANShort, 18)},
	{name: "vlan one tag ipv4", frame: ether(0x8100, tag(3, 10, 0x0800), v4{proto: 17}.build(udp(1, 2))),
		want: want4(17, 28, withVLAN(10), withPorts(1, 2))},
	{name: "vlan 802.1ad + 802.1q", frame: ether(0x88a8, tag(0, 100, 0x8100), tag(0, 200, 0x86dd), v6{nh: 17}.build(udp(1, 2))),
		want: want6(17, 48, withVLAN(100, 200), withPorts(1, 2))},
	{name: "vlan 802.1q + 802.1q", frame: ether(0x8100, tag(0, 1, 0x8100), tag(0, 2, 0x0800), v4{proto: 1}.build(icmp(8, 0))),
		want: want4(1, 28, withVLAN(1, 2), withICMP(8, 0))},
	{name: "vlan priority tag id 0", frame: ether(0x8100, tag(5, 0, 0x0800), v4{proto: 6}.build(tcp(1, 2, syn, 0))),
		want: want4(6, 40, withVLAN(0), withTCP(1, 2, syn))},
	{name: "vlan id masks priority bits", frame: ether(0x8100, tag(7, 0xfff, 0x88cc)), want: wantL2(0x88cc, withVLAN(0xfff))},
	{name: "third tag is not parsed", frame: ether(0x8100, tag(0, 1, 0x8100), tag(0, 2, 0x8100), tag(0, 3, 0x0800), v4{proto: 6}.build(tcp(1, 2, syn, 0))),
		want: wantL2(0x8100, withVLAN(1, 2))},

	// IPv4.
	{name: "ipv4 19 bytes", frame: ether(0x0800, zeros(19)), malformed: bad(reasonIPv4Short, 14)},
	{name: "ipv4 header cut after vlan", frame: ether(0x8100, tag(0, 1, 0x0800), v4{proto: 6}.build()[:19]), malformed: bad(reasonIPv4Short, 18)},
	{name: "ipv4 version 6", frame: ether(0x0800, v4{version: 6, proto: 17}.build(udp(1, 2))), malformed: bad(reasonIPv4Version, 14)},
	{name: "ipv4 ihl 4", frame: ether(0x0800, v4{ihl: 4, proto: 17}.build(udp(1, 2))), malformed: bad(reasonIPv4IHL, 14)},
	{name: "ipv4 ihl beyond frame", frame: ether(0x0800, v4{ihl: 15, tot: 28, proto: 17}.build(udp(1, 2))), malformed: bad(reasonIPv4Options, 14)},
	{name: "ipv4 tot < hl", frame: ether(0x0800, v4{tot: 19, proto: 17}.build(udp(1, 2))), malformed: bad(reasonIPv4TotShort, 14)},
	{name: "ipv4 tot < hl with options", frame: ether(0x0800, v4{options: 8, tot: 24, proto: 17}.build(udp(1, 2))), malformed: bad(reasonIPv4TotShort, 14)},
	{name: "ipv4 tot beyond frame", frame: ether(0x0800, v4{tot: 29, proto: 17}.build(udp(1, 2))), malformed: bad(reasonIPv4TotLong, 14)},
	{name: "ipv4 tot beyond padded frame", frame: pad(ether(0x0800, v4{tot: 47, proto: 17}.build(udp(1, 2))), 60), malformed: bad(reasonIPv4TotLong, 14)},
	{name: "ipv4 padding ignored", frame: pad(ether(0x0800, v4{proto: 6}.build(tcp(1234, 22, syn, 0))), 60),
		want: want4(6, 40, withTCP(1234, 22, syn))},
	{name: "ipv4 tot shorter than frame", frame: ether(0x0800, v4{tot: 28, proto: 17}.build(udp(1, 2), zeros(100))),
		want: want4(17, 28, withPorts(1, 2))},
	{name: "ipv4 header only", frame: ether(0x0800, v4{proto: 253}.build()), want: want4(253, 20)},
	{name: "ipv4 options", frame: ether(0x0800, v4{options: 4, proto: 17}.build(udp(53, 5353))),
		want: want4(17, 32, withPorts(53, 5353))},
	{name: "ipv4 options 40 bytes", frame: ether(0x0800, v4{options: 40, proto: 6}.build(tcp(1, 443, synAck, 0))),
		want: want4(6, 80, withTCP(1, 443, synAck))},
	{name: "ipv4 ttl", frame: ether(0x0800, v4{ttl: 1, proto: 17}.build(udp(1, 2))), want: want4(17, 28, withPorts(1, 2), withTTL(1))},
	{name: "ipv4 addresses", frame: ether(0x0800, v4{src: "192.0.2.1", dst: "198.51.100.7", proto: 47}.build()),
		want: wantIP(4, "192.0.2.1", "198.51.100.7", 47, 20)},
	{name: "ipv4 first fragment", frame: ether(0x0800, v4{fo: mf, proto: 6}.build(tcp(1, 80, syn, 0), zeros(8))),
		want: want4(6, 48, withTCP(1, 80, syn), withFrag(policy.FragFirst))},
	{name: "ipv4 first fragment tcp cut", frame: ether(0x0800, v4{fo: mf, proto: 6}.build(tcp(1, 80, syn, 0)[:16])),
		malformed: bad(reasonTCPShort, 34)},
	{name: "ipv4 later fragment has no ports", frame: ether(0x0800, v4{fo: offset1k, proto: 6}.build(tcp(1, 80, syn, 0))),
		want: want4(6, 40, withFrag(policy.FragLater))},
	{name: "ipv4 later fragment with more fragments", frame: ether(0x0800, v4{fo: mf | 1, proto: 17}.build(zeros(8))),
		want: want4(17, 28, withFrag(policy.FragLater))},
	{name: "ipv4 tiny later fragment", frame: ether(0x0800, v4{fo: 1, proto: 6}.build(zeros(2))),
		want: want4(6, 22, withFrag(policy.FragLater))},
	{name: "ipv4 don't fragment is no fragment", frame: ether(0x0800, v4{fo: 0x4000, proto: 17}.build(udp(1, 2))),
		want: want4(17, 28, withPorts(1, 2))},
	{name: "ipv4 esp", frame: ether(0x0800, v4{proto: 50}.build(zeros(8))), want: want4(50, 28)},
	{name: "ipv4 ah", frame: ether(0x0800, v4{proto: 51}.build(zeros(12))), want: want4(51, 32)},
	{name: "ipv4 proto 58 is not icmp", frame: ether(0x0800, v4{proto: 58}.build()), want: want4(58, 20)},

	// IPv6.
	{name: "ipv6 39 bytes", frame: ether(0x86dd, v6{nh: 59}.build()[:39]), malformed: bad(reasonIPv6Short, 14)},
	{name: "ipv6 version 4", frame: ether(0x86dd, v6{version: 4, nh: 59}.build()), malformed: bad(reasonIPv6Version, 14)},
	{name: "ipv6 plen beyond frame", frame: ether(0x86dd, v6{plen: 9, nh: 17}.build(udp(1, 2))), malformed: bad(reasonIPv6Payload, 14)},
	{name: "ipv6 plen beyond padded frame", frame: pad(ether(0x86dd, v6{plen: 7, nh: 59}.build()), 60), malformed: bad(reasonIPv6Payload, 14)},
	{name: "ipv6 no next header", frame: ether(0x86dd, v6{nh: 59}.build()), want: want6(59, 40)},
	{name: "ipv6 padding and trailing bytes ignored", frame: ether(0x86dd, v6{plen: 8, nh: 17}.build(udp(1, 2), zeros(30))),
		want: want6(17, 48, withPorts(1, 2))},
	{name: "ipv6 tcp", frame: ether(0x86dd, v6{nh: 6, hops: 255}.build(tcp(40000, 443, synAck, 0))),
		want: want6(6, 60, withTCP(40000, 443, synAck), withTTL(255))},
	{name: "ipv6 icmpv6", frame: ether(0x86dd, v6{nh: 58}.build(icmp(135, 0))), want: want6(58, 48, withICMP(135, 0))},
	{name: "ipv6 proto 1 is not icmpv6", frame: ether(0x86dd, v6{nh: 1}.build(icmp(8, 0))), want: want6(1, 48)},
	{name: "ipv6 icmpv6 after hop-by-hop and destination options", frame: ether(0x86dd, v6{nh: 0}.build(ext(60, 0), ext(58, 1), icmp(128, 0))),
		want: want6(58, 72, withICMP(128, 0))},
	{name: "ipv6 routing then udp", frame: ether(0x86dd, v6{nh: 43}.build(ext(17, 2), udp(1, 2))), want: want6(17, 72, withPorts(1, 2))},
	{name: "ipv6 hop-by-hop then no next header", frame: ether(0x86dd, v6{nh: 0}.build(ext(59, 0))), want: want6(59, 48)},
	{name: "ipv6 hop-by-hop cut", frame: ether(0x86dd, v6{nh: 0}.build(zeros(4))), malformed: bad(reasonIPv6ExtShort, 54)},
	{name: "ipv6 routing cut", frame: ether(0x86dd, v6{nh: 43}.build(zeros(7))), malformed: bad(reasonIPv6ExtShort, 54)},
	{name: "ipv6 destination options cut", frame: ether(0x86dd, v6{nh: 0}.build(ext(60, 0), zeros(4))), malformed: bad(reasonIPv6ExtShort, 62)},
	{name: "ipv6 ext header cut by plen, not frame", frame: ether(0x86dd, v6{plen: 4, nh: 0}.build(ext(59, 0))), malformed: bad(reasonIPv6ExtShort, 54)},
	{name: "ipv6 fragment header cut", frame: ether(0x86dd, v6{nh: 44}.build(zeros(6))), malformed: bad(reasonIPv6FragShort, 54)},
	{name: "ipv6 ext header length past end", frame: ether(0x86dd, v6{nh: 0}.build(ext(59, 1)[:8])), malformed: bad(reasonIPv6ExtLen, 54)},
	{name: "ipv6 ext header length past plen", frame: ether(0x86dd, v6{plen: 16, nh: 60}.build(ext(59, 2))), malformed: bad(reasonIPv6ExtLen, 54)},
	{name: "ipv6 8 ext headers", frame: ether(0x86dd, v6{nh: 0}.build(extChain(8, 6), tcp(1, 2, syn, 0))),
		want: want6(6, 124, withTCP(1, 2, syn))},
	{name: "ipv6 9 ext headers", frame: ether(0x86dd, v6{nh: 0}.build(extChain(9, 6), tcp(1, 2, syn, 0))),
		malformed: bad(reasonIPv6ExtCount, 118)},
	{name: "ipv6 8 ext headers then fragment", frame: ether(0x86dd, v6{nh: 0}.build(extChain(8, 44), frag6(17, 0, true), udp(1, 2))),
		malformed: bad(reasonIPv6ExtCount, 118)},
	{name: "ipv6 first fragment", frame: ether(0x86dd, v6{nh: 44}.build(frag6(6, 0, true), tcp(1, 22, syn, 0))),
		want: want6(6, 68, withTCP(1, 22, syn), withFrag(policy.FragFirst))},
	{name: "ipv6 first fragment udp cut", frame: ether(0x86dd, v6{nh: 44}.build(frag6(17, 0, true), zeros(4))),
		malformed: bad(reasonUDPShort, 62)},
	{name: "ipv6 later fragment", frame: ether(0x86dd, v6{nh: 44}.build(frag6(6, 185, false), tcp(1, 22, syn, 0))),
		want: want6(6, 68, withFrag(policy.FragLater))},
	{name: "ipv6 later fragment proto is its next header", frame: ether(0x86dd, v6{nh: 0}.build(ext(44, 0), frag6(60, 1, true), zeros(3))),
		want: want6(60, 59, withFrag(policy.FragLater))},
	{name: "ipv6 atomic fragment", frame: ether(0x86dd, v6{nh: 44}.build(frag6(17, 0, false), udp(1, 2))),
		want: want6(17, 56, withPorts(1, 2))},
	{name: "ipv6 ah is the upper layer", frame: ether(0x86dd, v6{nh: 51}.build(zeros(16))), want: want6(51, 56)},
	{name: "ipv6 esp is the upper layer", frame: ether(0x86dd, v6{nh: 0}.build(ext(50, 0), zeros(8))), want: want6(50, 56)},

	// Layer 4.
	{name: "tcp 19 bytes", frame: ether(0x0800, v4{proto: 6}.build(tcp(1, 2, syn, 0)[:19])), malformed: bad(reasonTCPShort, 34)},
	{name: "tcp cut by tot in padded frame", frame: pad(ether(0x0800, v4{proto: 6}.build(tcp(1, 2, syn, 0)[:10])), 60),
		malformed: bad(reasonTCPShort, 34)},
	{name: "tcp doff 4", frame: ether(0x0800, v4{proto: 6}.build(tcp(1, 2, syn, 4))), malformed: bad(reasonTCPDataOffset, 34)},
	{name: "tcp doff beyond end", frame: ether(0x0800, v4{proto: 6}.build(tcp(1, 2, syn, 6)[:20])), malformed: bad(reasonTCPOptions, 34)},
	{name: "tcp options", frame: ether(0x0800, v4{proto: 6}.build(tcp(1, 2, synAck, 15))), want: want4(6, 80, withTCP(1, 2, synAck))},
	{name: "tcp after ipv4 options", frame: ether(0x0800, v4{options: 4, proto: 6}.build(tcp(1, 2, syn, 0)[:19])), malformed: bad(reasonTCPShort, 38)},
	{name: "tcp no flags", frame: ether(0x0800, v4{proto: 6}.build(tcp(1, 2, 0, 0))), want: want4(6, 40, withTCP(1, 2, 0))},
	{name: "tcp in ipv6 cut", frame: ether(0x86dd, v6{nh: 6}.build(zeros(19))), malformed: bad(reasonTCPShort, 54)},
	{name: "udp 7 bytes", frame: ether(0x0800, v4{proto: 17}.build(zeros(7))), malformed: bad(reasonUDPShort, 34)},
	{name: "icmp 7 bytes", frame: ether(0x0800, v4{proto: 1}.build(zeros(7))), malformed: bad(reasonICMPShort, 34)},
	{name: "icmp", frame: ether(0x0800, v4{proto: 1}.build(icmp(3, 4))), want: want4(1, 28, withICMP(3, 4))},
	{name: "icmp error carrying an inner packet", frame: ether(0x0800, v4{proto: 1}.build(icmp(11, 0), v4{proto: 6}.build(tcp(9, 9, syn, 0)[:8]))),
		want: want4(1, 56, withICMP(11, 0), withCarried(6, "10.0.0.1:9", "10.0.0.2:9", 0, 8))},
	{name: "icmp error carrying 7 bytes of the inner layer 4", frame: ether(0x0800, v4{proto: 1}.build(icmp(3, 3), v4{proto: 17}.build(zeros(7)))),
		want: want4(1, 55, withICMP(3, 3))},
	{name: "icmp error carrying an echo and more", frame: ether(0x0800, v4{proto: 1}.build(icmp(3, 1), v4{proto: 1}.build([]byte{8, 0, 0, 0, 0x12, 0x34, 0, 1}, zeros(5)))),
		want: want4(1, 61, withICMP(3, 1), withCarried(1, "10.0.0.1:4660", "10.0.0.2:4660", 8, 13))},
	{name: "icmp echo reply", frame: ether(0x0800, v4{proto: 1}.build([]byte{0, 0, 0, 0, 0xab, 0xcd, 0, 1})),
		want: want4(1, 28, withICMP(0, 0), func(p *Packet) { p.EchoID = 0xabcd })},
	{name: "icmpv6 7 bytes", frame: ether(0x86dd, v6{nh: 58}.build(zeros(7))), malformed: bad(reasonICMPv6Short, 54)},
	{name: "icmpv6 after ext header cut", frame: ether(0x86dd, v6{nh: 60}.build(ext(58, 0), zeros(4))), malformed: bad(reasonICMPv6Short, 62)},
}

// extChain is n destination-options headers, the last naming next.
func extChain(n int, next uint8) []byte {
	var b []byte
	for i := range n {
		nh := uint8(60)
		if i == n-1 {
			nh = next
		}
		b = append(b, ext(nh, 0)...)
	}
	return b
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			got, bad := Parse(tc.frame)
			if diff := cmp.Diff(tc.malformed, bad); diff != "" {
				t.Errorf("malformed (-want +got):\n%s", diff)
			}
			var want *Packet
			if tc.want != nil {
				w := *tc.want
				w.Len = len(tc.frame)
				want = &w
			}
			if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
				t.Errorf("packet (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMalformedError(t *testing.T) {
	_, bad := Parse(ether(0x0800, zeros(3)))
	if diff := cmp.Diff("malformed: ipv4 header cut short at offset 14", bad.Error()); diff != "" {
		t.Error(diff)
	}
}
