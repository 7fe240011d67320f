package eval

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/wire"
)

func ep(addr string, port uint16) conntrack.Endpoint {
	return conntrack.Endpoint{Addr: netip.MustParseAddr(addr), Port: port}
}

// tracked4 and tracked6 are what the tracker reads of a packet between
// the frame builders' default addresses.
func tracked4(k conntrack.Kind, proto uint8, sport, dport uint16) conntrack.Packet {
	return conntrack.Packet{Kind: k, Family: 4, Proto: proto, Src: ep("10.0.0.1", sport), Dst: ep("10.0.0.2", dport)}
}

func tracked6(k conntrack.Kind, proto uint8, sport, dport uint16) conntrack.Packet {
	return conntrack.Packet{Kind: k, Family: 6, Proto: proto, Src: ep("2001:db8::1", sport), Dst: ep("2001:db8::2", dport)}
}

func withTCPFlags(p conntrack.Packet, f uint8) conntrack.Packet { p.TCPFlags = f; return p }

// errorAbout is an ICMP error from a router to the host, 10.0.0.1 or
// 2001:db8::1, about the flow inner (HasInner false when inner is nil).
func errorAbout(family uint8, inner *conntrack.Endpoints) conntrack.Packet {
	p := conntrack.Packet{Kind: conntrack.KindICMPError, Family: 4, Proto: wire.ProtoICMP,
		Src: ep("192.0.2.254", 0), Dst: ep("10.0.0.1", 0)}
	if family == 6 {
		p.Family, p.Proto = 6, wire.ProtoICMPv6
		p.Src, p.Dst = ep("2001:db8:ff::1", 0), ep("2001:db8::1", 0)
	}
	if inner != nil {
		p.Inner, p.HasInner = *inner, true
	}
	return p
}

func inner4(proto uint8, sport, dport uint16) *conntrack.Endpoints {
	return &conntrack.Endpoints{Proto: proto, Src: ep("10.0.0.1", sport), Dst: ep("10.0.0.2", dport)}
}

func inner6(proto uint8, sport, dport uint16) *conntrack.Endpoints {
	return &conntrack.Endpoints{Proto: proto, Src: ep("2001:db8::1", sport), Dst: ep("2001:db8::2", dport)}
}

// err4 and err6 are frames of an ICMP error from the router to the host
// carrying embedded.
func err4(typ, code uint8, embedded ...[]byte) []byte {
	return ether(0x0800, v4{src: "192.0.2.254", dst: "10.0.0.1", proto: wire.ProtoICMP}.build(icmpError(typ, code, embedded...)))
}

func err6(typ, code uint8, embedded ...[]byte) []byte {
	return ether(0x86dd, v6{src: "2001:db8:ff::1", dst: "2001:db8::1", nh: wire.ProtoICMPv6}.build(icmpError(typ, code, embedded...)))
}

// TestTrack checks what the tracker reads of each kind of packet, row by
// row of docs/conntrack.md's "Which packets are tracked".
func TestTrack(t *testing.T) {
	const (
		tcpP, udpP, icmpP, icmp6P = wire.ProtoTCP, wire.ProtoUDP, wire.ProtoICMP, wire.ProtoICMPv6
		echoReq, echoRep          = conntrack.KindEchoRequest, conntrack.KindEchoReply
		other                     = conntrack.KindOther
	)
	udpDNS4 := v4{proto: udpP}.build(udp(5353, 53))
	tcpSSH6 := v6{nh: tcpP}.build(tcp(40000, 22, syn, 0))
	untracked := conntrack.Packet{}
	type row struct {
		name  string
		frame []byte
		want  conntrack.Packet
	}
	rows := map[string][]row{
		"tcp and udp": {
			{"tcp", ether(0x0800, v4{proto: tcpP}.build(tcp(40000, 22, synAck, 0))),
				withTCPFlags(tracked4(conntrack.KindTCP, tcpP, 40000, 22), synAck)},
			{"tcp with options", ether(0x0800, v4{proto: tcpP, options: 8}.build(tcp(1, 2, wire.TCPAck|wire.TCPPsh, 8))),
				withTCPFlags(tracked4(conntrack.KindTCP, tcpP, 1, 2), wire.TCPAck|wire.TCPPsh)},
			{"tcp first fragment", ether(0x0800, v4{fo: mf, proto: tcpP}.build(tcp(40000, 22, syn, 0))),
				withTCPFlags(tracked4(conntrack.KindTCP, tcpP, 40000, 22), syn)},
			{"udp", ether(0x0800, udpDNS4), tracked4(conntrack.KindUDP, udpP, 5353, 53)},
			{"ipv6 tcp", ether(0x86dd, tcpSSH6), withTCPFlags(tracked6(conntrack.KindTCP, tcpP, 40000, 22), syn)},
			{"ipv6 udp behind extension headers", ether(0x86dd, v6{nh: wire.IPv6ExtHopByHop}.build(ext(wire.IPv6ExtDestOpts, 0), ext(udpP, 1), udp(5353, 53))),
				tracked6(conntrack.KindUDP, udpP, 5353, 53)},
			{"ipv6 udp first fragment", ether(0x86dd, v6{nh: wire.IPv6ExtFragment}.build(frag6(udpP, 0, true), udp(5353, 53))),
				tracked6(conntrack.KindUDP, udpP, 5353, 53)},
			{"one vlan tag takes no part", ether(0x8100, tag(0, 10, 0x0800), udpDNS4), tracked4(conntrack.KindUDP, udpP, 5353, 53)},
			{"two vlan tags take no part", ether(0x88a8, tag(0, 100, 0x8100), tag(3, 200, 0x0800), udpDNS4), tracked4(conntrack.KindUDP, udpP, 5353, 53)},
		},
		"echo": {
			{"request", ether(0x0800, v4{proto: icmpP}.build(echo(8, 0x1234, 1))), tracked4(echoReq, icmpP, 0x1234, 0x1234)},
			{"reply", ether(0x0800, v4{proto: icmpP}.build(echo(0, 7, 9))), tracked4(echoRep, icmpP, 7, 7)},
			{"request first fragment", ether(0x0800, v4{fo: mf, proto: icmpP}.build(echo(8, 7, 1), zeros(100))), tracked4(echoReq, icmpP, 7, 7)},
			{"ipv6 request", ether(0x86dd, v6{nh: icmp6P}.build(echo(128, 0xbeef, 1))), tracked6(echoReq, icmp6P, 0xbeef, 0xbeef)},
			{"ipv6 reply", ether(0x86dd, v6{nh: icmp6P}.build(echo(129, 1, 1))), tracked6(echoRep, icmp6P, 1, 1)},
			{"ipv6 request behind a destination options header", ether(0x86dd, v6{nh: wire.IPv6ExtDestOpts}.build(ext(icmp6P, 0), echo(128, 5, 1))),
				tracked6(echoReq, icmp6P, 5, 5)},
		},
		"icmp errors": {
			{"destination unreachable about udp", err4(3, 3, udpDNS4), errorAbout(4, inner4(udpP, 5353, 53))},
			{"time exceeded about tcp", err4(11, 0, v4{proto: tcpP, tot: 1500}.build(tcp(40000, 22, syn, 0)[:8])), errorAbout(4, inner4(tcpP, 40000, 22))},
			{"parameter problem", err4(12, 0, udpDNS4), errorAbout(4, inner4(udpP, 5353, 53))},
			{"embedded ipv4 with options", err4(3, 4, v4{proto: tcpP, options: 12}.build(tcp(40000, 443, wire.TCPAck, 0)[:8])), errorAbout(4, inner4(tcpP, 40000, 443))},
			{"embedded first fragment", err4(3, 4, v4{proto: udpP, fo: mf}.build(udp(5353, 53))), errorAbout(4, inner4(udpP, 5353, 53))},
			{"about an echo request", err4(3, 1, v4{proto: icmpP}.build(echo(8, 0x4242, 3))), errorAbout(4, inner4(icmpP, 0x4242, 0x4242))},
			{"about an echo reply", err4(11, 0, v4{proto: icmpP}.build(echo(0, 9, 3))), errorAbout(4, inner4(icmpP, 9, 9))},
			{"about gre: ports 0", err4(3, 2, v4{proto: wire.ProtoGRE}.build(zeros(8))), errorAbout(4, inner4(wire.ProtoGRE, 0, 0))},
			{"about sctp: ports 0", err4(3, 2, v4{proto: wire.ProtoSCTP}.build(udp(1, 2))), errorAbout(4, inner4(wire.ProtoSCTP, 0, 0))},
			{"first fragment of an error", ether(0x0800, v4{src: "192.0.2.254", dst: "10.0.0.1", proto: icmpP, fo: mf}.build(icmpError(3, 3, udpDNS4))),
				errorAbout(4, inner4(udpP, 5353, 53))},
			{"ipv6 destination unreachable", err6(1, 4, tcpSSH6), errorAbout(6, inner6(tcpP, 40000, 22))},
			{"ipv6 packet too big", err6(2, 0, tcpSSH6), errorAbout(6, inner6(tcpP, 40000, 22))},
			{"ipv6 time exceeded", err6(3, 0, tcpSSH6), errorAbout(6, inner6(tcpP, 40000, 22))},
			{"ipv6 parameter problem", err6(4, 1, tcpSSH6), errorAbout(6, inner6(tcpP, 40000, 22))},
			// Extension headers of an embedded IPv6 packet are not walked:
			// the first one is taken for the protocol, with ports 0.
			{"embedded ipv6 extension headers are not walked", err6(1, 0, v6{nh: wire.IPv6ExtHopByHop, plen: 1400}.build(ext(wire.IPv6ExtFragment, 0), frag6(udpP, 0, true), udp(5353, 53))),
				errorAbout(6, inner6(wire.IPv6ExtHopByHop, 0, 0))},
			{"about an ipv6 echo", err6(1, 0, v6{nh: icmp6P}.build(echo(128, 77, 1))), errorAbout(6, inner6(icmp6P, 77, 77))},
			{"about an ipv6 echo reply", err6(3, 0, v6{nh: icmp6P}.build(echo(129, 77, 1))), errorAbout(6, inner6(icmp6P, 77, 77))},
			{"about esp in ipv6: ports 0", err6(1, 0, v6{nh: wire.ProtoESP}.build(zeros(8))), errorAbout(6, inner6(wire.ProtoESP, 0, 0))},
			{"about icmp in ipv6: ports 0", err6(1, 0, v6{nh: icmpP}.build(echo(8, 7, 1))), errorAbout(6, inner6(icmpP, 0, 0))},

			{"too little: 4 bytes of udp", err4(3, 3, udpDNS4[:24]), errorAbout(4, nil)},
			{"too little: 7 bytes of tcp", err4(3, 3, v4{proto: tcpP}.build(tcp(1, 2, syn, 0)[:7])), errorAbout(4, nil)},
			{"too little: the ipv4 header cut short", err4(3, 3, udpDNS4[:19]), errorAbout(4, nil)},
			{"too little: options not carried", err4(3, 3, v4{proto: udpP, options: 8}.build(udp(1, 2))[:32]), errorAbout(4, nil)},
			{"too little: nothing carried", err4(3, 3), errorAbout(4, nil)},
			{"too little: carried only in ethernet padding", pad(ether(0x0800, v4{src: "192.0.2.254", dst: "10.0.0.1", proto: icmpP}.build(icmpError(3, 3, udpDNS4[:24]))), 80),
				errorAbout(4, nil)},
			{"embedded ihl < 5", err4(3, 3, v4{proto: udpP, ihl: 4}.build(udp(5353, 53))), errorAbout(4, nil)},
			{"embedded version 6 in an icmp error", err4(3, 3, tcpSSH6), errorAbout(4, nil)},
			{"embedded version 4 in an icmpv6 error", err6(1, 3, udpDNS4, zeros(20)), errorAbout(6, nil)},
			{"embedded ipv4 header of version 6", err4(3, 3, v4{version: 6, proto: udpP}.build(udp(5353, 53))), errorAbout(4, nil)},
			{"embedded ipv6 header of version 4", err6(1, 3, v6{version: 4, nh: tcpP}.build(tcp(40000, 22, syn, 0))), errorAbout(6, nil)},
			{"embedded later fragment", err4(3, 3, v4{proto: udpP, fo: offset1k}.build(udp(5353, 53))), errorAbout(4, nil)},
			{"embedded ipv6 later fragment: the fragment header is the protocol", err6(1, 0, v6{nh: wire.IPv6ExtFragment}.build(frag6(udpP, 100, false), udp(5353, 53))),
				errorAbout(6, inner6(wire.IPv6ExtFragment, 0, 0))},
			{"embedded ipv6 routing header: its 8 bytes carried", err6(1, 0, v6{nh: wire.IPv6ExtRouting, plen: 1400}.build(ext(udpP, 2)[:16])),
				errorAbout(6, inner6(wire.IPv6ExtRouting, 0, 0))},
			{"embedded ipv6 header cut short", err6(1, 0, tcpSSH6[:39]), errorAbout(6, nil)},
			{"embedded ipv6 without 8 bytes of its upper layer", err6(1, 0, v6{nh: tcpP}.build(tcp(1, 2, syn, 0))[:47]), errorAbout(6, nil)},
			{"embedded ipv6 chain longer than 8", err6(1, 0, v6{nh: 60}.build(ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(udpP, 0), udp(1, 2))),
				errorAbout(6, inner6(wire.IPv6ExtDestOpts, 0, 0))},
			{"about an error: no flow", err4(3, 1, v4{proto: icmpP}.build(icmpError(3, 3, udpDNS4))), errorAbout(4, nil)},
			{"about an ipv6 neighbour solicitation: no flow", err6(1, 0, v6{nh: icmp6P}.build(icmp(135, 0))), errorAbout(6, nil)},
		},
		"other protocols": {
			{"gre", ether(0x0800, v4{proto: wire.ProtoGRE}.build(zeros(4))), tracked4(other, wire.ProtoGRE, 0, 0)},
			{"sctp has ports 0", ether(0x0800, v4{proto: wire.ProtoSCTP}.build(udp(1, 2), zeros(4))), tracked4(other, wire.ProtoSCTP, 0, 0)},
			{"gre first fragment", ether(0x0800, v4{proto: wire.ProtoGRE, fo: mf}.build(zeros(4))), tracked4(other, wire.ProtoGRE, 0, 0)},
			{"ipv6 esp", ether(0x86dd, v6{nh: wire.ProtoESP}.build(zeros(8))), tracked6(other, wire.ProtoESP, 0, 0)},
			{"ipv6 ah behind hop-by-hop", ether(0x86dd, v6{nh: wire.IPv6ExtHopByHop}.build(ext(wire.ProtoAH, 0), zeros(12))), tracked6(other, wire.ProtoAH, 0, 0)},
			{"ipv6 no next header", ether(0x86dd, v6{nh: wire.ProtoNoNext}.build()), tracked6(other, wire.ProtoNoNext, 0, 0)},
			{"icmp in ipv6", ether(0x86dd, v6{nh: icmpP}.build(echo(8, 7, 1))), tracked6(other, icmpP, 0, 0)},
			{"icmpv6 in ipv4", ether(0x0800, v4{proto: icmp6P}.build(echo(128, 7, 1))), tracked4(other, icmp6P, 0, 0)},
		},
		"not tracked": {
			{"neighbour solicitation", ether(0x86dd, v6{nh: icmp6P}.build(icmp(135, 0), zeros(16))), untracked},
			{"neighbour advertisement", ether(0x86dd, v6{nh: icmp6P}.build(icmp(136, 0), zeros(16))), untracked},
			{"router solicitation", ether(0x86dd, v6{nh: icmp6P}.build(icmp(133, 0))), untracked},
			{"router advertisement", ether(0x86dd, v6{nh: icmp6P}.build(icmp(134, 0), zeros(8))), untracked},
			{"ipv6 redirect", ether(0x86dd, v6{nh: icmp6P}.build(icmp(137, 0), zeros(32))), untracked},
			{"mld query", ether(0x86dd, v6{nh: icmp6P}.build(icmp(130, 0), zeros(16))), untracked},
			{"icmpv6 echo number in ipv4 icmp", ether(0x0800, v4{proto: icmpP}.build(echo(128, 7, 1))), untracked},
			{"icmp redirect", ether(0x0800, v4{proto: icmpP}.build(icmp(5, 1), udpDNS4)), untracked},
			{"icmp source quench", ether(0x0800, v4{proto: icmpP}.build(icmp(4, 0), udpDNS4)), untracked},
			{"icmp timestamp", ether(0x0800, v4{proto: icmpP}.build(icmp(13, 0), zeros(12))), untracked},
			{"icmp router advertisement", ether(0x0800, v4{proto: icmpP}.build(icmp(9, 0))), untracked},
			{"tcp later fragment", later4, untracked},
			{"ipv6 udp later fragment", later6, untracked},
			{"icmp later fragment", ether(0x0800, v4{fo: offset1k, proto: icmpP}.build(echo(8, 7, 1))), untracked},
			{"gre later fragment", ether(0x0800, v4{fo: offset1k, proto: wire.ProtoGRE}.build(zeros(8))), untracked},
			{"arp", arpFrame, untracked},
			{"arp in a vlan", ether(0x8100, tag(0, 5, wire.EtherTypeARP), arp(1, "10.0.0.1", "10.0.0.2")), untracked},
			{"lldp", pad(ether(0x88cc), 60), untracked},
			{"three vlan tags: not ip", ether(0x8100, tag(0, 1, 0x8100), tag(0, 2, 0x8100), tag(0, 3, 0x0800), udpDNS4), untracked},
			{"malformed", badFrame, untracked},
			{"malformed tcp", ether(0x0800, v4{proto: tcpP}.build(tcp(1, 2, syn, 0)[:19])), untracked},
			{"malformed icmp", ether(0x0800, v4{proto: icmpP}.build(echo(8, 1, 1)[:7])), untracked},
		},
	}
	for group, rs := range rows {
		for _, r := range rs {
			t.Run(group+"/"+r.name, func(t *testing.T) {
				if diff := cmp.Diff(r.want, Track(r.frame), cmpAddr); diff != "" {
					t.Errorf("Track (-want +got):\n%s", diff)
				}
			})
		}
	}
}
