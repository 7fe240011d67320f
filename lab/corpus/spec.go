package corpus

import (
	"math/rand"

	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/wire"
)

// Random well-formed frame specs drawn from the pools.

// randomTags returns 0, 1 or 2 VLAN tags, mostly none.
func randomTags(r *rand.Rand) []vlanTag {
	switch x := r.Intn(10); {
	case x < 6:
		return nil
	case x < 9:
		return []vlanTag{{tpid: wire.EtherTypeVLAN, vid: poolVLAN(r), prio: uint8(r.Intn(8))}}
	default:
		outer := uint16(wire.EtherTypeQinQ)
		if chance(r, 0.3) {
			outer = wire.EtherTypeVLAN
		}
		return []vlanTag{{tpid: outer, vid: poolVLAN(r)}, {tpid: wire.EtherTypeVLAN, vid: poolVLAN(r)}}
	}
}

// baseSpec returns a spec with MACs and tags filled in.
func baseSpec(r *rand.Rand) frameSpec {
	return frameSpec{srcMAC: poolMAC(r), dstMAC: poolMAC(r), tags: randomTags(r), ttl: poolTTL(r)}
}

// randomPayload returns 0..max bytes, small payloads most often.
func randomPayload(r *rand.Rand, max int) []byte {
	n := r.Intn(max + 1)
	if chance(r, 0.4) {
		n = r.Intn(8)
	}
	b := make([]byte, n)
	r.Read(b)
	return b
}

var tcpFlagCombos = []uint8{0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x01, 0x00, 0xff, 0x29, 0xc2, 0x20}

// randomL4 fills the upper-layer header for proto.
func randomL4(r *rand.Rand, proto uint8, family int) l4Header {
	h := l4Header{srcPort: poolPort(r), dstPort: poolPort(r)}
	switch proto {
	case wire.ProtoTCP:
		h.tcpFlags = pick(r, tcpFlagCombos)
		if chance(r, 0.05) {
			h.tcpFlags = uint8(r.Intn(256))
		}
		if chance(r, 0.3) {
			h.tcpOptions = randomTCPOptions(r)
		}
	case wire.ProtoICMP, wire.ProtoICMPv6:
		if family == 6 {
			h.icmpType = pick(r, poolICMPv6Types)
		} else {
			h.icmpType = pick(r, poolICMPTypes)
		}
		h.icmpCode = pick(r, poolICMPCodes)
		if chance(r, 0.1) {
			h.icmpType, h.icmpCode = uint8(r.Intn(256)), uint8(r.Intn(256))
		}
	default:
		if proto != wire.ProtoUDP {
			h.raw = rawUpper(r, proto)
		}
	}
	return h
}

// rawUpper returns header bytes for protocols the datapath does not parse.
func rawUpper(r *rand.Rand, proto uint8) []byte {
	switch proto {
	case wire.ProtoAH: // next header TCP, length 4 (24 bytes), SPI, seq, ICV
		b := make([]byte, 24)
		b[0], b[1] = wire.ProtoTCP, 4
		r.Read(b[4:])
		return b
	case wire.ProtoNoNext:
		return []byte{}
	}
	b := make([]byte, 8+r.Intn(16))
	r.Read(b)
	return b
}

func randomTCPOptions(r *rand.Rand) []layers.TCPOption {
	all := []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 1, 0, 0, 0, 0}},
	}
	n := 1 + r.Intn(len(all))
	return all[:n]
}

// v4Protos and v6Protos are the upper-layer protocols of random IP packets,
// weighted by repetition.
var (
	v4Protos = []uint8{wire.ProtoTCP, wire.ProtoTCP, wire.ProtoTCP, wire.ProtoUDP, wire.ProtoUDP, wire.ProtoICMP, wire.ProtoICMP, wire.ProtoGRE, wire.ProtoESP, wire.ProtoAH, wire.ProtoSCTP, wire.ProtoICMPv6, 255}
	v6Protos = []uint8{wire.ProtoTCP, wire.ProtoTCP, wire.ProtoTCP, wire.ProtoUDP, wire.ProtoUDP, wire.ProtoICMPv6, wire.ProtoICMPv6, wire.ProtoGRE, wire.ProtoESP, wire.ProtoAH, wire.ProtoSCTP, wire.ProtoICMP, wire.ProtoNoNext, 253}
)

// randomV4 returns a well-formed IPv4 spec.
func randomV4(r *rand.Rand) frameSpec {
	s := baseSpec(r)
	s.etherType = wire.EtherTypeIPv4
	s.src, s.dst = poolV4(r), poolV4(r)
	s.proto = pick(r, v4Protos)
	if chance(r, 0.03) {
		s.proto = uint8(r.Intn(256))
	}
	s.l4 = randomL4(r, s.proto, 4)
	s.payload = randomPayload(r, 40)
	if chance(r, 0.3) {
		s.v4Flags = layers.IPv4DontFragment
	}
	s.pad = chance(r, 0.5)
	return s
}

// randomV6 returns a well-formed IPv6 spec without extension headers.
func randomV6(r *rand.Rand) frameSpec {
	s := baseSpec(r)
	s.etherType = wire.EtherTypeIPv6
	s.src, s.dst = poolV6(r), poolV6(r)
	s.proto = pick(r, v6Protos)
	if chance(r, 0.03) {
		s.proto = uint8(r.Intn(256))
	}
	s.l4 = randomL4(r, s.proto, 6)
	s.payload = randomPayload(r, 40)
	s.pad = chance(r, 0.5)
	return s
}

// randomIP returns a well-formed IPv4 or IPv6 spec, the IPv6 one sometimes
// with an extension chain.
func randomIP(r *rand.Rand) frameSpec {
	if chance(r, 0.5) {
		s := randomV4(r)
		if chance(r, 0.15) {
			s.v4Opts = randomV4Options(r)
		}
		return s
	}
	s := randomV6(r)
	if chance(r, 0.25) {
		s.exts = randomExts(r, 1+r.Intn(3))
	}
	return s
}

// withProto re-draws s's upper layer as proto.
func withProto(r *rand.Rand, s frameSpec, proto uint8) frameSpec {
	s.proto = proto
	family := 4
	if s.etherType == wire.EtherTypeIPv6 {
		family = 6
	}
	s.l4 = randomL4(r, proto, family)
	return s
}

// randomV4Options returns IPv4 options totalling 1..40 bytes.
func randomV4Options(r *rand.Rand) []layers.IPv4Option {
	var opts []layers.IPv4Option
	size := 0
	for size < 40 {
		var o layers.IPv4Option
		switch r.Intn(5) {
		case 0:
			o = layers.IPv4Option{OptionType: 1} // NOP
		case 1:
			o = layers.IPv4Option{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}} // router alert
		case 2:
			o = layers.IPv4Option{OptionType: 7, OptionLength: 11, OptionData: make([]byte, 9)} // record route
			o.OptionData[0] = 4
		case 3:
			o = layers.IPv4Option{OptionType: 68, OptionLength: 12, OptionData: make([]byte, 10)} // timestamp
			o.OptionData[0] = 5
		default:
			o = layers.IPv4Option{OptionType: 0} // end of options
		}
		n := 1
		if o.OptionType > 1 {
			n = int(o.OptionLength)
		}
		if size+n > 40 {
			break
		}
		opts = append(opts, o)
		size += n
		if o.OptionType == 0 || chance(r, 0.4) {
			break
		}
	}
	if len(opts) == 0 {
		opts = []layers.IPv4Option{{OptionType: 1}}
	}
	return opts
}

// extKinds are the extension headers the datapath walks (fragment apart).
var extKinds = []uint8{wire.IPv6ExtHopByHop, wire.IPv6ExtRouting, wire.IPv6ExtDestOpts}

// randomExts returns n non-fragment extension headers of 8..32 bytes.
func randomExts(r *rand.Rand, n int) []extHeader {
	exts := make([]extHeader, n)
	for i := range exts {
		exts[i] = extHeader{kind: pick(r, extKinds), size: 8 * (1 + r.Intn(4))}
	}
	return exts
}

// randomNonIP returns a frame spec for ARP, LLDP or another non-IP type.
func randomNonIP(r *rand.Rand) frameSpec {
	s := baseSpec(r)
	switch r.Intn(3) {
	case 0:
		s.etherType = wire.EtherTypeARP
		s.arp = randomARP(r, s.srcMAC)
	case 1:
		s.etherType = 0x88cc
		s.dstMAC = []byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}
		s.raw = lldpPDU(r)
	default:
		s.etherType = pick(r, []uint16{0x88cc, 0x8847, 0x9000, 0x0842, 0x88e5, 0x0600, 0xffff, 0x8035})
		s.raw = randomPayload(r, 60)
	}
	s.pad = chance(r, 0.5)
	return s
}

func randomARP(r *rand.Rand, mac []byte) *layers.ARP {
	return &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: uint16(1 + r.Intn(2)),
		SourceHwAddress: mac, SourceProtAddress: poolV4(r).AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: poolV4(r).AsSlice(),
	}
}

// lldpPDU returns a minimal LLDP data unit: chassis id, port id, TTL, end.
func lldpPDU(r *rand.Rand) []byte {
	tlv := func(typ int, v []byte) []byte {
		h := uint16(typ)<<9 | uint16(len(v))
		return append([]byte{byte(h >> 8), byte(h)}, v...)
	}
	mac := make([]byte, 6)
	r.Read(mac)
	var b []byte
	b = append(b, tlv(1, append([]byte{4}, mac...))...)
	b = append(b, tlv(2, []byte{7, 'e', 't', 'h', '0'})...)
	b = append(b, tlv(3, []byte{0, 120})...)
	b = append(b, tlv(0, nil)...)
	return b
}
