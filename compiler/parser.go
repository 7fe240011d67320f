package compiler

import (
	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// Labels shared by the parser, the classifier and the epilogue.
const (
	labelMalformed = "malformed"
	labelClassify  = "classify"
	labelTCP       = "parse.tcp"
	labelUDP       = "parse.udp"
	labelICMP      = "parse.icmp"
)

// frameContext is the kind of context a program's one argument points to:
// where it finds the frame.
type frameContext uint8

const (
	// contextXDP is struct xdp_md: data at offset 0, data_end at 4.
	contextXDP frameContext = iota
	// contextSkb is struct __sk_buff (a TC program): len at 0, data at
	// 76, data_end at 80. The entry first pulls the headers into the
	// linear part (bpf_skb_pull_data), which direct packet access reads.
	contextSkb
)

// skbPullBytes is how much of a socket buffer the entry of a TC program
// pulls into its linear part (at most the buffer's length): every header
// the parser and the connection tracker read, with IPv4 options, two VLAN
// tags, TCP options and an ICMP error's embedded headers, lies within it.
// Pulling more would copy payload of large (GSO) buffers for nothing; a
// frame whose headers go further (a long IPv6 extension chain) is read as
// malformed, which a TC program leaves alone.
const skbPullBytes = 512

// parserOptions place the parser in a program (STYLE.md "Embeddable
// codegen"): the context it reads the frame from and the labels it
// continues at. Registers and the metadata area are the same in every
// program (layout.go).
type parserOptions struct {
	context frameContext
	// next is where a parsed frame goes with the metadata area filled:
	// labelClassify, or the connection tracker (labelTrack).
	next string
	// malformed is where a frame that fails parsing goes.
	malformed string
	// frameLen stores the frame length for the counters (slotFrameLen).
	frameLen bool
	// defaults are instructions the entry adds to the metadata defaults:
	// the connection tracker's (trackDefaults).
	defaults func(e *emitter)
}

// xdpParser is the XDP program's parser without connection tracking.
var xdpParser = parserOptions{context: contextXDP, next: labelClassify, malformed: labelMalformed, frameLen: true}

// parser emits the parser of one program.
type parser struct {
	e *emitter
	parserOptions
}

// emitParser emits the entry and the packet parser of docs/datapath.md. It
// fills the metadata area (layout.go) and jumps to opts.next, or to
// opts.malformed when the frame fails parsing. Every packet access is
// guarded by a check of the accessed end against data_end; semantic bounds
// (the IP packet end) are checked on offsets from the packet start, and both
// checks fail to opts.malformed, which agree since the IP end is within the
// frame.
func emitParser(e *emitter, opts parserOptions) {
	p := &parser{e: e, parserOptions: opts}
	p.emitEntry()
	p.emitEthernet()
	p.emitIPv6()
	p.emitIPv4()
	p.emitLayer4()
}

func storeImm(slot int16, v int32) asm.Instruction {
	return asm.StoreImm(asm.R10, slot, int64(v), asm.Word)
}

func store(slot int16, r asm.Register) asm.Instruction {
	return asm.StoreMem(asm.R10, slot, r, asm.Word)
}

func load(r asm.Register, slot int16) asm.Instruction {
	return asm.LoadMem(r, asm.R10, slot, asm.Word)
}

// be16 loads the big-endian u16 at ptr+off into r in host order. The mask
// changes no value, but the verifiers of 6.1 and 6.12 forget a register's
// bounds after a byte swap (6.18's keeps them), and a length or cursor
// without bounds cannot be added to a packet pointer.
func be16(r, ptr asm.Register, off int16) []asm.Instruction {
	return be16Masked(r, ptr, off, 0xffff)
}

// be16Masked is be16 keeping only the bits of mask.
func be16Masked(r, ptr asm.Register, off int16, mask int32) []asm.Instruction {
	return []asm.Instruction{
		asm.LoadMem(r, ptr, off, asm.Half),
		asm.HostTo(asm.BE, r, asm.Half),
		asm.And.Imm(r, mask),
	}
}

// guard jumps to fail unless ptr+n is within the frame; it makes [ptr,
// ptr+n) readable to the verifier. It clobbers scratch.
func guard(e *emitter, ptr asm.Register, n int32, scratch asm.Register, fail string) {
	e.emit(
		asm.Mov.Reg(scratch, ptr),
		asm.Add.Imm(scratch, n),
		asm.JGT.Reg(scratch, rDataEnd, fail),
	)
}

// checkPacketEnd jumps to malformed unless end, a pointer to where the IP
// header says the IP packet ends, lies within the packet. In XDP that is
// the frame (data_end). A TC program sees only the linear part of an skb
// up to data_end (headers, once pulled); the rest of a large or GSO packet
// is in fragments, so there the bound is the skb's whole length (skb->len
// at offset 0), and reads stay guarded by data_end.
func (p *parser) checkPacketEnd(end asm.Register) {
	e := p.e
	if p.context != contextSkb {
		e.emit(asm.JGT.Reg(end, rDataEnd, p.malformed))
		return
	}
	e.emit(
		asm.Sub.Reg(end, rData),
		asm.LoadMem(asm.R0, rCtx, 0, asm.Word), // len
		asm.JGT.Reg(end, asm.R0, p.malformed),
	)
}

func (p *parser) emitEntry() {
	e := p.e
	e.at("entry: context and frame length")
	e.emit(asm.Mov.Reg(rCtx, asm.R1))
	switch p.context {
	case contextXDP:
		e.emit(
			asm.LoadMem(rData, rCtx, 0, asm.Word),
			asm.LoadMem(rDataEnd, rCtx, 4, asm.Word),
		)
	case contextSkb:
		e.at("entry: pull the headers into the linear part")
		pulled := e.newLabel("entry.pull")
		e.emit(
			asm.LoadMem(asm.R2, rCtx, 0, asm.Word), // len
			asm.JLE.Imm(asm.R2, skbPullBytes, pulled),
			asm.Mov.Imm(asm.R2, skbPullBytes),
		)
		e.label(pulled)
		// A failed pull leaves the buffer as it was: what is linear
		// is parsed, and a frame cut short is malformed.
		e.emit(
			asm.Mov.Reg(asm.R1, rCtx),
			asm.FnSkbPullData.Call(),
			asm.LoadMem(rData, rCtx, 76, asm.Word),
			asm.LoadMem(rDataEnd, rCtx, 80, asm.Word),
		)
	}
	if p.frameLen {
		e.emit(
			asm.Mov.Reg(asm.R1, rDataEnd),
			asm.Sub.Reg(asm.R1, rData),
			store(slotFrameLen, asm.R1),
		)
	}
	e.at("entry: metadata defaults (absent)")
	for _, s := range initSlots {
		e.emit(storeImm(s, absent))
	}
	e.emit(storeImm(slotFragment, fragAbsent))
	for _, key := range []int16{lpmKeySrc, lpmKeyDst} {
		for off := int16(0); off < lpmKeySizeV6; off += 4 {
			e.emit(storeImm(key+off, absent))
		}
	}
	if p.defaults != nil {
		p.defaults(e)
	}
}

func (p *parser) emitEthernet() {
	e := p.e
	e.at("parse: ethernet header")
	guard(e, rData, 14, asm.R1, p.malformed)
	for off := int16(0); off < 12; off += 4 {
		e.emit(asm.LoadMem(asm.R1, rData, off, asm.Word), store(macArea+off, asm.R1))
	}
	e.emit(be16(asm.R1, rData, 12)...)
	e.emit(asm.Mov.Imm(rL3, 14))
	tagsDone := e.newLabel("parse.tags_done")
	for tag := 1; tag <= 2; tag++ {
		off := int16(14 + 4*(tag-1))
		slot := slotVLAN
		if tag == 2 {
			slot = slotInnerVLAN
		}
		e.at("parse: vlan tag %d", tag)
		isTag := e.newLabel("parse.tag")
		e.emit(
			asm.JEq.Imm32(asm.R1, wire.EtherTypeVLAN, isTag),
			asm.JNE.Imm32(asm.R1, wire.EtherTypeQinQ, tagsDone),
		)
		e.label(isTag)
		guard(e, rData, int32(off)+4, asm.R2, p.malformed)
		e.emit(be16Masked(asm.R2, rData, off, 0x0fff)...)
		e.emit(store(slot, asm.R2))
		e.emit(be16(asm.R1, rData, off+2)...)
		e.emit(asm.Mov.Imm(rL3, int32(off)+4))
	}
	e.label(tagsDone)
	e.at("parse: ether_type")
	e.emit(
		store(slotEtherType, asm.R1),
		asm.JEq.Imm32(asm.R1, wire.EtherTypeIPv4, "parse.ipv4"),
		asm.JNE.Imm32(asm.R1, wire.EtherTypeIPv6, p.next),
	)
}

// emitIPv4 parses the IPv4 header at rL3 and hands the layer-4 header to
// emitLayer4 with r1 = its offset, r2 = the IP packet end, r5 = protocol.
func (p *parser) emitIPv4() {
	e := p.e
	e.label("parse.ipv4")
	e.at("parse: ipv4 header")
	e.emit(asm.Mov.Reg(asm.R3, rData), asm.Add.Reg(asm.R3, rL3))
	guard(e, asm.R3, 20, asm.R4, p.malformed)
	e.emit(
		asm.LoadMem(asm.R1, asm.R3, 0, asm.Byte),
		asm.Mov.Reg32(asm.R2, asm.R1),
		asm.RSh.Imm32(asm.R2, 4),
		asm.JNE.Imm32(asm.R2, 4, p.malformed),
		asm.And.Imm32(asm.R1, 0x0f),
		asm.JLT.Imm32(asm.R1, 5, p.malformed),
		asm.LSh.Imm32(asm.R1, 2), // header length
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.Add.Reg(asm.R4, asm.R1),
		asm.JGT.Reg(asm.R4, rDataEnd, p.malformed),
	)
	e.emit(be16(asm.R2, asm.R3, 2)...) // total length
	e.emit(
		asm.JLT.Reg32(asm.R2, asm.R1, p.malformed),
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.Add.Reg(asm.R4, asm.R2),
	)
	p.checkPacketEnd(asm.R4)
	e.emit(
		store(slotLength, asm.R2),
		asm.LoadMem(asm.R4, asm.R3, 8, asm.Byte),
		store(slotTTL, asm.R4),
		asm.LoadMem(asm.R5, asm.R3, 9, asm.Byte),
		store(slotProto, asm.R5),
		storeImm(slotFamily, 4),
	)
	e.at("parse: ipv4 addresses")
	for i, f := range []policy.Field{policy.FieldSrc, policy.FieldDst} {
		key := lpmKey(f)
		e.emit(
			asm.LoadMem(asm.R4, asm.R3, int16(12+4*i), asm.Word),
			store(addrWordSlot(f, 0), asm.R4),
			store(key+4, asm.R4),
			storeImm(key, 32),
		)
	}
	e.at("parse: ipv4 fragment")
	first, later, l4 := e.newLabel("parse.ipv4_first"), e.newLabel("parse.ipv4_later"), e.newLabel("parse.ipv4_l4")
	e.emit(be16(asm.R4, asm.R3, 6)...)
	e.emit(
		asm.JSet.Imm32(asm.R4, 0x1fff, later),
		asm.JSet.Imm32(asm.R4, 0x2000, first),
		storeImm(slotFragment, int32(policy.FragNone)),
		asm.Ja.Label(l4),
	)
	e.label(first)
	e.emit(storeImm(slotFragment, int32(policy.FragFirst)), asm.Ja.Label(l4))
	e.label(later)
	e.emit(storeImm(slotFragment, int32(policy.FragLater)), asm.Ja.Label(p.next))
	e.label(l4)
	e.at("parse: ipv4 layer 4 dispatch")
	e.emit(
		asm.Add.Reg(asm.R1, rL3), // layer-4 offset
		asm.Add.Reg(asm.R2, rL3), // IP packet end
		asm.JEq.Imm32(asm.R5, wire.ProtoTCP, labelTCP),
		asm.JEq.Imm32(asm.R5, wire.ProtoUDP, labelUDP),
		asm.JEq.Imm32(asm.R5, wire.ProtoICMP, labelICMP),
		asm.Ja.Label(p.next),
	)
}

// emitIPv6 parses the IPv6 header at rL3 and walks up to
// policy.MaxIPv6ExtHdrs extension headers, unrolled: the offset grows by at
// most 2,048 bytes a header, so it stays bounded for the verifier.
func (p *parser) emitIPv6() {
	e := p.e
	e.label("parse.ipv6")
	e.at("parse: ipv6 header")
	e.emit(asm.Mov.Reg(asm.R3, rData), asm.Add.Reg(asm.R3, rL3))
	guard(e, asm.R3, 40, asm.R4, p.malformed)
	e.emit(
		asm.LoadMem(asm.R1, asm.R3, 0, asm.Byte),
		asm.RSh.Imm32(asm.R1, 4),
		asm.JNE.Imm32(asm.R1, 6, p.malformed),
	)
	e.emit(be16(asm.R2, asm.R3, 4)...) // payload length
	e.emit(
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.Add.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 40),
	)
	p.checkPacketEnd(asm.R4)
	e.emit(
		asm.Add.Imm32(asm.R2, 40),
		store(slotLength, asm.R2),
		asm.Add.Reg(asm.R2, rL3), // IP packet end
		asm.LoadMem(asm.R4, asm.R3, 7, asm.Byte),
		store(slotTTL, asm.R4),
		storeImm(slotFamily, 6),
		storeImm(slotFragment, int32(policy.FragNone)),
	)
	e.at("parse: ipv6 addresses")
	for i, f := range []policy.Field{policy.FieldSrc, policy.FieldDst} {
		key := lpmKey(f)
		for w := 0; w < 4; w++ {
			e.emit(
				asm.LoadMem(asm.R4, asm.R3, int16(8+16*i+4*w), asm.Word),
				store(addrWordSlot(f, w), asm.R4),
				store(key+4+int16(4*w), asm.R4),
			)
		}
		e.emit(storeImm(key, 128))
	}
	e.at("parse: ipv6 next header")
	e.emit(
		asm.LoadMem(asm.R5, asm.R3, 6, asm.Byte),
		asm.Mov.Reg(asm.R1, rL3),
		asm.Add.Imm(asm.R1, 40), // cursor
	)
	l4, later := e.newLabel("parse.ipv6_l4"), e.newLabel("parse.ipv6_later")
	next := e.newLabel("parse.ipv6_ext")
	for i := 1; i <= policy.MaxIPv6ExtHdrs; i++ {
		e.label(next)
		e.at("parse: ipv6 extension header %d", i)
		options, frag := e.newLabel("parse.ipv6_options"), e.newLabel("parse.ipv6_fragment")
		next = e.newLabel("parse.ipv6_ext")
		p.normaliseCursor()
		e.emit(
			asm.JEq.Imm32(asm.R5, wire.IPv6ExtHopByHop, options),
			asm.JEq.Imm32(asm.R5, wire.IPv6ExtRouting, options),
			asm.JEq.Imm32(asm.R5, wire.IPv6ExtDestOpts, options),
			asm.JNE.Imm32(asm.R5, wire.IPv6ExtFragment, l4),
		)
		e.label(frag)
		e.at("parse: ipv6 extension header %d (fragment)", i)
		p.extGuard()
		e.emit(be16(asm.R3, asm.R4, 2)...)
		e.emit(
			asm.LoadMem(asm.R5, asm.R4, 0, asm.Byte),
			asm.Add.Imm(asm.R1, 8),
			asm.JSet.Imm32(asm.R3, 0xfff8, later),
			asm.And.Imm32(asm.R3, 1),
			asm.JEq.Imm32(asm.R3, 0, next),
			storeImm(slotFragment, int32(policy.FragFirst)),
			asm.Ja.Label(next),
		)
		e.label(options)
		e.at("parse: ipv6 extension header %d (options or routing)", i)
		p.extGuard()
		e.emit(
			asm.LoadMem(asm.R3, asm.R4, 1, asm.Byte),
			asm.Add.Imm32(asm.R3, 1),
			asm.LSh.Imm32(asm.R3, 3),
			asm.LoadMem(asm.R5, asm.R4, 0, asm.Byte),
			asm.Add.Reg(asm.R1, asm.R3),
			asm.JGT.Reg(asm.R1, asm.R2, p.malformed),
		)
	}
	e.label(next)
	e.at("parse: ipv6 extension header %d (too many)", policy.MaxIPv6ExtHdrs+1)
	e.emit(
		asm.JEq.Imm32(asm.R5, wire.IPv6ExtHopByHop, p.malformed),
		asm.JEq.Imm32(asm.R5, wire.IPv6ExtRouting, p.malformed),
		asm.JEq.Imm32(asm.R5, wire.IPv6ExtDestOpts, p.malformed),
		asm.JEq.Imm32(asm.R5, wire.IPv6ExtFragment, p.malformed),
	)
	e.label(l4)
	e.at("parse: ipv6 layer 4 dispatch")
	e.emit(
		store(slotProto, asm.R5),
		asm.JEq.Imm32(asm.R5, wire.ProtoTCP, labelTCP),
		asm.JEq.Imm32(asm.R5, wire.ProtoUDP, labelUDP),
		asm.JEq.Imm32(asm.R5, wire.ProtoICMPv6, labelICMP),
		asm.Ja.Label(p.next),
	)
	e.label(later)
	e.at("parse: ipv6 later fragment")
	e.emit(
		storeImm(slotFragment, int32(policy.FragLater)),
		store(slotProto, asm.R5),
		asm.Ja.Label(p.next),
	)
}

// maxCursor bounds the header cursor after normaliseCursor. No frame an XDP
// program sees linearly comes near it, so a cursor beyond it fails the
// frame guard anyway; the bound only lets the verifier add it to a packet
// pointer.
const maxCursor = 0xff00

// normaliseCursor reloads the cursor r1 and the IP end r2 through the
// metadata area. Their values come back the same, but as scalars the
// verifier knows nothing about beyond a bound: every path (tag count,
// extension headers walked, their lengths) reaches the code after it in
// one state, so it is verified once instead of once per path.
func (p *parser) normaliseCursor() {
	e := p.e
	e.emit(
		store(slotCursor, asm.R1),
		store(slotIPEnd, asm.R2),
		load(asm.R1, slotCursor),
		load(asm.R2, slotIPEnd),
		asm.JGT.Imm(asm.R1, maxCursor, p.malformed),
	)
}

// extGuard checks that the 8 bytes at cursor r1 are within the IP packet
// (end r2) and the frame, leaving a pointer to them in r4.
func (p *parser) extGuard() {
	e := p.e
	e.emit(
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.Add.Imm(asm.R3, 8),
		asm.JGT.Reg(asm.R3, asm.R2, p.malformed),
		asm.Mov.Reg(asm.R4, rData),
		asm.Add.Reg(asm.R4, asm.R1),
	)
	guard(e, asm.R4, 8, asm.R3, p.malformed)
}

// emitLayer4 parses the TCP, UDP or ICMP header at offset r1 of an IP
// packet that ends at offset r2, then jumps to p.next.
func (p *parser) emitLayer4() {
	e := p.e
	l4Guard := func(n int32) {
		p.normaliseCursor()
		e.emit(
			asm.Mov.Reg(asm.R3, asm.R1),
			asm.Add.Imm(asm.R3, n),
			asm.JGT.Reg(asm.R3, asm.R2, p.malformed),
			asm.Mov.Reg(asm.R4, rData),
			asm.Add.Reg(asm.R4, asm.R1),
		)
		guard(e, asm.R4, n, asm.R3, p.malformed)
	}
	ports := func() {
		for i, s := range []int16{slotSrcPort, slotDstPort} {
			e.emit(be16(asm.R3, asm.R4, int16(2*i))...)
			e.emit(store(s, asm.R3))
		}
	}

	e.label(labelTCP)
	e.at("parse: tcp header")
	l4Guard(20)
	e.emit(
		asm.LoadMem(asm.R3, asm.R4, 12, asm.Byte),
		asm.RSh.Imm32(asm.R3, 4),
		asm.JLT.Imm32(asm.R3, 5, p.malformed),
		asm.LSh.Imm32(asm.R3, 2),
		asm.Add.Reg(asm.R3, asm.R1),
		asm.JGT.Reg(asm.R3, asm.R2, p.malformed),
	)
	ports()
	e.emit(
		asm.LoadMem(asm.R3, asm.R4, 13, asm.Byte),
		store(slotTCPFlags, asm.R3),
		asm.Ja.Label(p.next),
	)

	e.label(labelUDP)
	e.at("parse: udp header")
	l4Guard(8)
	ports()
	e.emit(asm.Ja.Label(p.next))

	e.label(labelICMP)
	e.at("parse: icmp header")
	l4Guard(8)
	e.emit(
		asm.LoadMem(asm.R3, asm.R4, 0, asm.Byte),
		store(slotICMPType, asm.R3),
		asm.LoadMem(asm.R3, asm.R4, 1, asm.Byte),
		store(slotICMPCode, asm.R3),
		asm.Ja.Label(p.next),
	)
}
