package corpus

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/wire"
)

// vlanTag is one 802.1Q or 802.1ad tag.
type vlanTag struct {
	tpid uint16
	vid  uint16
	prio uint8
}

// extHeader is one IPv6 extension header: hop-by-hop, routing, destination
// options (size in bytes, a multiple of 8) or fragment (always 8 bytes).
type extHeader struct {
	kind    uint8
	size    int
	fragOff uint16 // fragment offset in 8-byte units (fragment header only)
	more    bool   // M flag (fragment header only)
}

// l4Header describes the upper-layer header of a well-formed packet.
type l4Header struct {
	srcPort, dstPort uint16
	tcpFlags         uint8
	tcpOptions       []layers.TCPOption
	icmpType         uint8
	icmpCode         uint8
	// echoID is an echo's identifier when setEchoID (else 7).
	echoID    uint16
	setEchoID bool
	// raw replaces the header entirely (protocols without a parsed header,
	// and later fragments whose payload only looks like a header).
	raw []byte
}

// frameSpec is a well-formed frame before serialization.
type frameSpec struct {
	srcMAC, dstMAC []byte
	tags           []vlanTag // outer first
	// etherType is the type after the tags: IPv4 and IPv6 use ip, others raw.
	etherType uint16
	raw       []byte // payload of non-IP frames (nil with arp)
	arp       *layers.ARP

	src, dst netip.Addr
	ttl      uint8
	v4Opts   []layers.IPv4Option
	v4Flags  layers.IPv4Flag
	fragOff  uint16 // IPv4 fragment offset in 8-byte units
	exts     []extHeader
	proto    uint8
	l4       l4Header
	payload  []byte
	// pad keeps the zero padding Ethernet adds to frames under 60 bytes.
	pad bool
}

// layout records where a built frame's headers start. Offsets are from the
// start of the frame; -1 means absent.
type layout struct {
	tags   []int
	l3     int
	family int   // 4, 6, or 0 for non-IP
	hl     int   // IPv4 header length or 40
	exts   []int // IPv6 extension header offsets
	l4     int   // upper-layer header; -1 for later fragments and no-next-header
	l4Min  int   // minimum upper-layer header length: 20 TCP, 8 UDP/ICMP, 0 other
	end    int   // l3 + IP packet length
}

// frame is a built frame with its layout.
type frame struct {
	b   []byte
	lay layout
}

var serializeOpts = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}

// build serializes s with gopacket. A serialization error is an internal
// invariant break: every spec the generator makes must serialize.
func build(s frameSpec) frame {
	var ls []gopacket.SerializableLayer
	var lay layout
	lay.l3, lay.l4 = -1, -1

	first := layers.EthernetType(s.etherType)
	if len(s.tags) > 0 {
		first = layers.EthernetType(s.tags[0].tpid)
	}
	ls = append(ls, &layers.Ethernet{SrcMAC: s.srcMAC, DstMAC: s.dstMAC, EthernetType: first})
	off := 14
	for i, t := range s.tags {
		next := layers.EthernetType(s.etherType)
		if i+1 < len(s.tags) {
			next = layers.EthernetType(s.tags[i+1].tpid)
		}
		ls = append(ls, &layers.Dot1Q{Priority: t.prio, VLANIdentifier: t.vid, Type: next})
		lay.tags = append(lay.tags, off)
		off += 4
	}

	var network gopacket.NetworkLayer
	switch s.etherType {
	case wire.EtherTypeIPv4:
		ip := &layers.IPv4{
			Version: 4, TTL: s.ttl, Protocol: layers.IPProtocol(s.proto),
			SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice(),
			Flags: s.v4Flags, FragOffset: s.fragOff, Options: s.v4Opts,
			Id: 0x1234,
		}
		ls = append(ls, ip)
		network = ip
		lay.l3, lay.family = off, 4
		lay.hl = 20 + ipv4OptionsSize(s.v4Opts)
		off += lay.hl
	case wire.EtherTypeIPv6:
		nh := s.proto
		if len(s.exts) > 0 {
			nh = s.exts[0].kind
		}
		ip := &layers.IPv6{
			Version: 6, HopLimit: s.ttl, NextHeader: layers.IPProtocol(nh),
			SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice(), FlowLabel: 0x12345,
		}
		ls = append(ls, ip)
		network = ip
		lay.l3, lay.family, lay.hl = off, 6, 40
		off += 40
		for i, e := range s.exts {
			next := s.proto
			if i+1 < len(s.exts) {
				next = s.exts[i+1].kind
			}
			ls = append(ls, gopacket.Payload(e.bytes(next)))
			lay.exts = append(lay.exts, off)
			off += len(e.bytes(next))
		}
	default:
		if s.arp != nil {
			ls = append(ls, s.arp)
		} else {
			ls = append(ls, gopacket.Payload(s.raw))
		}
	}

	if network != nil {
		later := s.fragOff != 0
		for _, e := range s.exts {
			if e.kind == wire.IPv6ExtFragment && e.fragOff != 0 {
				later = true
			}
		}
		if !later && s.l4.raw == nil {
			lay.l4 = off
		}
		ls = append(ls, upperLayer(s, network, &lay)...)
	}

	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, serializeOpts, ls...); err != nil {
		panic(fmt.Sprintf("corpus: serialize frame: %v", err))
	}
	b := append([]byte(nil), buf.Bytes()...)
	switch lay.family {
	case 4:
		lay.end = lay.l3 + int(binary.BigEndian.Uint16(b[lay.l3+2:]))
	case 6:
		lay.end = lay.l3 + 40 + int(binary.BigEndian.Uint16(b[lay.l3+4:]))
	default:
		lay.end = natural(s, off)
	}
	if !s.pad && len(b) > lay.end {
		b = b[:lay.end]
	}
	return frame{b: b, lay: lay}
}

// natural is the unpadded length of a non-IP frame whose L3 starts at off.
func natural(s frameSpec, off int) int {
	if s.arp != nil {
		return off + 8 + 2*int(s.arp.HwAddressSize) + 2*int(s.arp.ProtAddressSize)
	}
	return off + len(s.raw)
}

// upperLayer returns the layers after the IP header and extension headers.
func upperLayer(s frameSpec, network gopacket.NetworkLayer, lay *layout) []gopacket.SerializableLayer {
	var ls []gopacket.SerializableLayer
	if s.l4.raw != nil {
		return append(ls, gopacket.Payload(append(append([]byte(nil), s.l4.raw...), s.payload...)))
	}
	switch {
	case s.proto == wire.ProtoTCP:
		t := &layers.TCP{
			SrcPort: layers.TCPPort(s.l4.srcPort), DstPort: layers.TCPPort(s.l4.dstPort),
			Seq: 1000, Ack: 2000, Window: 512, Options: s.l4.tcpOptions,
			FIN: s.l4.tcpFlags&wire.TCPFin != 0, SYN: s.l4.tcpFlags&wire.TCPSyn != 0,
			RST: s.l4.tcpFlags&wire.TCPRst != 0, PSH: s.l4.tcpFlags&wire.TCPPsh != 0,
			ACK: s.l4.tcpFlags&wire.TCPAck != 0, URG: s.l4.tcpFlags&wire.TCPUrg != 0,
			ECE: s.l4.tcpFlags&wire.TCPEce != 0, CWR: s.l4.tcpFlags&wire.TCPCwr != 0,
		}
		mustSetNetwork(t.SetNetworkLayerForChecksum(network))
		ls = append(ls, t)
		lay.l4Min = 20
	case s.proto == wire.ProtoUDP:
		u := &layers.UDP{SrcPort: layers.UDPPort(s.l4.srcPort), DstPort: layers.UDPPort(s.l4.dstPort)}
		mustSetNetwork(u.SetNetworkLayerForChecksum(network))
		ls = append(ls, u)
		lay.l4Min = 8
	case s.proto == wire.ProtoICMP && lay.family == 4:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(s.l4.icmpType, s.l4.icmpCode), Id: s.l4.id(), Seq: 1})
		lay.l4Min = 8
	case s.proto == wire.ProtoICMPv6 && lay.family == 6:
		i := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(s.l4.icmpType, s.l4.icmpCode)}
		mustSetNetwork(i.SetNetworkLayerForChecksum(network))
		id := s.l4.id()
		ls = append(ls, i, gopacket.Payload{byte(id >> 8), byte(id), 0, 1})
		lay.l4Min = 8
	}
	if len(s.payload) > 0 {
		ls = append(ls, gopacket.Payload(s.payload))
	}
	return ls
}

// id is the identifier an ICMP header carries.
func (h l4Header) id() uint16 {
	if h.setEchoID {
		return h.echoID
	}
	return 7
}

func mustSetNetwork(err error) {
	if err != nil {
		panic(fmt.Sprintf("corpus: set network layer for checksum: %v", err))
	}
}

// ipv4OptionsSize is the padded size of IPv4 options as gopacket writes them.
func ipv4OptionsSize(opts []layers.IPv4Option) int {
	n := 0
	for _, o := range opts {
		if o.OptionType <= 1 {
			n++
		} else {
			n += int(o.OptionLength)
		}
	}
	return (n + 3) &^ 3
}

// bytes renders the extension header with next header nh.
func (e extHeader) bytes(nh uint8) []byte {
	if e.kind == wire.IPv6ExtFragment {
		b := make([]byte, 8)
		b[0] = nh
		fo := e.fragOff << 3
		if e.more {
			fo |= 1
		}
		binary.BigEndian.PutUint16(b[2:], fo)
		binary.BigEndian.PutUint32(b[4:], 0xcafe)
		return b
	}
	b := make([]byte, e.size)
	b[0] = nh
	b[1] = uint8(e.size/8 - 1)
	switch e.kind {
	case wire.IPv6ExtRouting:
		b[2] = 4 // segment routing header type; segments left 0
	default:
		b[2], b[3] = 1, uint8(e.size-4) // one PadN option filling the header
	}
	return b
}

// setBE16 writes v big-endian at b[o:].
func setBE16(b []byte, o int, v uint16) { binary.BigEndian.PutUint16(b[o:], v) }

// fixIPv4Checksum recomputes the header checksum of the IPv4 header at l3.
func fixIPv4Checksum(b []byte, l3 int) {
	hl := int(b[l3]&0x0f) * 4
	if hl < 20 || l3+hl > len(b) {
		return
	}
	b[l3+10], b[l3+11] = 0, 0
	var sum uint32
	for i := l3; i < l3+hl; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	setBE16(b, l3+10, ^uint16(sum))
}

// setIPLength sets the IP length fields of f so the packet ends at end,
// and keeps the IPv4 header checksum valid.
func (f *frame) setIPLength(end int) {
	switch f.lay.family {
	case 4:
		setBE16(f.b, f.lay.l3+2, uint16(end-f.lay.l3))
		fixIPv4Checksum(f.b, f.lay.l3)
	case 6:
		setBE16(f.b, f.lay.l3+4, uint16(end-f.lay.l3-40))
	}
	f.lay.end = end
}

// cut shortens the frame to n bytes (n <= len).
func (f *frame) cut(n int) {
	if n < len(f.b) {
		f.b = f.b[:n]
	}
}

// padTo appends filler bytes until the frame is n bytes long.
func (f *frame) padTo(n int, filler byte) {
	for len(f.b) < n {
		f.b = append(f.b, filler)
	}
}
