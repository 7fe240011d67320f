package corpus

import (
	"math/rand"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/wire"
)

// classGens is every class, grouped by the PITFALLS.md "Parsing" line it
// covers. Weights favour the well-formed stacks that hit rules, and the
// random mutations that find what the named classes do not.
var classGens = []classGen{
	// Well-formed stacks.
	{"ipv4", ExpectWellFormed, 60, func(r *rand.Rand) []byte { return build(randomV4(r)).b }},
	{"ipv4-tcp", ExpectWellFormed, 40, protoFrame(randomV4, wire.ProtoTCP)},
	{"ipv4-udp", ExpectWellFormed, 30, protoFrame(randomV4, wire.ProtoUDP)},
	{"ipv4-icmp", ExpectWellFormed, 20, protoFrame(randomV4, wire.ProtoICMP)},
	{"ipv4-icmp-error", ExpectWellFormed, 5, icmpError(4)},
	{"ipv4-ah", ExpectWellFormed, 3, protoFrame(randomV4, wire.ProtoAH)},
	{"ipv6", ExpectWellFormed, 60, func(r *rand.Rand) []byte { return build(randomV6(r)).b }},
	{"ipv6-tcp", ExpectWellFormed, 40, protoFrame(randomV6, wire.ProtoTCP)},
	{"ipv6-udp", ExpectWellFormed, 30, protoFrame(randomV6, wire.ProtoUDP)},
	{"ipv6-icmpv6", ExpectWellFormed, 20, protoFrame(randomV6, wire.ProtoICMPv6)},
	{"ipv6-icmpv6-error", ExpectWellFormed, 5, icmpError(6)},
	{"ipv6-esp", ExpectWellFormed, 3, protoFrame(randomV6, wire.ProtoESP)},

	// IPv4 options: L4 offset from IHL.
	{"ipv4-options", ExpectWellFormed, 20, ipv4Options},

	// IPv6 extension chains.
	{"ipv6-ext-hop-by-hop", ExpectWellFormed, 8, ipv6Ext(wire.IPv6ExtHopByHop)},
	{"ipv6-ext-routing", ExpectWellFormed, 8, ipv6Ext(wire.IPv6ExtRouting)},
	{"ipv6-ext-dest-opts", ExpectWellFormed, 8, ipv6Ext(wire.IPv6ExtDestOpts)},
	{"ipv6-ext-chain", ExpectWellFormed, 15, ipv6ExtChain(2, 7)},
	{"ipv6-ext-8", ExpectWellFormed, 5, ipv6ExtChain(8, 8)},
	{"ipv6-ext-icmpv6", ExpectWellFormed, 10, ipv6ExtThen(wire.ProtoICMPv6)},
	{"ipv6-ext-ah", ExpectWellFormed, 5, ipv6ExtThen(wire.ProtoAH)},
	{"ipv6-no-next-header", ExpectWellFormed, 5, ipv6NoNext},
	{"ipv6-ext-9+", ExpectMalformed, 5, ipv6ExtChain(9, 12)},
	{"ipv6-ext-len-past-end", ExpectMalformed, 8, ipv6ExtLenPastEnd},
	{"ipv6-ext-short", ExpectMalformed, 8, ipv6ExtShort},
	{"ipv6-ext-cut", ExpectMalformed, 5, ipv6ExtCut},
	{"ipv6-frag-header-short", ExpectMalformed, 5, ipv6FragHeaderShort},

	// Fragments.
	{"ipv4-frag-first", ExpectWellFormed, 10, ipv4Frag(false, 0)},
	{"ipv4-frag-later", ExpectWellFormed, 15, ipv4Frag(true, 0)},
	{"ipv4-frag-overlap", ExpectWellFormed, 5, ipv4Frag(true, 1)},
	{"ipv4-frag-tiny", ExpectMalformed, 5, ipv4FragTiny},
	{"ipv4-frag-first-l4-short", ExpectMalformed, 5, fragFirstL4Short(4)},
	{"ipv6-frag-first", ExpectWellFormed, 10, ipv6Frag(0, true, false)},
	{"ipv6-frag-later", ExpectWellFormed, 15, ipv6Frag(-1, true, false)},
	{"ipv6-frag-last", ExpectWellFormed, 5, ipv6Frag(-1, false, false)},
	{"ipv6-frag-overlap", ExpectWellFormed, 5, ipv6Frag(1, true, false)},
	{"ipv6-frag-atomic", ExpectWellFormed, 5, ipv6Frag(0, false, false)},
	{"ipv6-frag-then-ext", ExpectWellFormed, 5, ipv6Frag(0, true, true)},
	{"ipv6-frag-first-l4-short", ExpectMalformed, 5, fragFirstL4Short(6)},

	// IPv4 header errors.
	{"ipv4-bad-ihl", ExpectMalformed, 8, ipv4BadIHL},
	{"ipv4-ihl-past-frame", ExpectMalformed, 5, ipv4IHLPastFrame},
	{"ipv4-bad-version", ExpectMalformed, 5, badVersion(4)},
	{"ipv4-total-lt-header", ExpectMalformed, 8, ipv4TotalLTHeader},
	{"ipv4-total-gt-frame", ExpectMalformed, 8, ipLengthGTFrame(4)},
	{"ipv6-bad-version", ExpectMalformed, 5, badVersion(6)},
	{"ipv6-payload-gt-frame", ExpectMalformed, 8, ipLengthGTFrame(6)},

	// Truncation at and inside every header.
	{"cut-ethernet", ExpectMalformed, 5, cutEthernet},
	{"cut-vlan", ExpectMalformed, 5, cutVLAN},
	{"cut-ipv4", ExpectMalformed, 8, cutIPHeader(4)},
	{"cut-ipv4-options", ExpectMalformed, 5, cutIPv4Options},
	{"cut-ipv6", ExpectMalformed, 8, cutIPHeader(6)},
	{"cut-l4-frame", ExpectMalformed, 8, cutL4Frame},
	{"short-tcp", ExpectMalformed, 8, shortL4(wire.ProtoTCP)},
	{"short-udp", ExpectMalformed, 8, shortL4(wire.ProtoUDP)},
	{"short-icmp", ExpectMalformed, 5, shortL4(wire.ProtoICMP)},
	{"short-icmpv6", ExpectMalformed, 5, shortL4(wire.ProtoICMPv6)},
	{"tcp-data-offset-lt-5", ExpectMalformed, 8, tcpDataOffsetLT5},
	{"tcp-data-offset-past-end", ExpectMalformed, 8, tcpDataOffsetPastEnd},

	// VLAN.
	{"vlan-single", ExpectWellFormed, 10, vlanStack(1, false)},
	{"vlan-double", ExpectWellFormed, 10, vlanStack(2, false)},
	{"vlan-priority-tag", ExpectWellFormed, 5, vlanStack(1, true)},
	{"vlan-triple", ExpectWellFormed, 5, vlanStack(3, false)},

	// Ethernet padding: lengths come from the IP header.
	{"eth-padded-zero", ExpectWellFormed, 10, ethPadded(0)},
	{"eth-padded-garbage", ExpectWellFormed, 10, ethPadded(0xa5)},
	{"ip-trailing-bytes", ExpectWellFormed, 5, ipTrailing},

	// Non-IP.
	{"arp", ExpectWellFormed, 10, nonIP(0)},
	{"lldp", ExpectWellFormed, 5, nonIP(1)},
	{"non-ip-other", ExpectWellFormed, 5, nonIP(2)},
	{"vlan-arp", ExpectWellFormed, 3, vlanARP},

	// Random mutations of well-formed frames.
	{"random-flip", ExpectAny, 60, randomFlip},
	{"random-cut", ExpectAny, 30, randomCut},
	{"random-bytes", ExpectAny, 5, randomBytes},
}

// protoFrame builds a well-formed spec from base with upper layer proto.
func protoFrame(base func(*rand.Rand) frameSpec, proto uint8) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte { return build(withProto(r, base(r), proto)).b }
}

// icmpError builds an ICMP (family 4) or ICMPv6 (family 6) error carrying
// the start of an inner packet.
func icmpError(family int) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		var s, inner frameSpec
		if family == 4 {
			s = withProto(r, randomV4(r), wire.ProtoICMP)
			s.l4.icmpType = pick(r, []uint8{3, 11, 12})
			inner = withProto(r, randomV4(r), pick(r, []uint8{wire.ProtoTCP, wire.ProtoUDP}))
		} else {
			s = withProto(r, randomV6(r), wire.ProtoICMPv6)
			s.l4.icmpType = pick(r, []uint8{1, 2, 3, 4})
			inner = withProto(r, randomV6(r), pick(r, []uint8{wire.ProtoTCP, wire.ProtoUDP}))
		}
		inner.tags, inner.pad = nil, false
		in := build(inner)
		s.payload = in.b[in.lay.l3:min(len(in.b), in.lay.l4+8)]
		return build(s).b
	}
}

func ipv4Options(r *rand.Rand) []byte {
	s := randomV4(r)
	s.v4Opts = randomV4Options(r)
	if chance(r, 0.7) {
		s = withProto(r, s, pick(r, []uint8{wire.ProtoTCP, wire.ProtoUDP, wire.ProtoICMP}))
	}
	return build(s).b
}

func ipv6Ext(kind uint8) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		s := randomV6(r)
		s.exts = []extHeader{{kind: kind, size: 8 * (1 + r.Intn(4))}}
		return build(s).b
	}
}

// ipv6ExtChain builds lo..hi extension headers, sometimes with an atomic or
// first-fragment header among them.
func ipv6ExtChain(lo, hi int) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		s := randomV6(r)
		s.exts = randomExts(r, lo+r.Intn(hi-lo+1))
		if chance(r, 0.3) {
			s.exts[r.Intn(len(s.exts))] = extHeader{kind: wire.IPv6ExtFragment, more: chance(r, 0.5)}
		}
		return build(s).b
	}
}

// ipv6ExtThen builds 1..4 extension headers followed by proto.
func ipv6ExtThen(proto uint8) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		s := withProto(r, randomV6(r), proto)
		s.exts = randomExts(r, 1+r.Intn(4))
		return build(s).b
	}
}

func ipv6NoNext(r *rand.Rand) []byte {
	s := withProto(r, randomV6(r), wire.ProtoNoNext)
	if chance(r, 0.5) {
		s.exts = randomExts(r, 1+r.Intn(3))
	}
	s.payload = randomPayload(r, 24)
	return build(s).b
}

// withExtsSmall builds an IPv6 frame with 1..3 extension headers and a small
// upper layer, for the mutations of the chain.
func withExtsSmall(r *rand.Rand) frame {
	s := randomV6(r)
	s.exts = randomExts(r, 1+r.Intn(3))
	s.payload = nil
	s.pad = false
	return build(s)
}

// ipv6ExtLenPastEnd makes one extension header's length run past the end of
// the IPv6 payload.
func ipv6ExtLenPastEnd(r *rand.Rand) []byte {
	f := withExtsSmall(r)
	i := r.Intn(len(f.lay.exts))
	cur := f.lay.exts[i]
	need := (f.lay.end-cur)/8 + r.Intn(4) // (need+1)*8 > end-cur
	if need > 255 {
		need = 255
	}
	f.b[cur+1] = uint8(need)
	maybePad(r, &f)
	return f.b
}

// ipv6ExtShort ends the IPv6 payload (consistently) inside an extension header.
func ipv6ExtShort(r *rand.Rand) []byte {
	f := withExtsSmall(r)
	i := r.Intn(len(f.lay.exts))
	cur := f.lay.exts[i]
	size := int(f.b[cur+1]+1) * 8
	end := cur + r.Intn(size)
	f.cut(end)
	f.setIPLength(end)
	maybePad(r, &f)
	return f.b
}

// ipv6FragHeaderShort ends the IPv6 payload (consistently) inside a
// fragment header.
func ipv6FragHeaderShort(r *rand.Rand) []byte {
	s := randomV6(r)
	s.exts = append(randomExts(r, r.Intn(2)), extHeader{kind: wire.IPv6ExtFragment, more: true})
	s.pad = false
	f := build(s)
	end := f.lay.exts[len(f.lay.exts)-1] + r.Intn(8)
	f.cut(end)
	f.setIPLength(end)
	maybePad(r, &f)
	return f.b
}

// ipv6ExtCut cuts the frame inside an extension header, leaving the payload
// length as it was.
func ipv6ExtCut(r *rand.Rand) []byte {
	f := withExtsSmall(r)
	cur := pick(r, f.lay.exts)
	f.cut(cur + r.Intn(8))
	return f.b
}

// ipv4Frag builds a first (later=false) or non-first fragment; overlap
// gives a later fragment at offset overlap (8-byte units) whose payload is
// a TCP header rewriting the one of the first fragment.
func ipv4Frag(later bool, overlap uint16) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		s := withProto(r, randomV4(r), pick(r, []uint8{wire.ProtoTCP, wire.ProtoTCP, wire.ProtoUDP, wire.ProtoICMP, wire.ProtoGRE}))
		s.v4Flags = layers.IPv4MoreFragments
		if !later {
			return build(s).b
		}
		if chance(r, 0.3) {
			s.v4Flags = 0 // the last fragment
		}
		s.fragOff = 1 + uint16(r.Intn(400))
		if overlap != 0 {
			s.fragOff = overlap
		}
		s.l4.raw = fakeL4(r, s.proto)
		return build(s).b
	}
}

// fakeL4 returns bytes that look like an upper-layer header with pool ports,
// as a later fragment's payload.
func fakeL4(r *rand.Rand, proto uint8) []byte {
	if chance(r, 0.3) {
		return randomPayload(r, 30)
	}
	s := withProto(r, randomV4(r), proto)
	if proto != wire.ProtoTCP && proto != wire.ProtoUDP && proto != wire.ProtoICMP {
		s = withProto(r, s, wire.ProtoTCP)
	}
	s.tags = nil
	f := build(s)
	return append([]byte(nil), f.b[f.lay.l3+f.lay.hl:]...)
}

// ipv4FragTiny is the RFC 1858 tiny fragment: a first fragment carrying only
// 8 bytes of TCP header, so the flags are in the next fragment.
func ipv4FragTiny(r *rand.Rand) []byte {
	s := withProto(r, randomV4(r), wire.ProtoTCP)
	s.v4Flags = layers.IPv4MoreFragments
	s.payload = nil
	f := build(s)
	end := f.lay.l4 + 8
	f.cut(end)
	f.setIPLength(end)
	maybePad(r, &f)
	return f.b
}

// fragFirstL4Short builds a first fragment whose upper-layer header is cut
// short inside the IP packet.
func fragFirstL4Short(family int) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		var s frameSpec
		if family == 4 {
			s = withProto(r, randomV4(r), pick(r, []uint8{wire.ProtoTCP, wire.ProtoUDP, wire.ProtoICMP}))
			s.v4Flags = layers.IPv4MoreFragments
		} else {
			s = withProto(r, randomV6(r), pick(r, []uint8{wire.ProtoTCP, wire.ProtoUDP, wire.ProtoICMPv6}))
			s.exts = append(randomExts(r, r.Intn(2)), extHeader{kind: wire.IPv6ExtFragment, more: true})
		}
		return shortenL4(r, build(s))
	}
}

// ipv6Frag builds an IPv6 fragment. off < 0 draws a later offset; more is
// the M flag; extAfter puts a destination-options header after the
// fragment header.
func ipv6Frag(off int, more, extAfter bool) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		s := withProto(r, randomV6(r), pick(r, []uint8{wire.ProtoTCP, wire.ProtoTCP, wire.ProtoUDP, wire.ProtoICMPv6, wire.ProtoGRE}))
		fh := extHeader{kind: wire.IPv6ExtFragment, more: more}
		switch {
		case off < 0:
			fh.fragOff = 1 + uint16(r.Intn(8000))
		default:
			fh.fragOff = uint16(off)
		}
		s.exts = append(randomExts(r, r.Intn(2)), fh)
		if extAfter {
			s.exts = append(s.exts, extHeader{kind: wire.IPv6ExtDestOpts, size: 8})
		}
		if fh.fragOff != 0 {
			s.l4.raw = fakeL4(r, s.proto)
		}
		return build(s).b
	}
}

func ipv4BadIHL(r *rand.Rand) []byte {
	f := build(randomV4(r))
	l3 := f.lay.l3
	f.b[l3] = 0x40 | uint8(r.Intn(5))
	fixIPv4Checksum(f.b, l3)
	return f.b
}

// ipv4IHLPastFrame claims a header longer than the frame.
func ipv4IHLPastFrame(r *rand.Rand) []byte {
	s := randomV4(r)
	s.payload, s.pad = nil, false
	s.l4.tcpOptions = nil
	f := build(s)
	l3 := f.lay.l3
	ihl := (len(f.b)-l3)/4 + 1 + r.Intn(3)
	if ihl > 15 {
		ihl = 15
		f.cut(l3 + 20 + r.Intn(40))
	}
	f.b[l3] = 0x40 | uint8(ihl)
	return f.b
}

// badVersion writes a version nibble that disagrees with the ether type.
func badVersion(family int) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		var f frame
		var bad []uint8
		if family == 4 {
			f = build(randomV4(r))
			bad = []uint8{0, 6, 5, 15}
		} else {
			f = build(randomV6(r))
			bad = []uint8{0, 4, 7, 15}
		}
		l3 := f.lay.l3
		f.b[l3] = pick(r, bad)<<4 | f.b[l3]&0x0f
		return f.b
	}
}

func ipv4TotalLTHeader(r *rand.Rand) []byte {
	f := build(randomIPv4Maybe(r))
	l3 := f.lay.l3
	setBE16(f.b, l3+2, uint16(r.Intn(f.lay.hl)))
	fixIPv4Checksum(f.b, l3)
	return f.b
}

// randomIPv4Maybe is a random IPv4 spec, sometimes with options.
func randomIPv4Maybe(r *rand.Rand) frameSpec {
	s := randomV4(r)
	if chance(r, 0.3) {
		s.v4Opts = randomV4Options(r)
	}
	return s
}

// ipLengthGTFrame claims an IP packet longer than the frame.
func ipLengthGTFrame(family int) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		var f frame
		if family == 4 {
			f = build(randomIPv4Maybe(r))
		} else {
			f = build(randomIP6Maybe(r))
		}
		over := 1 + r.Intn(20)
		if chance(r, 0.1) {
			over = 65535
		}
		n := len(f.b) - f.lay.l3 + over
		if family == 6 {
			n -= 40
		}
		if n > 65535 {
			n = 65535
		}
		off := f.lay.l3 + 2
		if family == 6 {
			off = f.lay.l3 + 4
		}
		setBE16(f.b, off, uint16(n))
		if family == 4 {
			fixIPv4Checksum(f.b, f.lay.l3)
		}
		return f.b
	}
}

func randomIP6Maybe(r *rand.Rand) frameSpec {
	s := randomV6(r)
	if chance(r, 0.3) {
		s.exts = randomExts(r, 1+r.Intn(3))
	}
	return s
}

// cutEthernet returns frames shorter than an Ethernet header (0..13 bytes).
// The kernel cannot run them; the reference must call them malformed.
func cutEthernet(r *rand.Rand) []byte {
	f := build(randomIP(r))
	f.cut(r.Intn(14))
	return f.b
}

func cutVLAN(r *rand.Rand) []byte {
	s := randomIP(r)
	s.tags = randomTags(r)
	for len(s.tags) == 0 {
		s.tags = randomTags(r)
	}
	f := build(s)
	f.cut(pick(r, f.lay.tags) + r.Intn(4))
	return f.b
}

// cutIPHeader cuts the frame inside the fixed IPv4 or IPv6 header.
func cutIPHeader(family int) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		var f frame
		if family == 4 {
			f = build(randomV4(r))
			f.cut(f.lay.l3 + r.Intn(20))
		} else {
			f = build(randomV6(r))
			f.cut(f.lay.l3 + r.Intn(40))
		}
		return f.b
	}
}

func cutIPv4Options(r *rand.Rand) []byte {
	s := randomV4(r)
	s.v4Opts = randomV4Options(r)
	for ipv4OptionsSize(s.v4Opts) == 0 {
		s.v4Opts = randomV4Options(r)
	}
	f := build(s)
	f.cut(f.lay.l3 + 20 + r.Intn(f.lay.hl-20))
	return f.b
}

// l4Frame builds a well-formed IP frame with a parsed upper layer.
func l4Frame(r *rand.Rand, proto uint8) frame {
	var s frameSpec
	if proto == wire.ProtoICMPv6 || (proto != wire.ProtoICMP && chance(r, 0.5)) {
		s = randomIP6Maybe(r)
	} else {
		s = randomIPv4Maybe(r)
	}
	s = withProto(r, s, proto)
	return build(s)
}

// cutL4Frame cuts the frame inside the upper-layer header, leaving the IP
// length as it was: the IP length now runs past the frame.
func cutL4Frame(r *rand.Rand) []byte {
	p := pick(r, []uint8{wire.ProtoTCP, wire.ProtoUDP, wire.ProtoICMP, wire.ProtoICMPv6})
	f := l4Frame(r, p)
	f.cut(f.lay.l4 + r.Intn(f.lay.l4Min))
	return f.b
}

// shortL4 ends the IP packet (consistently) inside the upper-layer header.
func shortL4(proto uint8) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte { return shortenL4(r, l4Frame(r, proto)) }
}

// shortenL4 ends f's IP packet k bytes into its upper-layer header
// (k < minimum), fixing the IP length, and sometimes pads the frame.
func shortenL4(r *rand.Rand, f frame) []byte {
	end := f.lay.l4 + r.Intn(f.lay.l4Min)
	f.cut(end)
	f.setIPLength(end)
	maybePad(r, &f)
	return f.b
}

// maybePad pads half of the frames to 60 bytes with zeros or garbage, as
// short frames arrive from the wire.
func maybePad(r *rand.Rand, f *frame) {
	if chance(r, 0.5) {
		f.padTo(60, pick(r, []byte{0, 0xff, 0x45}))
	}
}

func tcpDataOffsetLT5(r *rand.Rand) []byte {
	f := l4Frame(r, wire.ProtoTCP)
	o := f.lay.l4 + 12
	f.b[o] = uint8(r.Intn(5))<<4 | f.b[o]&0x0f
	return f.b
}

// tcpDataOffsetPastEnd claims TCP options past the end of the IP packet
// (the frame may be padded beyond it).
func tcpDataOffsetPastEnd(r *rand.Rand) []byte {
	s := randomIPv4Maybe(r)
	if chance(r, 0.5) {
		s = randomIP6Maybe(r)
	}
	s = withProto(r, s, wire.ProtoTCP)
	s.l4.tcpOptions = nil
	s.payload = randomPayload(r, 12)
	f := build(s)
	avail := f.lay.end - f.lay.l4 // 20 + payload
	lo := avail/4 + 1             // lo*4 > avail
	doff := lo + r.Intn(16-lo)
	o := f.lay.l4 + 12
	f.b[o] = uint8(doff)<<4 | f.b[o]&0x0f
	maybePad(r, &f)
	return f.b
}

// vlanStack builds n tags (a third tag leaves the ether type at 0x8100);
// prio0 makes the outer tag a priority tag (id 0).
func vlanStack(n int, prio0 bool) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		var s frameSpec
		if chance(r, 0.85) {
			s = randomIP(r)
		} else {
			s = randomNonIP(r)
		}
		s.tags = nil
		for i := 0; i < n; i++ {
			tpid := uint16(wire.EtherTypeVLAN)
			if i == 0 && n > 1 && chance(r, 0.7) {
				tpid = wire.EtherTypeQinQ
			}
			s.tags = append(s.tags, vlanTag{tpid: tpid, vid: poolVLAN(r), prio: uint8(r.Intn(8))})
		}
		if prio0 {
			s.tags[0].vid = 0
		}
		return build(s).b
	}
}

// ethPadded builds an IP packet under 60 bytes padded to 60 with filler.
func ethPadded(filler byte) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		for range 50 {
			s := randomIP(r)
			s.exts, s.v4Opts, s.tags = nil, nil, nil
			s.l4.tcpOptions = nil
			s.payload = randomPayload(r, 4)
			s.pad = false
			if f := build(s); len(f.b) < 60 {
				f.padTo(60, filler)
				return f.b
			}
		}
		s := withProto(r, randomV4(r), wire.ProtoUDP)
		s.tags, s.payload, s.pad = nil, nil, false
		f := build(s)
		f.padTo(60, filler)
		return f.b
	}
}

// ipTrailing appends bytes after the IP packet beyond any padding.
func ipTrailing(r *rand.Rand) []byte {
	f := build(randomIP(r))
	extra := make([]byte, 1+r.Intn(40))
	r.Read(extra)
	return append(f.b, extra...)
}

func nonIP(kind int) func(*rand.Rand) []byte {
	return func(r *rand.Rand) []byte {
		for {
			s := randomNonIP(r)
			if (kind == 0 && s.arp != nil) || (kind == 1 && s.etherType == 0x88cc) || (kind == 2 && s.arp == nil) {
				return build(s).b
			}
		}
	}
}

func vlanARP(r *rand.Rand) []byte {
	s := baseSpec(r)
	s.etherType = wire.EtherTypeARP
	s.arp = randomARP(r, s.srcMAC)
	s.tags = []vlanTag{{tpid: wire.EtherTypeVLAN, vid: poolVLAN(r)}}
	return build(s).b
}

// anyFrame builds a random well-formed frame of any kind.
func anyFrame(r *rand.Rand) frame {
	switch x := r.Intn(20); {
	case x == 0:
		return build(randomNonIP(r))
	case x < 4:
		s := randomV6(r)
		s.exts = randomExts(r, 1+r.Intn(3))
		if chance(r, 0.3) {
			s.exts = append(s.exts, extHeader{kind: wire.IPv6ExtFragment, more: true, fragOff: uint16(r.Intn(2))})
			if s.exts[len(s.exts)-1].fragOff != 0 {
				s.l4.raw = fakeL4(r, s.proto)
			}
		}
		return build(s)
	case x < 6:
		s := randomV4(r)
		s.v4Flags = layers.IPv4MoreFragments
		return build(s)
	}
	return build(randomIP(r))
}

// randomFlip changes 1..3 bytes in the headers of a well-formed frame.
func randomFlip(r *rand.Rand) []byte {
	f := anyFrame(r)
	for range 1 + r.Intn(3) {
		i := r.Intn(min(len(f.b), 100))
		if chance(r, 0.5) {
			f.b[i] ^= 1 << r.Intn(8)
		} else {
			f.b[i] = uint8(r.Intn(256))
		}
	}
	return f.b
}

// randomCut cuts a well-formed frame at a random length of at least 14.
func randomCut(r *rand.Rand) []byte {
	f := anyFrame(r)
	if len(f.b) > 14 {
		f.cut(14 + r.Intn(len(f.b)-14))
	}
	return f.b
}

// randomBytes is an Ethernet header from the pools followed by random bytes
// under a random or IP ether type.
func randomBytes(r *rand.Rand) []byte {
	body := make([]byte, r.Intn(80))
	r.Read(body)
	et := pick(r, []layers.EthernetType{layers.EthernetTypeIPv4, layers.EthernetTypeIPv6, layers.EthernetTypeDot1Q, layers.EthernetTypeQinQ, layers.EthernetType(r.Intn(65536))})
	buf := gopacket.NewSerializeBuffer()
	eth := &layers.Ethernet{SrcMAC: poolMAC(r), DstMAC: poolMAC(r), EthernetType: et}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, gopacket.Payload(body)); err != nil {
		panic("corpus: serialize random frame: " + err.Error())
	}
	b := append([]byte(nil), buf.Bytes()...)
	return b[:14+len(body)]
}
