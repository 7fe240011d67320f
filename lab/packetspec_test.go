package lab

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/internal/checksum"

	"github.com/xdpc/xdpc/lab/corpus"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/policy/eval"
)

var cmpPacket = []cmp.Option{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmpopts.IgnoreFields(eval.Packet{}, "Len"),
}

// TestPacketSpecRoundTrip builds a frame from each spec, checks its summary,
// and checks that the frame built from the summary parses to the same packet
// (so every rule treats both alike).
func TestPacketSpecRoundTrip(t *testing.T) {
	tests := []struct{ spec, summary string }{
		{"tcp 10.0.0.1:1234 > 10.0.0.2:22", "tcp 10.0.0.1:1234 > 10.0.0.2:22 flags S"},
		{"tcp 10.0.0.1:1234>10.0.0.2:443 flags SA ttl 3 len 100", "tcp 10.0.0.1:1234 > 10.0.0.2:443 flags SA ttl 3 len 100"},
		{"tcp [2001:db8::1]:443 > [2001:db8::2]:40000 flags FPU", "tcp [2001:db8::1]:443 > [2001:db8::2]:40000 flags FPU"},
		{"tcp 10.0.0.1:1 > 10.0.0.2:2 flags .", "tcp 10.0.0.1:1 > 10.0.0.2:2 flags ."},
		{"tcp 10.0.0.1:1 > 10.0.0.2:2 flags CEUAPRSF", "tcp 10.0.0.1:1 > 10.0.0.2:2 flags FSRPAUEC"},
		{"udp 10.0.0.1:5353 > 10.0.0.2:53 len 30", "udp 10.0.0.1:5353 > 10.0.0.2:53 len 30"},
		{"udp [2001:db8::1]:1 > [2001:db8::2]:53 ttl 0", "udp [2001:db8::1]:1 > [2001:db8::2]:53 ttl 0"},
		{"icmp 10.0.0.1 > 10.0.0.2", "icmp 10.0.0.1 > 10.0.0.2 type echo-request"},
		{"icmp 10.0.0.1 > 10.0.0.2 code 4 type dest-unreachable", "icmp 10.0.0.1 > 10.0.0.2 type dest-unreachable code 4"},
		{"icmp 10.0.0.1 > 10.0.0.2 type 42 code 1", "icmp 10.0.0.1 > 10.0.0.2 type 42 code 1"},
		{"icmpv6 2001:db8::1 > ff02::1 type neighbor-solicitation ttl 255", "icmpv6 2001:db8::1 > ff02::1 type neighbor-solicitation ttl 255"},
		{"icmpv6 fe80::1 > fe80::2 type 200 len 4", "icmpv6 fe80::1 > fe80::2 type 200 len 4"},
		{"ip 10.0.0.1 > 10.0.0.2 proto gre", "ip 10.0.0.1 > 10.0.0.2 proto 47"},
		{"ip 2001:db8::1 > 2001:db8::2 proto 59", "ip 2001:db8::1 > 2001:db8::2 proto 59"},
		{"ip 10.0.0.1 > 10.0.0.2 proto esp len 16", "ip 10.0.0.1 > 10.0.0.2 proto 50 len 16"},
		{"ip 10.0.0.1 > 10.0.0.2 proto 58", "ip 10.0.0.1 > 10.0.0.2 proto 58"},
		{"arp", "arp 10.0.0.1 > 10.0.0.2"},
		{"arp 192.0.2.1 > 192.0.2.2", "arp 192.0.2.1 > 192.0.2.2"},
		{"arp 192.0.2.1>192.0.2.2 op request", "arp 192.0.2.1 > 192.0.2.2"},
		{"arp 192.0.2.9 > 192.0.2.1 op reply", "arp 192.0.2.9 > 192.0.2.1 op reply"},
		{"arp op 9", "arp 10.0.0.1 > 10.0.0.2 op 9"},
		{"ether 02:00:00:00:00:0a > ff:ff:ff:ff:ff:ff arp 0.0.0.0 > 10.0.0.9", "ether 02:00:00:00:00:0a > ff:ff:ff:ff:ff:ff arp 0.0.0.0 > 10.0.0.9"},
		{"ether 0x0806", "ether 0x0806"},
		{"ether 0x88cc", "ether 0x88cc"},
		{"ether 02:00:00:00:00:0A > ff:ff:ff:ff:ff:ff ether 0x88cc", "ether 02:00:00:00:00:0a > ff:ff:ff:ff:ff:ff ether 0x88cc"},
		{"ether 02:00:00:00:00:01 > 02:00:00:00:00:02 udp 10.0.0.1:1 > 10.0.0.2:2", "udp 10.0.0.1:1 > 10.0.0.2:2"},
		{"vlan 10 udp 10.0.0.1:1 > 10.0.0.2:2", "vlan 10 udp 10.0.0.1:1 > 10.0.0.2:2"},
		{"vlan 100 vlan 200 tcp [2001:db8::1]:1 > [2001:db8::2]:2 flags SA", "vlan 100 vlan 200 tcp [2001:db8::1]:1 > [2001:db8::2]:2 flags SA"},
		{"vlan 0 arp", "vlan 0 arp 10.0.0.1 > 10.0.0.2"},
		{"vlan 1 vlan 4095 ether 0x8100", "vlan 1 vlan 4095 ether 0x8100"},
		{"tcp 10.0.0.1:1 > 10.0.0.2:80 frag first len 1000", "tcp 10.0.0.1:1 > 10.0.0.2:80 flags S frag first len 1000"},
		{"tcp 10.0.0.1:1 > 10.0.0.2:80 frag later", "ip 10.0.0.1 > 10.0.0.2 proto 6 frag later len 20"},
		{"udp [2001:db8::1]:1 > [2001:db8::2]:53 frag first", "udp [2001:db8::1]:1 > [2001:db8::2]:53 frag first"},
		{"udp [2001:db8::1]:1 > [2001:db8::2]:53 frag later len 100", "ip 2001:db8::1 > 2001:db8::2 proto 17 frag later len 108"},
		{"icmp 10.0.0.1 > 10.0.0.2 frag later", "ip 10.0.0.1 > 10.0.0.2 proto 1 frag later len 8"},
		{"ip 10.0.0.1 > 10.0.0.2 proto 6 frag later ttl 1", "ip 10.0.0.1 > 10.0.0.2 proto 6 ttl 1 frag later"},
		{"ip 2001:db8::1 > 2001:db8::2 proto 60 frag later", "ip 2001:db8::1 > 2001:db8::2 proto 60 frag later"},
		{"icmp 10.0.0.1 > 10.0.0.2 id 7", "icmp 10.0.0.1 > 10.0.0.2 type echo-request id 7"},
		{"icmpv6 2001:db8::1 > 2001:db8::2 type echo-reply id 65535", "icmpv6 2001:db8::1 > 2001:db8::2 type echo-reply id 65535"},
		{"icmp 10.0.0.1 > 10.0.0.2 type echo-reply id 0", "icmp 10.0.0.1 > 10.0.0.2 type echo-reply"},
		{"icmp 10.0.0.2 > 10.0.0.9 type dest-unreachable code 3 about udp 10.0.0.9:5353 > 10.0.0.2:53",
			"icmp 10.0.0.2 > 10.0.0.9 type dest-unreachable code 3 about udp 10.0.0.9:5353 > 10.0.0.2:53"},
		{"icmp 192.0.2.1 > 10.0.0.2 type time-exceeded ttl 255 about tcp 10.0.0.2:40000 > 192.0.2.9:80 flags SA ttl 1 carry 20",
			"icmp 192.0.2.1 > 10.0.0.2 type time-exceeded ttl 255 about tcp 10.0.0.2:40000 > 192.0.2.9:80 carry 20"},
		{"icmp 192.0.2.1 > 10.0.0.2 type parameter-problem about icmp 10.0.0.2 > 192.0.2.9 type echo-reply id 9 len 56 carry 64",
			"icmp 192.0.2.1 > 10.0.0.2 type parameter-problem about icmp 10.0.0.2 > 192.0.2.9 type echo-reply id 9 carry 64"},
		{"icmp 192.0.2.1 > 10.0.0.2 type dest-unreachable about ip 10.0.0.2 > 192.0.2.9 proto gre",
			"icmp 192.0.2.1 > 10.0.0.2 type dest-unreachable about ip 10.0.0.2 > 192.0.2.9 proto 47"},
		{"icmpv6 2001:db8::ff > 2001:db8::2 type packet-too-big about icmpv6 2001:db8::2 > 2001:db8::9 type echo-request id 9",
			"icmpv6 2001:db8::ff > 2001:db8::2 type packet-too-big about icmpv6 2001:db8::2 > 2001:db8::9 type echo-request id 9"},
		{"icmpv6 2001:db8::ff > 2001:db8::2 type time-exceeded about tcp [2001:db8::9]:443 > [2001:db8::2]:50000 carry 16",
			"icmpv6 2001:db8::ff > 2001:db8::2 type time-exceeded about tcp [2001:db8::9]:443 > [2001:db8::2]:50000 carry 16"},
		// A carried IPv6 fragment header is taken for the protocol
		// (extension headers are not walked).
		{"icmpv6 2001:db8::ff > 2001:db8::2 type dest-unreachable about udp [2001:db8::2]:1 > [2001:db8::9]:2 frag first",
			"icmpv6 2001:db8::ff > 2001:db8::2 type dest-unreachable about ip 2001:db8::2 > 2001:db8::9 proto 44"},
		// Too little carried, or a later fragment: no flow, so the summary
		// spells what is carried as len.
		{"icmp 192.0.2.1 > 10.0.0.2 type dest-unreachable about udp 10.0.0.2:1 > 192.0.2.9:2 carry 7",
			"icmp 192.0.2.1 > 10.0.0.2 type dest-unreachable len 27"},
		{"icmp 192.0.2.1 > 10.0.0.2 type dest-unreachable about udp 10.0.0.2:1 > 192.0.2.9:2 frag later",
			"icmp 192.0.2.1 > 10.0.0.2 type dest-unreachable len 28"},
		{"icmp 192.0.2.1 > 10.0.0.2 type dest-unreachable about icmp 10.0.0.2 > 192.0.2.9 type time-exceeded",
			"icmp 192.0.2.1 > 10.0.0.2 type dest-unreachable len 28"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			frame, err := ParsePacket(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if len(frame) < 60 {
				t.Errorf("frame of %d bytes, want at least 60", len(frame))
			}
			p := parseWellFormed(t, frame)
			if diff := cmp.Diff(tc.summary, p.Summary()); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
			checkRoundTrip(t, p)
		})
	}
}

// TestPacketSpecFields checks what ParsePacket puts in the headers.
func TestPacketSpecFields(t *testing.T) {
	mac := func(s string) policy.MAC {
		m, _ := net.ParseMAC(s)
		return policy.MAC(m)
	}
	a := netip.MustParseAddr
	tests := []struct {
		spec string
		want eval.Packet
	}{
		{"vlan 7 vlan 8 tcp 192.0.2.1:1000 > 198.51.100.2:443 flags SA ttl 9 len 5 frag first", eval.Packet{
			DstMAC: mac("02:00:00:00:00:02"), SrcMAC: mac("02:00:00:00:00:01"), Tags: 2, VLAN: [2]uint16{7, 8},
			EtherType: 0x0800, Family: 4, Src: a("192.0.2.1"), Dst: a("198.51.100.2"), Proto: 6, TTL: 9, Length: 45,
			Fragment: policy.FragFirst, HasPorts: true, SrcPort: 1000, DstPort: 443, HasTCPFlags: true, TCPFlags: 0x12}},
		{"icmpv6 2001:db8::1 > 2001:db8::2 type packet-too-big code 3 frag first", eval.Packet{
			DstMAC: mac("02:00:00:00:00:02"), SrcMAC: mac("02:00:00:00:00:01"),
			EtherType: 0x86dd, Family: 6, Src: a("2001:db8::1"), Dst: a("2001:db8::2"), Proto: 58, TTL: 64, Length: 56,
			Fragment: policy.FragFirst, HasICMP: true, ICMPType: 2, ICMPCode: 3}},
		{"ether 0a:0b:0c:0d:0e:0f > 01:02:03:04:05:06 arp", eval.Packet{
			DstMAC: mac("01:02:03:04:05:06"), SrcMAC: mac("0a:0b:0c:0d:0e:0f"), EtherType: 0x0806,
			HasARP: true, ARPOp: 1, ARPSender: a("10.0.0.1"), ARPTarget: a("10.0.0.2")}},
		{"vlan 3 arp 192.0.2.7 > 192.0.2.1 op reply", eval.Packet{
			DstMAC: mac("02:00:00:00:00:02"), SrcMAC: mac("02:00:00:00:00:01"), Tags: 1, VLAN: [2]uint16{3}, EtherType: 0x0806,
			HasARP: true, ARPOp: 2, ARPSender: a("192.0.2.7"), ARPTarget: a("192.0.2.1")}},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			frame, err := ParsePacket(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tc.want, parseWellFormed(t, frame), cmpPacket...); diff != "" {
				t.Errorf("packet (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPacketSpecChecksums checks that gopacket finds the checksums right.
func TestPacketSpecChecksums(t *testing.T) {
	for _, spec := range []string{
		"tcp 10.0.0.1:1 > 10.0.0.2:2 len 7",
		"udp [2001:db8::1]:1 > [2001:db8::2]:53 len 3",
		"icmpv6 2001:db8::1 > 2001:db8::2 type echo-reply",
		"vlan 3 icmp 10.0.0.1 > 10.0.0.2",
	} {
		frame, err := ParsePacket(spec)
		if err != nil {
			t.Fatal(err)
		}
		pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		for _, l := range pkt.Layers() {
			c, ok := l.(interface {
				SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
				VerifyChecksum() (error, gopacket.ChecksumVerificationResult)
			})
			if !ok {
				continue
			}
			if err := c.SetNetworkLayerForChecksum(pkt.NetworkLayer()); err != nil {
				t.Fatal(err)
			}
			if err, res := c.VerifyChecksum(); err != nil || !res.Valid {
				t.Errorf("%s: %v checksum: %v, %+v", spec, l.LayerType(), err, res)
			}
		}
		if ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			want := ip.Checksum
			ip.Checksum = 0
			buf := gopacket.NewSerializeBuffer()
			if err := ip.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
				t.Fatal(err)
			}
			if ip.Checksum != want {
				t.Errorf("%s: ipv4 checksum %#04x, want %#04x", spec, want, ip.Checksum)
			}
		}
	}
}

// TestSummaryRoundTripOddFrames summarizes frames that hold headers the
// syntax cannot spell (options, extension headers, a third tag): the summary
// counts them in len, so the IP length and every other field stay the same.
func TestSummaryRoundTripOddFrames(t *testing.T) {
	eth := func(t layers.EthernetType) *layers.Ethernet {
		return &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: t}
	}
	ip4 := func(p layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, TTL: 64, Protocol: p, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	}
	ip6 := func(nh layers.IPProtocol) *layers.IPv6 {
		return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: nh, SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}
	}
	withOptions := ip4(layers.IPProtocolTCP)
	withOptions.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}}
	tcpMSS := &layers.TCP{SrcPort: 1, DstPort: 22, SYN: true, Options: []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}}}}
	_ = tcpMSS.SetNetworkLayerForChecksum(withOptions)
	hbh := ip6(layers.IPProtocolIPv6HopByHop)
	hbh.HopByHop = &layers.IPv6HopByHop{Options: []*layers.IPv6HopByHopOption{{OptionType: 1, OptionData: make([]byte, 4)}}}
	hbh.HopByHop.NextHeader = layers.IPProtocolUDP
	udp := func(ip gopacket.NetworkLayer) *layers.UDP {
		u := &layers.UDP{SrcPort: 1, DstPort: 2}
		_ = u.SetNetworkLayerForChecksum(ip)
		return u
	}
	tagged := ip4(layers.IPProtocolUDP)
	tests := []struct {
		name    string
		layers  []gopacket.SerializableLayer
		summary string
	}{
		{"ipv4 and tcp options", []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4), withOptions, tcpMSS, gopacket.Payload(make([]byte, 10))},
			"tcp 10.0.0.1:1 > 10.0.0.2:22 flags S len 18"},
		{"ipv6 hop-by-hop", []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv6), hbh, udp(hbh)},
			"udp [2001:db8::1]:1 > [2001:db8::2]:2 len 8"},
		{"ipv6 atomic fragment", []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Fragment),
			&layers.IPv6Fragment{NextHeader: layers.IPProtocolICMPv6}, gopacket.Payload([]byte{129, 0, 0, 0, 0, 0, 0, 0})},
			"icmpv6 2001:db8::1 > 2001:db8::2 type echo-reply len 8"},
		{"three tags", []gopacket.SerializableLayer{eth(layers.EthernetTypeQinQ),
			&layers.Dot1Q{VLANIdentifier: 1, Type: layers.EthernetTypeDot1Q}, &layers.Dot1Q{Priority: 5, VLANIdentifier: 2, Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 3, Type: layers.EthernetTypeIPv4}, tagged, udp(tagged)},
			"vlan 1 vlan 2 ether 0x8100"},
		{"ipv4 proto 44", []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolIPv6Fragment)},
			"ip 10.0.0.1 > 10.0.0.2 proto 44"},
		{"arp reply with a target hardware address", []gopacket.SerializableLayer{eth(layers.EthernetTypeARP), &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPReply, SourceHwAddress: net.HardwareAddr{2, 0, 0, 0, 0, 9}, SourceProtAddress: net.IP{10, 0, 0, 9},
			DstHwAddress: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstProtAddress: net.IP{10, 0, 0, 1}}},
			"arp 10.0.0.9 > 10.0.0.1 op reply"},
		{"arp of another hardware type", []gopacket.SerializableLayer{eth(layers.EthernetTypeARP), &layers.ARP{
			AddrType: layers.LinkType(6), Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: make([]byte, 6), SourceProtAddress: net.IP{10, 0, 0, 9},
			DstHwAddress: make([]byte, 6), DstProtAddress: net.IP{10, 0, 0, 1}}},
			"ether 0x0806"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := gopacket.NewSerializeBuffer()
			opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
			if err := gopacket.SerializeLayers(buf, opts, tc.layers...); err != nil {
				t.Fatal(err)
			}
			p := parseWellFormed(t, buf.Bytes())
			if diff := cmp.Diff(tc.summary, p.Summary()); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
			checkRoundTrip(t, p)
		})
	}
}

// TestICMPTypeNames checks, for every type of both families, that the name
// Summary prints is the one ParsePacket reads.
func TestICMPTypeNames(t *testing.T) {
	for _, body := range []string{"icmp 10.0.0.1 > 10.0.0.2", "icmpv6 2001:db8::1 > 2001:db8::2"} {
		for typ := range 256 {
			frame, err := ParsePacket(fmt.Sprintf("%s type %d", body, typ))
			if err != nil {
				t.Fatal(err)
			}
			p := parseWellFormed(t, frame)
			if int(p.ICMPType) != typ {
				t.Fatalf("%s type %d: packet has type %d", body, typ, p.ICMPType)
			}
			checkRoundTrip(t, p)
		}
	}
}

func TestParsePacketErrors(t *testing.T) {
	tests := []struct{ spec, err string }{
		{"", `parse packet "": empty packet: expected a body such as tcp, udp, icmp, icmpv6, ip, arp or ether 0xTYPE`},
		{"sctp 10.0.0.1:1 > 10.0.0.2:2", `parse packet "sctp 10.0.0.1:1 > 10.0.0.2:2": word 1 "sctp": expected a body: tcp, udp, icmp, icmpv6, ip, arp or ether 0xTYPE`},
		{"tcp 10.0.0.1 > 10.0.0.2:2", `parse packet "tcp 10.0.0.1 > 10.0.0.2:2": word 2 "10.0.0.1": expected ADDRESS:PORT, like 10.0.0.1:1234 or [2001:db8::1]:443`},
		{"tcp 2001:db8::1:443 > [2001:db8::2]:2", `parse packet "tcp 2001:db8::1:443 > [2001:db8::2]:2": word 2 "2001:db8::1:443": expected ADDRESS:PORT, like 10.0.0.1:1234 or [2001:db8::1]:443`},
		{"tcp 10.0.0.1:1 10.0.0.2:2", `parse packet "tcp 10.0.0.1:1 10.0.0.2:2": word 3 "10.0.0.2:2": expected ">" between source and destination`},
		{"tcp 10.0.0.1:1 >", `parse packet "tcp 10.0.0.1:1 >": at end of line: expected ADDRESS:PORT, like 10.0.0.1:1234 or [2001:db8::1]:443`},
		{"tcp 10.0.0.1:1 > [2001:db8::2]:2", `parse packet "tcp 10.0.0.1:1 > [2001:db8::2]:2": word 4 "[2001:db8::2]:2": source and destination must both be IPv4 or both IPv6`},
		{"tcp 10.0.0.1:99999 > 10.0.0.2:2", `parse packet "tcp 10.0.0.1:99999 > 10.0.0.2:2": word 2 "10.0.0.1:99999": expected ADDRESS:PORT, like 10.0.0.1:1234 or [2001:db8::1]:443`},
		{"tcp 10.0.0.1:1 > 10.0.0.2:2 flags S.", `parse packet "tcp 10.0.0.1:1 > 10.0.0.2:2 flags S.": word 6 "S.": unknown TCP flag '.': expected letters F S R P A U E C, or . alone for none (write A for ack)`},
		{"tcp 10.0.0.1:1 > 10.0.0.2:2 flags", `parse packet "tcp 10.0.0.1:1 > 10.0.0.2:2 flags": at end of line: expected TCP flags in letters F S R P A U E C, or . for none`},
		{"udp 10.0.0.1:1 > 10.0.0.2:2 flags S", `parse packet "udp 10.0.0.1:1 > 10.0.0.2:2 flags S": word 5 "flags": flags apply only to a tcp body`},
		{"udp 10.0.0.1:1 > 10.0.0.2:2 ttl 1 ttl 2", `parse packet "udp 10.0.0.1:1 > 10.0.0.2:2 ttl 1 ttl 2": word 7 "ttl": option given twice`},
		{"udp 10.0.0.1:1 > 10.0.0.2:2 ttl 256", `parse packet "udp 10.0.0.1:1 > 10.0.0.2:2 ttl 256": word 6 "256": expected a ttl, at most 255`},
		{"udp 10.0.0.1:1 > 10.0.0.2:2 hops 3", `parse packet "udp 10.0.0.1:1 > 10.0.0.2:2 hops 3": word 5 "hops": expected an option: flags, type, code, id, ttl, frag, len, op, csum or about`},
		{"udp 10.0.0.1:1 > 10.0.0.2:2 id 3", `parse packet "udp 10.0.0.1:1 > 10.0.0.2:2 id 3": word 5 "id": id applies only to an icmp or icmpv6 echo`},
		{"icmp 10.0.0.1 > 10.0.0.2 id 3 type dest-unreachable", `parse packet "icmp 10.0.0.1 > 10.0.0.2 id 3 type dest-unreachable": word 6 "3": id applies only to an echo request or reply`},
		{"icmp 10.0.0.1 > 10.0.0.2 id 65536", `parse packet "icmp 10.0.0.1 > 10.0.0.2 id 65536": word 6 "65536": expected an echo identifier, at most 65535`},
		{"udp 10.0.0.1:1 > 10.0.0.2:2 carry 3", `parse packet "udp 10.0.0.1:1 > 10.0.0.2:2 carry 3": word 5 "carry": expected an option: flags, type, code, id, ttl, frag, len, op, csum or about`},
		{"icmp 10.0.0.1 > 10.0.0.2 about udp 10.0.0.2:1 > 10.0.0.1:2", `parse packet "icmp 10.0.0.1 > 10.0.0.2 about udp 10.0.0.2:1 > 10.0.0.1:2": word 5 "about": about applies only to an ICMP error: dest-unreachable, time-exceeded, parameter-problem (or packet-too-big)`},
		{"udp 10.0.0.1:1 > 10.0.0.2:2 about udp 10.0.0.2:1 > 10.0.0.1:2", `parse packet "udp 10.0.0.1:1 > 10.0.0.2:2 about udp 10.0.0.2:1 > 10.0.0.1:2": word 5 "about": about applies only to an ICMP error: dest-unreachable, time-exceeded, parameter-problem (or packet-too-big)`},
		{"icmp 10.0.0.1 > 10.0.0.2 type dest-unreachable len 8 about udp 10.0.0.2:1 > 10.0.0.1:2", `parse packet "icmp 10.0.0.1 > 10.0.0.2 type dest-unreachable len 8 about udp 10.0.0.2:1 > 10.0.0.1:2": word 9 "about": an error with an about clause carries that packet: give carry in the clause, not len`},
		{"icmp 10.0.0.1 > 10.0.0.2 type dest-unreachable about udp [::2]:1 > [::1]:2", `parse packet "icmp 10.0.0.1 > 10.0.0.2 type dest-unreachable about udp [::2]:1 > [::1]:2": word 11 "[::1]:2": an icmp error carries an IPv4 packet`},
		{"icmpv6 ::1 > ::2 type dest-unreachable about udp 10.0.0.2:1 > 10.0.0.1:2", `parse packet "icmpv6 ::1 > ::2 type dest-unreachable about udp 10.0.0.2:1 > 10.0.0.1:2": word 11 "10.0.0.1:2": an icmpv6 error carries an IPv6 packet`},
		{"icmp 10.0.0.1 > 10.0.0.2 type dest-unreachable about arp", `parse packet "icmp 10.0.0.1 > 10.0.0.2 type dest-unreachable about arp": word 8 "arp": expected the packet the error carries: tcp, udp, icmp, icmpv6 or ip`},
		{"icmp 10.0.0.1 > 10.0.0.2 type dest-unreachable about", `parse packet "icmp 10.0.0.1 > 10.0.0.2 type dest-unreachable about": at end of line: expected the packet the error carries: tcp, udp, icmp, icmpv6 or ip`},
		{"icmp 10.0.0.1 > 10.0.0.2 type 3 about icmp 10.0.0.2 > 10.0.0.1 type 3 about udp 10.0.0.2:1 > 10.0.0.1:2", `parse packet "icmp 10.0.0.1 > 10.0.0.2 type 3 about icmp 10.0.0.2 > 10.0.0.1 type 3 about udp 10.0.0.2:1 > 10.0.0.1:2": word 14 "about": expected an option of the carried packet: flags, type, code, id, ttl, frag, len or carry`},
		{"icmp 10.0.0.1 > 10.0.0.2 type 3 about udp 10.0.0.2:1 > 10.0.0.1:2 carry 1201", `parse packet "icmp 10.0.0.1 > 10.0.0.2 type 3 about udp 10.0.0.2:1 > 10.0.0.1:2 carry 1201": word 13 "1201": expected how many bytes after its IP header the error carries, at most 1200`},
		{"udp 10.0.0.1:1 > 10.0.0.2:2 op reply", `parse packet "udp 10.0.0.1:1 > 10.0.0.2:2 op reply": word 5 "op": op applies only to an arp body`},
		{"arp op answer", `parse packet "arp op answer": word 3 "answer": expected an arp operation: request, reply or a number`},
		{"arp op 65536", `parse packet "arp op 65536": word 3 "65536": expected an arp operation: request, reply or a number, at most 65535`},
		{"udp 10.0.0.1:1 > 10.0.0.2:2 frag middle", `parse packet "udp 10.0.0.1:1 > 10.0.0.2:2 frag middle": word 6 "middle": expected frag first or frag later`},
		{"udp 10.0.0.1:1 > 10.0.0.2:2 len 65508", `parse packet "udp 10.0.0.1:1 > 10.0.0.2:2 len 65508": word 6 "65508": len too large: the packet can carry at most 65507 payload bytes`},
		{"udp [::1]:1 > [::2]:2 len 65520 frag later", `parse packet "udp [::1]:1 > [::2]:2 len 65520 frag later": word 6 "65520": len too large: the packet can carry at most 65519 payload bytes`},
		{"icmp 2001:db8::1 > 2001:db8::2", `parse packet "icmp 2001:db8::1 > 2001:db8::2": word 4 "2001:db8::2": icmp takes IPv4 addresses; use icmpv6 for IPv6`},
		{"icmpv6 10.0.0.1 > 10.0.0.2", `parse packet "icmpv6 10.0.0.1 > 10.0.0.2": word 4 "10.0.0.2": icmpv6 takes IPv6 addresses; use icmp for IPv4`},
		{"icmp 10.0.0.1 > 10.0.0.2 type neighbor-solicitation", `parse packet "icmp 10.0.0.1 > 10.0.0.2 type neighbor-solicitation": word 6 "neighbor-solicitation": expected an icmp type name (like echo-request) or number`},
		{"tcp 10.0.0.1:1 > 10.0.0.2:2 code 1", `parse packet "tcp 10.0.0.1:1 > 10.0.0.2:2 code 1": word 5 "code": code applies only to an icmp or icmpv6 body`},
		{"ip 10.0.0.1 > 10.0.0.2", `parse packet "ip 10.0.0.1 > 10.0.0.2": at end of line: expected proto N after the addresses of an ip body`},
		{"ip 10.0.0.1 > 10.0.0.2 proto 256", `parse packet "ip 10.0.0.1 > 10.0.0.2 proto 256": word 6 "256": expected a protocol number or name (tcp, udp, icmp, icmpv6, sctp, gre, esp, ah), at most 255`},
		{"ip 10.0.0.1% > 10.0.0.2 proto 6", `parse packet "ip 10.0.0.1% > 10.0.0.2 proto 6": word 2 "10.0.0.1%": expected an IP address, like 10.0.0.1 or 2001:db8::1`},
		{"arp 2001:db8::1 > 2001:db8::2", `parse packet "arp 2001:db8::1 > 2001:db8::2": word 4 "2001:db8::2": arp takes IPv4 addresses`},
		{"arp ttl 3", `parse packet "arp ttl 3": word 2 "ttl": ttl applies only to an IP body`},
		{"ether 0x0800", `parse packet "ether 0x0800": word 2 "0x0800": an IP ether type needs an IP body: tcp, udp, icmp, icmpv6 or ip`},
		{"vlan 1 ether 0x8100", `parse packet "vlan 1 ether 0x8100": word 4 "0x8100": a vlan ether type is read as a tag: write vlan ID instead`},
		{"ether 88cc", `parse packet "ether 88cc": word 2 "88cc": expected a MAC address like 02:00:00:00:00:01`},
		{"ether 0xzz", `parse packet "ether 0xzz": word 2 "0xzz": expected an ether type in hex, like 0x88cc`},
		{"ether 02:00:00:00:00:01 > 02:00:00:00:00:02:03:04 arp", `parse packet "ether 02:00:00:00:00:01 > 02:00:00:00:00:02:03:04 arp": word 4 "02:00:00:00:00:02:03:04": expected a MAC address like 02:00:00:00:00:01`},
		{"vlan 4096 arp", `parse packet "vlan 4096 arp": word 2 "4096": expected a vlan id, at most 4095`},
		{"vlan 1 vlan 2 vlan 3 arp", `parse packet "vlan 1 vlan 2 vlan 3 arp": word 5 "vlan": at most two vlan tags (802.1ad + 802.1Q)`},
		{"vlan arp", `parse packet "vlan arp": word 2 "arp": expected a vlan id`},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			frame, err := ParsePacket(tc.spec)
			if err == nil {
				t.Fatalf("no error; frame %x", frame)
			}
			if diff := cmp.Diff(tc.err, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParsePacket checks that no line makes ParsePacket panic, and that a
// well-formed packet it builds survives the summary round trip.
func FuzzParsePacket(f *testing.F) {
	for _, s := range []string{
		"tcp 10.0.0.1:1234 > 10.0.0.2:22 flags SA ttl 3 len 100",
		"vlan 1 vlan 2 udp [2001:db8::1]:1 > [2001:db8::2]:53 frag later",
		"ether 02:00:00:00:00:0a > ff:ff:ff:ff:ff:ff ether 0x88cc len 3",
		"icmpv6 fe80::1 > ff02::1 type neighbor-solicitation code 1",
		"ip 10.0.0.1 > 10.0.0.2 proto esp frag first", "arp 1.2.3.4 > 5.6.7.8", "arp op reply", "tcp [::1]:1>[::2]:2 flags .",
		"icmp 10.0.0.2 > 10.0.0.9 type dest-unreachable code 3 about udp 10.0.0.9:5353 > 10.0.0.2:53 carry 12",
		"icmpv6 ::1 > ::2 type time-exceeded about icmpv6 ::2 > ::3 type echo-request id 5", "icmp 1.2.3.4 > 5.6.7.8 type echo-reply id 9",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		frame, err := ParsePacket(spec)
		if err != nil {
			return
		}
		if p, bad := eval.Parse(frame); bad == nil {
			checkRoundTrip(t, p)
		}
	})
}

// parseWellFormed parses frame, which must not be malformed.
func parseWellFormed(t testing.TB, frame []byte) *eval.Packet {
	t.Helper()
	p, bad := eval.Parse(frame)
	if bad != nil {
		t.Fatalf("frame %x is %v", frame, bad)
	}
	return p
}

// checkRoundTrip checks that the frame built from p's summary parses to p.
func checkRoundTrip(t testing.TB, p *eval.Packet) {
	t.Helper()
	s := p.Summary()
	if strings.Contains(s, "\n") {
		t.Fatalf("summary %q is not one line", s)
	}
	frame, err := ParsePacket(s)
	if err != nil {
		t.Fatalf("summary does not parse: %v", err)
	}
	if diff := cmp.Diff(p, parseWellFormed(t, frame), cmpPacket...); diff != "" {
		t.Errorf("packet from summary %q differs (-original +rebuilt):\n%s", s, diff)
	}
}

// TestPacketsDocExamples parses every example of docs/packets.md.
func TestPacketsDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/packets.md")
	if err != nil {
		t.Fatal(err)
	}
	_, examples, ok := strings.Cut(string(doc), "## Examples\n\n```\n")
	examples, _, ok2 := strings.Cut(examples, "```")
	if !ok || !ok2 {
		t.Fatal("docs/packets.md has no Examples code block")
	}
	for _, line := range strings.Split(strings.TrimSpace(examples), "\n") {
		frame, err := ParsePacket(line)
		if err != nil {
			t.Error(err)
			continue
		}
		checkRoundTrip(t, parseWellFormed(t, frame))
	}
}

// TestSummariesOfCorpusRoundTrip checks the summary promise on every
// well-formed frame of the differential corpus: the frame built from its
// summary parses to the same packet, and connection tracking reads the
// same of it (an ICMP error's carried flow, an echo's identifier).
func TestSummariesOfCorpusRoundTrip(t *testing.T) {
	seen := 0
	for _, pk := range corpus.Generate(corpus.DifferentialSeed, 20000) {
		p, bad := eval.Parse(pk.Frame)
		if bad != nil {
			continue
		}
		seen++
		t.Run(string(pk.Class), func(t *testing.T) {
			checkRoundTrip(t, p)
			frame, err := ParsePacket(p.Summary())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(eval.Track(pk.Frame), eval.Track(frame), cmpPacket...); diff != "" {
				t.Errorf("tracking reads the frame from %q otherwise (-original +rebuilt):\n%s", p.Summary(), diff)
			}
		})
		if t.Failed() {
			t.Fatalf("%s frame %x", pk.Class, pk.Frame)
		}
	}
	if seen < 10000 {
		t.Errorf("only %d well-formed frames in the corpus", seen)
	}
}

// TestPacketChecksumOption builds partial and absent checksums.
func TestPacketChecksumOption(t *testing.T) {
	for spec, want := range map[string]func(f []byte) uint16{
		"udp 10.0.0.5:1 > 192.0.2.1:2 len 10 csum none": func([]byte) uint16 { return 0 },
		"udp 10.0.0.5:1 > 192.0.2.1:2 len 10 csum partial": func(f []byte) uint16 {
			return uint16(checksum.Pseudo(f[14:], 18))
		},
		"tcp 10.0.0.5:1 > 192.0.2.1:2 len 10 csum partial": func(f []byte) uint16 {
			return uint16(checksum.Pseudo(f[14:], 30))
		},
	} {
		f, err := ParsePacket(spec)
		if err != nil {
			t.Fatal(err)
		}
		off := 34 + 6
		if f[23] == 6 {
			off = 34 + 16
		}
		if got := binary.BigEndian.Uint16(f[off:]); got != want(f) {
			t.Errorf("%s: checksum %#04x, want %#04x", spec, got, want(f))
		}
	}
	for _, bad := range []string{"tcp 10.0.0.5:1 > 192.0.2.1:2 csum none", "icmp 10.0.0.5 > 192.0.2.1 csum partial", "udp [::1]:1 > [::2]:2 csum partial"} {
		if _, err := ParsePacket(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
