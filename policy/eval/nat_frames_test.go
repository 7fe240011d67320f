package eval

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
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

// sum is the one's complement sum of b, written here from RFC 1071.
func sum(b []byte, initial uint32) uint32 {
	s := initial
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		s += w
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return s
}

// pseudoSum is the folded sum of an IPv4 pseudo-header.
func pseudoSum(ip []byte) uint32 {
	hl := int(ip[0]&0x0f) * 4
	s := sum(ip[12:20], 0)
	return sum(binary.BigEndian.AppendUint16([]byte{0, ip[9]}, uint16(len(ip)-hl)), s)
}

// checkChecksums fails t unless every checksum of the IPv4 frame
// verifies (checksumErrors).
func checkChecksums(t *testing.T, frame []byte) {
	t.Helper()
	for _, e := range checksumErrors(frame) {
		t.Error(e)
	}
}

// checksumErrors says which checksums of the well-formed IPv4 frame do
// not verify from scratch: the IPv4 header's, and unless the packet is a
// fragment its TCP, UDP (or 0) or ICMP checksum; an ICMP error's embedded
// IPv4 header too.
func checksumErrors(frame []byte) []string {
	var errs []string
	ip := ipOf(frame)
	hl := int(ip[0]&0x0f) * 4
	if sum(ip[:hl], 0) != 0xffff {
		errs = append(errs, "ipv4 header checksum does not verify")
	}
	if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return errs
	}
	l4 := ip[hl:]
	switch ip[9] {
	case 6:
		if sum(l4, pseudoSum(ip)) != 0xffff {
			errs = append(errs, "tcp checksum does not verify")
		}
	case 17:
		if binary.BigEndian.Uint16(l4[6:]) != 0 && sum(l4, pseudoSum(ip)) != 0xffff {
			errs = append(errs, "udp checksum does not verify")
		}
	case 1:
		if sum(l4, 0) != 0xffff {
			errs = append(errs, "icmp checksum does not verify")
		}
		if l4[0] == 3 || l4[0] == 11 || l4[0] == 12 {
			in := l4[8:]
			if sum(in[:int(in[0]&0x0f)*4], 0) != 0xffff {
				errs = append(errs, "embedded ipv4 header checksum does not verify")
			}
		}
	}
	return errs
}
