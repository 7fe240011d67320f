package eval

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/internal/checksum"
)

// This file builds the frames of the NAT tests with gopacket, which
// computes every checksum from scratch, and checks a frame's checksums
// with a sum of its own: neither shares code with the translation.

var natMACs = [2]net.HardwareAddr{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}}

// serialize builds an Ethernet frame of ls, computing lengths and
// checksums.
func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	eth := &layers.Ethernet{SrcMAC: natMACs[0], DstMAC: natMACs[1], EthernetType: layers.EthernetTypeIPv4}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, append([]gopacket.SerializableLayer{eth}, ls...)...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ip4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0x4242, Protocol: proto,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
}

var natPayload = gopacket.Payload("0123456789abcdefghij")

func tcpFrame(t *testing.T, src string, sp uint16, dst string, dp uint16, flags uint8) []byte {
	ip := ip4(src, dst, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), Seq: 1000, Ack: 2000, Window: 512,
		SYN: flags&0x02 != 0, ACK: flags&0x10 != 0, FIN: flags&0x01 != 0, RST: flags&0x04 != 0}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, tcp, natPayload)
}

func udpFrame(t *testing.T, src string, sp uint16, dst string, dp uint16, payload ...byte) []byte {
	ip := ip4(src, dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)}
	udp.SetNetworkLayerForChecksum(ip)
	if payload == nil {
		payload = natPayload
	}
	return serialize(t, ip, udp, gopacket.Payload(payload))
}

func echoFrame(t *testing.T, src, dst string, typ uint8, id uint16) []byte {
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id, Seq: 7}
	return serialize(t, ip4(src, dst, layers.IPProtocolICMPv4), icmp, natPayload)
}

func greFrame(t *testing.T, src, dst string) []byte {
	return serialize(t, ip4(src, dst, layers.IPProtocolGRE), gopacket.Payload{0, 0, 0x08, 0, 1, 2, 3, 4})
}

// icmpErrorFrame is an ICMP error from src to dst carrying the first
// ihl+8 bytes of the IP packet of frame about.
func icmpErrorFrame(t *testing.T, src, dst string, typ, code uint8, about []byte) []byte {
	embedded := about[14:]
	embedded = embedded[:int(embedded[0]&0x0f)*4+8]
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code)}
	if typ == layers.ICMPv4TypeDestinationUnreachable && code == layers.ICMPv4CodeFragmentationNeeded {
		icmp.Seq = 1400 // next-hop MTU
	}
	ip := ip4(src, dst, layers.IPProtocolICMPv4)
	ip.Id = 0x0101
	return serialize(t, ip, icmp, gopacket.Payload(embedded))
}

// splitFragments cuts the IP packet of frame into a first fragment of split
// bytes of payload (a multiple of 8) and a later one, rebuilding each
// header with gopacket.
func splitFragments(t *testing.T, frame []byte) (first, later []byte) {
	t.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	payload := ip.Payload
	const split = 16
	h1, h2 := *ip, *ip
	h1.Flags, h1.FragOffset = layers.IPv4MoreFragments, 0
	h2.Flags, h2.FragOffset = 0, split/8
	h1.Options, h2.Options = nil, nil
	return serialize(t, &h1, gopacket.Payload(payload[:split])), serialize(t, &h2, gopacket.Payload(payload[split:]))
}

// ipOf is the IP packet of frame, after up to two VLAN tags and without
// the Ethernet padding.
func ipOf(frame []byte) []byte {
	off := 14
	for tags := 0; tags < 2; tags++ {
		if et := binary.BigEndian.Uint16(frame[off-2:]); et != 0x8100 && et != 0x88a8 {
			break
		}
		off += 4
	}
	ip := frame[off:]
	return ip[:binary.BigEndian.Uint16(ip[2:])]
}

// sum and pseudoSum are internal/checksum's, written from RFC 1071
// apart from package nat's updates.
var sum = checksum.Sum

func pseudoSum(ip []byte) uint32 { return checksum.Pseudo(ip, len(ip)-int(ip[0]&0x0f)*4) }

// checkChecksums fails t unless every checksum of the IPv4 frame
// verifies (checksumErrors).
func checkChecksums(t *testing.T, frame []byte) {
	t.Helper()
	for _, e := range checksumErrors(frame) {
		t.Error(e)
	}
}

// checksumErrors says which checksums of the well-formed IPv4 frame do
// not verify from scratch (checksum.Errors).
func checksumErrors(frame []byte) []string { return checksum.Errors(ipOf(frame)) }
