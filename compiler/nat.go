package compiler

import (
	"encoding/binary"
	"net/netip"

	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// NAT (docs/nat.md) wraps the commit of a program bound to a NAT
// interface:
//
//	track (alias fallback) -> rules -> pass | redirect
//	  -> nat.decide  a new flow's translation: forward, static, masquerade
//	  -> commit      the entry, with its translation
//	  -> nat.alias   the NAT map's entry for the translated tuple
//	  -> nat.rewrite addresses, ports, checksums
//	  -> nat.forward bpf_fib_lookup and bpf_redirect, or the stack
//	  -> count
//
// The tracker finds a flow by the tuple a packet arrived with, or through
// the NAT map by its translated tuple (emitAliasFallback), and leaves in
// slotNATRewrite and slotNATAddr what the packet's rewrite is, and in
// slotCTNAT and slotCTNATAddr the entry's translation, which the commit
// writes back. Like the tracker's, these slots hold no zero the verifier
// knows of.

// Labels of the NAT stages.
const (
	labelTrackFound = "track.found"
	labelTrackAlias = "track.alias"
	labelNATDecide  = "nat.decide"
	labelNATAlias   = "nat.alias"
	labelNATRewrite = "nat.rewrite"
	labelNATForward = "nat.forward"
	labelNATDone    = "nat.done"
)

// Stack slots of NAT, below the connection tracker's.
const (
	// natKeyArea is a struct ct_key of a translated tuple: the NAT map's
	// key (emitAliasKey).
	natKeyArea int16 = -472
	// slotNATRewrite is which<<16 | port: the end of the packet to
	// rewrite (natRewriteSource, natRewriteDestination) and its new port
	// (host order); absent when the packet is not rewritten.
	slotNATRewrite int16 = -476
	// slotNATAddr is the rewritten end's new address (as loaded).
	slotNATAddr int16 = -484
	// slotCTNAT is bytes 18-21 of the flow's struct ct_entry: nat |
	// nat_side<<8 | nat_port<<16; slotCTNATAddr its nat_addr.
	slotCTNAT     int16 = -492
	slotCTNATAddr int16 = -500
	// slotNATScratch is a map key of one word (settings, reserved port).
	slotNATScratch int16 = -508
	// slotNATVerdict keeps the verdict across the NAT stages; the
	// parser's IP end is dead by then.
	slotNATVerdict int16 = -260
	// fibArea is struct bpf_fib_lookup (64 bytes), over the key and
	// value areas, which are dead once the entry is committed.
	fibArea int16 = ctValueArea
)

// Which end slotNATRewrite rewrites.
const (
	natRewriteSource      = 1
	natRewriteDestination = 2
)

// natForwarded is the verdict of a packet bpf_redirect sent out after a
// FIB lookup: the epilogue returns XDP_REDIRECT for it without the
// device map.
const natForwarded = 0x100 | int32(artifact.ActionRedirect)

// natReads are the slots the NAT stages read besides the tracker's.
var natReads = []int16{slotVLAN, slotInnerVLAN, slotTTL, slotLength}

// word is the u32 an IPv4 address is as the parser loads it.
func word(a netip.Addr) int32 {
	b := a.As4()
	return int32(binary.LittleEndian.Uint32(b[:]))
}

// natDefaults stores the NAT slots' defaults after the tracker's: no
// rewrite, no translation, the entry's value area written (the alias
// stage reads it on paths the commit did not write it on).
func natDefaults(e *emitter) {
	trackDefaults(e)
	e.at("entry: NAT defaults")
	e.emit(storeImm(slotNATRewrite, absent), storeImm(slotNATAddr, absent))
	unknownZero(e, asm.R1)
	e.emit(store(slotCTNAT, asm.R1), store(slotCTNATAddr, asm.R1))
	for off := int16(0); off < conntrack.EntrySize; off += 4 {
		e.emit(storeImm(ctValueArea+off, absent))
	}
}

// emitFlowTranslation emits labelTrackFound, where both lookups of the
// table land with r0 at the live entry: it keeps the entry's translation
// for the commit and, for a packet found by its own tuple, the rewrite the
// entry says (the translated end's new address and port); then the
// packet's status.
//
// The XDP program of a role keeps a rewrite only for the packets its
// role translates (docs/nat.md, "Which packets are translated", "ICMP
// errors"). A packet holds one side's values: found by its own tuple, the
// inside's for source NAT and the outside's for destination NAT; found
// through the NAT map, the other side's. So the inside translates
// source-NAT flows found by their own tuple and destination-NAT flows
// found through the NAT map, the outside the converse; and of those only
// a packet whose rewritten end is its source on the inside (its
// destination on the outside), or an ICMP error carrying one whose
// rewritten end is the other, which went through translated and comes
// back. Any other (an error from an inside router about the inside host's
// packet before it was translated, a packet of the wrong side) is left
// as it is, its flow found all the same. role 0 (the egress program)
// keeps every rewrite: it tells translated flows by it.
func emitFlowTranslation(e *emitter, role policy.NATRole) {
	e.label(labelTrackFound)
	e.at("nat: the entry's translation")
	aliasPath := e.newLabel("nat.found_by_alias")
	found := "track.live"
	if role != 0 {
		found = aliasPath
	}
	e.emit(
		asm.LoadMem(asm.R1, asm.R0, 18, asm.Half),
		asm.LoadMem(asm.R2, asm.R0, 20, asm.Half),
		asm.LSh.Imm32(asm.R2, 16),
		asm.Or.Reg32(asm.R1, asm.R2),
		store(slotCTNAT, asm.R1),
		asm.LoadMem(asm.R1, asm.R0, 24, asm.Word),
		store(slotCTNATAddr, asm.R1),
		load(asm.R1, slotNATRewrite),
		asm.JNE.Imm32(asm.R1, absent, found), // found through the alias
		load(asm.R1, slotCTNAT),
		asm.Mov.Reg32(asm.R2, asm.R1),
		asm.And.Imm32(asm.R2, 0xff),
		asm.JEq.Imm32(asm.R2, 0, "track.live"),
	)
	own, alias, end := conntrack.NATSource, conntrack.NATDestination, int32(natRewriteSource)
	if role == policy.NATOutside {
		own, alias, end = conntrack.NATDestination, conntrack.NATSource, natRewriteDestination
	}
	if role != 0 {
		e.at("nat: the %s translates %s flows found by their own tuple", role, own)
		e.emit(asm.JNE.Imm32(asm.R2, int32(own), "track.live"))
	}
	e.emit(
		asm.Mov.Reg32(asm.R2, asm.R1),
		asm.RSh.Imm32(asm.R2, 8),
		asm.And.Imm32(asm.R2, 1),
		asm.RSh.Imm32(asm.R1, 16),
	)
	e.at("nat: a packet of a translated flow, as it first arrived: the entry's end gets its translation")
	emitRewriteEnd(e, asm.R2, asm.R1)
	e.emit(load(asm.R1, slotCTNATAddr), store(slotNATAddr, asm.R1))
	if role == 0 {
		e.emit(asm.Ja.Label("track.live"))
		return
	}
	check, errorEnd, clear := e.newLabel("nat.found_end"), e.newLabel("nat.found_error"), e.newLabel("nat.found_clear")
	e.emit(asm.Ja.Label(check))
	e.label(aliasPath)
	e.at("nat: the %s translates %s flows found through the NAT map", role, alias)
	e.emit(
		load(asm.R1, slotCTNAT),
		asm.And.Imm32(asm.R1, 0xff),
		asm.JNE.Imm32(asm.R1, int32(alias), clear),
	)
	e.label(check)
	e.at("nat: going the way the %s translates (an ICMP error: carrying one going the other way)", role)
	e.emit(
		load(asm.R1, slotNATRewrite),
		asm.RSh.Imm32(asm.R1, 16),
		load(asm.R3, slotCTKind),
		asm.JEq.Imm32(asm.R3, int32(conntrack.KindICMPError), errorEnd),
		asm.JEq.Imm32(asm.R1, end, "track.live"),
		asm.Ja.Label(clear),
	)
	e.label(errorEnd)
	e.emit(asm.JEq.Imm32(asm.R1, natRewriteSource+natRewriteDestination-end, "track.live"))
	e.label(clear)
	e.at("nat: not translated here")
	e.emit(storeImm(slotNATRewrite, absent), storeImm(slotNATAddr, absent), asm.Ja.Label("track.live"))
}

// emitRewriteEnd stores slotNATRewrite: the end of the packet that is the
// key's Lo endpoint when lo (a register, 1 or 0) says so, and port (a
// register, clobbered). It clobbers r3.
func emitRewriteEnd(e *emitter, lo, port asm.Register) {
	srcLo, src, done := e.newLabel("nat.src_lo"), e.newLabel("nat.src"), e.newLabel("nat.end")
	e.emit(
		load(asm.R3, slotCTOrder),
		asm.JEq.Imm32(asm.R3, ctSrcIsLo, srcLo),
		asm.JEq.Imm32(lo, 0, src),
		asm.Or.Imm32(port, natRewriteDestination<<16),
		asm.Ja.Label(done),
	)
	e.label(srcLo)
	e.emit(
		asm.JNE.Imm32(lo, 0, src),
		asm.Or.Imm32(port, natRewriteDestination<<16),
		asm.Ja.Label(done),
	)
	e.label(src)
	e.emit(asm.Or.Imm32(port, natRewriteSource<<16))
	e.label(done)
	e.emit(store(slotNATRewrite, port))
}

// emitAliasFallback emits labelTrackAlias, where a packet whose tuple the
// table does not hold goes: a live alias of its tuple gives the endpoint
// its translated end stands for. The packet's rewrite turns that end back,
// the key becomes the flow's (the endpoint substituted, reordered), and
// the table is looked up again. An alias whose entry is gone leaves the
// packet invalid: its key is no longer its own.
func emitAliasFallback(e *emitter, o trackOptions) {
	e.label(labelTrackAlias)
	e.at("nat: not in the table: is the tuple a translated one (the NAT map)")
	mapAndKey(e, o.alias)
	e.emit(
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "track.none"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
	)
	loadNow(e, asm.R2, asm.R3)
	e.emit(
		asm.JGE.Reg(asm.R2, asm.R1, "track.none"), // dead: now >= expires
		asm.LoadMem(asm.R1, asm.R0, 8, asm.Word),
		store(slotNATAddr, asm.R1),
		asm.LoadMem(asm.R4, asm.R0, 12, asm.Half), // orig_port
		asm.LoadMem(asm.R5, asm.R0, 15, asm.Byte), // side
		asm.Mov.Reg(asm.R1, asm.R4),
		asm.Mov.Reg(asm.R2, asm.R5),
	)
	e.at("nat: a reply of a translated flow: its translated end gets the endpoint it stands for")
	emitRewriteEnd(e, asm.R2, asm.R1)
	e.at("nat: the flow's key: the translated endpoint replaced by the original")
	emitSubstitute(e, ctKeyArea, asm.R5, load(asm.R1, slotNATAddr), asm.R4)
	emitOrderArea(e, ctKeyArea, e.newLabel("nat.ordered"), e.newLabel("nat.swap"), func() {
		e.emit(
			load(asm.R1, slotCTOrder),
			asm.Mov.Imm32(asm.R2, ctSrcIsLo+ctSrcIsHi),
			asm.Sub.Reg32(asm.R2, asm.R1),
			store(slotCTOrder, asm.R2),
		)
	})
	e.at("nat: look the flow up by its own key")
	stale := e.newLabel("track.alias_stale")
	emitLookup(e, o, labelTrackFound, stale)
	e.label(stale)
	e.at("nat: an alias without its flow: invalid")
	e.emit(
		storeImm(slotNATRewrite, absent),
		storeImm(slotCTStatus, statusBit(conntrack.StatusInvalid)),
		asm.Ja.Label(o.next),
	)
}

// emitSubstitute writes the endpoint addr (the instruction that loads it
// into r1) and port (a register) at the Lo end of the key at area when lo
// (a register) is 1, else at its Hi end; an echo's identifier is both
// ports. It clobbers r1 and r2.
func emitSubstitute(e *emitter, area int16, lo asm.Register, addr asm.Instruction, port asm.Register) {
	atLo, done := e.newLabel("nat.sub_lo"), e.newLabel("nat.sub_done")
	echo := e.newLabel("nat.sub_echo")
	e.emit(addr, asm.JEq.Imm32(lo, 1, atLo))
	e.emit(
		store(area+keyHiAddr, asm.R1),
		asm.StoreMem(asm.R10, area+keyHiPort, port, asm.Half),
		asm.Ja.Label(echo),
	)
	e.label(atLo)
	e.emit(
		store(area+keyLoAddr, asm.R1),
		asm.StoreMem(asm.R10, area+keyLoPort, port, asm.Half),
	)
	e.label(echo)
	e.emit(
		asm.LoadMem(asm.R2, asm.R10, area+keyFamily+1, asm.Byte),
		asm.JNE.Imm32(asm.R2, wire.ProtoICMP, done), // an echo's flow, or an error's about one
	)
	e.emit(
		asm.StoreMem(asm.R10, area+keyLoPort, port, asm.Half),
		asm.StoreMem(asm.R10, area+keyHiPort, port, asm.Half),
	)
	e.label(done)
}

// labelAfter is the label of what follows label l: a name derived from it.
func (e *emitter) labelAfter(l string) string { return l + ".then" }

// emitAliasKey builds at natKeyArea the key of the flow's translated
// tuple: the flow's key (ctKeyArea) with the entry's rewritten end
// (slotCTNAT, slotCTNATAddr) translated, reordered. r9 ends 1 when the
// translated end is its Lo endpoint, else 0. It clobbers r1-r5.
func emitAliasKey(e *emitter) {
	e.at("nat: the translated tuple's key")
	for off := int16(0); off < conntrack.KeySize; off += 4 {
		e.emit(load(asm.R1, ctKeyArea+off), store(natKeyArea+off, asm.R1))
	}
	e.emit(
		load(asm.R5, slotCTNAT),
		asm.Mov.Reg32(asm.R4, asm.R5),
		asm.RSh.Imm32(asm.R4, 16),
		asm.RSh.Imm32(asm.R5, 8),
		asm.And.Imm32(asm.R5, 1),
		asm.Mov.Reg(asm.R9, asm.R5),
	)
	emitSubstitute(e, natKeyArea, asm.R5, load(asm.R1, slotCTNATAddr), asm.R4)
	emitOrderArea(e, natKeyArea, e.newLabel("nat.ordered"), e.newLabel("nat.swap"), func() { e.emit(asm.Xor.Imm32(asm.R9, 1)) })
}

// emitAliasLive jumps to live when the NAT map holds a live alias of the
// key at natKeyArea. It clobbers r0-r5.
func emitAliasLive(e *emitter, alias, live string) {
	free := e.newLabel("nat.alias_free")
	e.emit(
		asm.LoadMapPtr(asm.R1, 0).WithReference(alias),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(natKeyArea)),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, free),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
	)
	loadNow(e, asm.R2, asm.R3)
	e.emit(asm.JLT.Reg(asm.R2, asm.R1, live))
	e.label(free)
}

// emitNATDecide emits labelNATDecide: the translation of a passed or
// redirected new IPv4 flow, by the precedence of the interface's role.
// Established flows keep the translation the tracker found; other packets
// are not translated.
func emitNATDecide(e *emitter, prog *Program) {
	n := prog.NAT
	e.label(labelNATDecide)
	e.at("nat: is the packet a new IPv4 flow")
	e.emit(
		store(slotNATVerdict, rVerdict),
		load(asm.R1, slotFamily),
		asm.JNE.Imm32(asm.R1, 4, labelCommit),
		load(asm.R1, slotFragment),
		asm.JEq.Imm32(asm.R1, int32(policy.FragLater), "nat.later"),
		load(asm.R1, slotCTKind),
		asm.JEq.Imm32(asm.R1, int32(conntrack.KindICMPError), "nat.error"),
		load(asm.R1, slotNATRewrite),
		asm.JNE.Imm32(asm.R1, absent, labelCommit),
		load(asm.R1, slotCTStatus),
		asm.JNE.Imm32(asm.R1, statusBit(conntrack.StatusNew), labelCommit),
		// A new packet of a live translated entry (a reopening TCP
		// segment the interface does not translate) keeps its
		// translation: decided once.
		load(asm.R1, slotCTNAT),
		asm.And.Imm32(asm.R1, 0xff),
		asm.JNE.Imm32(asm.R1, 0, labelCommit),
	)
	fixed := e.newLabel("nat.fixed")
	switch n.Role {
	case policy.NATOutside:
		for _, f := range n.Block.Forwards {
			skip := e.newLabel("nat.forward_next")
			e.at("nat %q: forward %q", n.Block.Name, f.Name)
			e.emit(
				load(asm.R1, slotProto),
				asm.JNE.Imm32(asm.R1, int32(f.Proto), skip),
				load(asm.R1, slotDstAddr),
				asm.JNE.Imm32(asm.R1, word(f.Dst), skip),
				load(asm.R1, slotDstPort),
				asm.JLT.Imm32(asm.R1, int32(f.DstPorts.Lo), skip),
				asm.JGT.Imm32(asm.R1, int32(f.DstPorts.Hi), skip),
			)
			if f.ToPort != 0 {
				e.emit(asm.Mov.Imm32(asm.R1, int32(f.ToPort)))
			}
			emitSetTranslation(e, conntrack.NATDestination, word(f.To), fixed)
			e.label(skip)
		}
		for _, s := range n.Block.Statics {
			skip := e.newLabel("nat.static_next")
			e.at("nat %q: static inbound to %s", n.Block.Name, s.Outside)
			e.emit(load(asm.R1, slotDstAddr), asm.JNE.Imm32(asm.R1, word(s.Outside), skip))
			emitKeyPort(e, asm.R1, false)
			emitSetTranslation(e, conntrack.NATDestination, word(s.Inside), fixed)
			e.label(skip)
		}
	case policy.NATInside:
		for _, s := range n.Block.Statics {
			skip := e.newLabel("nat.static_next")
			e.at("nat %q: static outbound from %s", n.Block.Name, s.Inside)
			e.emit(load(asm.R1, slotSrcAddr), asm.JNE.Imm32(asm.R1, word(s.Inside), skip))
			emitKeyPort(e, asm.R1, true)
			emitSetTranslation(e, conntrack.NATSource, word(s.Outside), fixed)
			e.label(skip)
		}
		for i, m := range n.Block.Masquerades {
			emitMasquerade(e, n, i, m, fixed)
		}
	}
	e.at("nat: no translation")
	e.emit(asm.Ja.Label(labelCommit))

	e.label(fixed)
	e.at("nat: a fixed translation whose translated tuple is in use is dropped")
	emitAliasKey(e)
	emitAliasLive(e, n.Alias.Name, "nat.exhausted")
	e.emit(asm.Ja.Label(labelCommit))
	emitLaterFragment(e, n)
	e.label("nat.error")
	e.at("nat: an ICMP error about a translated flow keeps the rewrite of the packet it carries")
	e.emit(asm.Ja.Label(labelCommit))
	e.label("nat.exhausted")
	e.at("nat: no translated tuple free: drop, nat-exhausted slot %d", n.ExhaustedSlot)
	e.emit(
		storeImm(slotKey, int32(n.ExhaustedSlot)),
		storeImm(slotNATRewrite, absent),
		asm.Mov.Imm32(asm.R1, int32(artifact.ActionDrop)),
		store(slotNATVerdict, asm.R1),
		asm.Ja.Label(labelNATDone),
	)
}

// emitKeyPort loads into r the packet's source (src) or destination port
// as its key has it: a TCP or UDP port, an echo's identifier, 0.
func emitKeyPort(e *emitter, r asm.Register, src bool) {
	lo, done := e.newLabel("nat.port_lo"), e.newLabel("nat.port")
	want := int32(ctSrcIsLo)
	if !src {
		want = ctSrcIsHi
	}
	e.emit(
		load(r, slotCTOrder),
		asm.JEq.Imm32(r, want, lo),
		asm.LoadMem(r, asm.R10, ctKeyArea+keyHiPort, asm.Half),
		asm.Ja.Label(done),
	)
	e.label(lo)
	e.emit(asm.LoadMem(r, asm.R10, ctKeyArea+keyLoPort, asm.Half))
	e.label(done)
}

// emitSetTranslation records a new flow's translation of kind k to addr
// and the port in r1: the packet's rewrite and the entry's fields, the
// rewritten end being the source for NATSource, else the destination. It
// jumps to next.
func emitSetTranslation(e *emitter, k conntrack.NATKind, addr int32, next string) {
	which, wantLo := int32(natRewriteDestination), int32(ctSrcIsHi)
	if k == conntrack.NATSource {
		which, wantLo = natRewriteSource, ctSrcIsLo
	}
	isLo, done := e.newLabel("nat.end_lo"), e.newLabel("nat.set")
	e.emit(
		asm.Mov.Reg32(asm.R2, asm.R1),
		asm.Or.Imm32(asm.R2, which<<16),
		store(slotNATRewrite, asm.R2),
		asm.Mov.Imm32(asm.R2, addr),
		store(slotNATAddr, asm.R2),
		store(slotCTNATAddr, asm.R2),
		asm.LSh.Imm32(asm.R1, 16),
		asm.Or.Imm32(asm.R1, int32(k)),
		load(asm.R2, slotCTOrder),
		asm.JEq.Imm32(asm.R2, wantLo, isLo),
		asm.Ja.Label(done),
	)
	e.label(isLo)
	e.emit(asm.Or.Imm32(asm.R1, 1<<8))
	e.label(done)
	e.emit(store(slotCTNAT, asm.R1), asm.Ja.Label(next))
}

// emitMasquerade emits masquerade block i: a new flow from its src gets
// its to and a port by nat.Allocate; other protocols keep port 0, and
// have only the fixed translation's check.
func emitMasquerade(e *emitter, n *NATPart, i int, m policy.Masquerade, fixed string) {
	e.at("nat %q: masquerade %d", n.Block.Name, i)
	match, skip := e.newLabel("nat.masq"), e.newLabel("nat.masq_next")
	for _, p := range m.Src {
		if p.Bits() == 0 {
			e.emit(asm.Ja.Label(match))
			break
		}
		mask := rawMask(p.Bits())
		e.emit(
			load(asm.R1, slotSrcAddr),
			asm.And.Imm32(asm.R1, int32(mask)),
			asm.JEq.Imm32(asm.R1, int32(uint32(word(p.Addr()))&mask), match),
		)
	}
	e.emit(asm.Ja.Label(skip))
	e.label(match)
	lo, hi := uint32(m.Ports.Lo), uint32(m.Ports.Hi)
	size := hi - lo + 1
	ported, hash, start := e.newLabel("nat.masq_ports"), e.newLabel("nat.masq_hash"), e.newLabel("nat.masq_start")
	e.emit(
		load(asm.R1, slotCTKind),
		asm.JNE.Imm32(asm.R1, int32(conntrack.KindOther), ported),
	)
	unknownZero(e, asm.R1)
	emitSetTranslation(e, conntrack.NATSource, word(m.To), fixed)

	e.label(ported)
	e.at("nat %q: masquerade %d: the first port (nat.Allocate)", n.Block.Name, i)
	emitKeyPort(e, asm.R8, true)
	e.emit(
		asm.JLT.Imm32(asm.R8, int32(lo), hash),
		asm.JGT.Imm32(asm.R8, int32(hi), hash),
		asm.Mov.Reg32(asm.R1, asm.R8),
		asm.Ja.Label(start),
	)
	e.label(hash)
	emitPortHash(e, n)
	e.emit(
		asm.Mod.Imm32(asm.R1, int32(size)),
		asm.Add.Imm32(asm.R1, int32(lo)),
	)
	e.label(start)
	probe := e.newLabel("nat.masq_probe")
	emitSetTranslation(e, conntrack.NATSource, word(m.To), probe)
	e.label(probe)
	// Each probe reloads its candidate from slotNATRewrite, so every path
	// reaches the next probe, and the commit, in one verifier state.
	for k := uint32(0); k < min(size, nat.MaxProbes); k++ {
		e.at("nat %q: masquerade %d: probe %d", n.Block.Name, i, k)
		next := e.newLabel("nat.masq_taken")
		e.emit(
			load(asm.R8, slotNATRewrite),
			asm.And.Imm32(asm.R8, 0xffff),
			load(asm.R1, slotProto),
			asm.Mov.Reg32(asm.R2, asm.R8),
			asm.LSh.Imm32(asm.R2, 16),
			asm.Or.Reg32(asm.R1, asm.R2),
			store(slotNATScratch, asm.R1),
			asm.LoadMapPtr(asm.R1, 0).WithReference(n.Reserved.Name),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, int32(slotNATScratch)),
			asm.FnMapLookupElem.Call(),
			asm.JNE.Imm(asm.R0, 0, next),
			load(asm.R1, slotCTNAT),
			asm.And.Imm32(asm.R1, 0xffff),
			asm.LSh.Imm32(asm.R8, 16),
			asm.Or.Reg32(asm.R1, asm.R8),
			store(slotCTNAT, asm.R1),
		)
		emitAliasKey(e)
		emitAliasLive(e, n.Alias.Name, next)
		e.emit(asm.Ja.Label(labelCommit))
		e.label(next)
		wrapped := e.newLabel("nat.masq_wrapped")
		e.emit(
			load(asm.R8, slotNATRewrite),
			asm.And.Imm32(asm.R8, 0xffff),
			asm.Add.Imm32(asm.R8, 1),
			asm.JLE.Imm32(asm.R8, int32(hi), wrapped),
			asm.Mov.Imm32(asm.R8, int32(lo)),
		)
		e.label(wrapped)
		e.emit(
			asm.Or.Imm32(asm.R8, natRewriteSource<<16),
			store(slotNATRewrite, asm.R8),
		)
	}
	e.emit(asm.Ja.Label("nat.exhausted"))
	e.label(skip)
}

// FNV-1a, 32 bits (nat.Hash).
const (
	fnvOffset = 2166136261 - 1<<32 // as an int32
	fnvPrime  = 16777619
)

// emitPortHash leaves in r1 nat.Hash of the packet's flow with the
// table's seed: FNV-1a over seed (little-endian), source and destination
// address (network order), source port (r8) and destination port
// (big-endian), protocol. It clobbers r0-r5.
func emitPortHash(e *emitter, n *NATPart) {
	e.at("nat: the port hash (nat.Hash), seeded by the settings map")
	seeded := e.newLabel("nat.seeded")
	unknownZero(e, asm.R1)
	e.emit(
		store(slotNATScratch, asm.R1),
		asm.LoadMapPtr(asm.R1, 0).WithReference(n.Settings.Name),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(slotNATScratch)),
		asm.FnMapLookupElem.Call(),
		asm.Mov.Imm32(asm.R3, 0),
		asm.JEq.Imm(asm.R0, 0, seeded),
		asm.LoadMem(asm.R3, asm.R0, 0, asm.Word),
	)
	e.label(seeded)
	e.emit(asm.Mov.Imm32(asm.R1, fnvOffset))
	mix := func(src asm.Register, shift int32) {
		e.emit(asm.Mov.Reg32(asm.R2, src))
		if shift != 0 {
			e.emit(asm.RSh.Imm32(asm.R2, shift))
		}
		e.emit(
			asm.And.Imm32(asm.R2, 0xff),
			asm.Xor.Reg32(asm.R1, asm.R2),
			asm.Mul.Imm32(asm.R1, fnvPrime),
		)
	}
	for b := int32(0); b < 4; b++ {
		mix(asm.R3, 8*b)
	}
	for _, s := range []int16{slotSrcAddr, slotDstAddr} {
		e.emit(load(asm.R4, s))
		for b := int32(0); b < 4; b++ {
			mix(asm.R4, 8*b)
		}
	}
	mix(asm.R8, 8)
	mix(asm.R8, 0)
	e.emit(asm.Mov.Reg(asm.R5, asm.R1))
	emitKeyPort(e, asm.R4, false)
	e.emit(asm.Mov.Reg(asm.R1, asm.R5))
	mix(asm.R4, 8)
	mix(asm.R4, 0)
	e.emit(load(asm.R4, slotProto))
	mix(asm.R4, 0)
}

// emitEntryNAT writes bytes 16-31 of the entry the commit places: r3 its
// state and flags, then its translation (slotCTNAT, slotCTNATAddr).
func emitEntryNAT(e *emitter) {
	e.emit(
		load(asm.R4, slotCTNAT),
		asm.LSh.Imm32(asm.R4, 16),
		asm.Or.Reg32(asm.R3, asm.R4),
		asm.StoreMem(asm.R10, ctValueArea+entState, asm.R3, asm.Word),
		load(asm.R4, slotCTNAT),
		asm.RSh.Imm32(asm.R4, 16),
		asm.StoreMem(asm.R10, ctValueArea+entState+4, asm.R4, asm.Word),
		load(asm.R4, slotCTNATAddr),
		asm.StoreMem(asm.R10, ctValueArea+entState+8, asm.R4, asm.Word),
		asm.StoreImm(asm.R10, ctValueArea+entState+12, 0, asm.Word),
	)
}

// emitNATAlias emits labelNATAlias, after the commit: the alias of a
// translated flow the commit wrote, keyed by its translated tuple, with
// the entry's expiry and the endpoint the translated end stands for.
func emitNATAlias(e *emitter, prog *Program) {
	e.label(labelNATAlias)
	e.at("nat: did the commit write a translated flow")
	write := e.newLabel("nat.alias_write")
	e.emit(
		load(asm.R1, slotCTStatus),
		asm.JEq.Imm32(asm.R1, statusBit(conntrack.StatusNew), write),
		asm.JNE.Imm32(asm.R1, statusBit(conntrack.StatusEstablished), labelNATRewrite),
	)
	e.label(write)
	e.emit(
		load(asm.R1, slotCTNAT),
		asm.And.Imm32(asm.R1, 0xff),
		asm.JEq.Imm32(asm.R1, 0, labelNATRewrite),
	)
	emitAliasKey(e)
	e.at("nat: the alias (struct nat_alias): the entry's expiry, the original endpoint")
	lo, val := e.newLabel("nat.orig_lo"), e.newLabel("nat.alias_value")
	e.emit(
		load(asm.R5, slotCTNAT),
		asm.RSh.Imm32(asm.R5, 8),
		asm.And.Imm32(asm.R5, 1),
		asm.JEq.Imm32(asm.R5, 1, lo),
		load(asm.R2, ctKeyArea+keyHiAddr),
		asm.LoadMem(asm.R3, asm.R10, ctKeyArea+keyHiPort, asm.Half),
		asm.Ja.Label(val),
	)
	e.label(lo)
	e.emit(
		load(asm.R2, ctKeyArea+keyLoAddr),
		asm.LoadMem(asm.R3, asm.R10, ctKeyArea+keyLoPort, asm.Half),
	)
	e.label(val)
	e.emit(
		store(ctValueArea+8, asm.R2),
		load(asm.R1, slotCTNAT),
		asm.And.Imm32(asm.R1, 0xff),
		asm.LSh.Imm32(asm.R1, 16),
		asm.Or.Reg32(asm.R3, asm.R1),
		asm.LSh.Imm32(asm.R9, 24),
		asm.Or.Reg32(asm.R3, asm.R9),
		store(ctValueArea+12, asm.R3),
	)
	emitAliasInPlace(e, prog.NAT.Alias.Name)
	e.emit(
		asm.LoadMapPtr(asm.R1, 0).WithReference(prog.NAT.Alias.Name),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(natKeyArea)),
		asm.Mov.Reg(asm.R3, asm.R10),
		asm.Add.Imm(asm.R3, int32(ctValueArea)),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
	)
}

// emitAliasInPlace refreshes the alias of an established flow in place:
// it writes the value built at ctValueArea through the pointer a lookup
// of the translated tuple returns, the expiry last, and goes on to
// labelNATRewrite. A new flow's alias, and one the map does not hold, fall
// through to the update: an update of a key the map holds takes a fresh
// element and frees the old one, which on every packet costs more than
// the lookup and two stores (docs/nat.md "Both die together").
func emitAliasInPlace(e *emitter, alias string) {
	upd := e.newLabel("nat.alias_update")
	e.emit(
		load(asm.R1, slotCTStatus),
		asm.JNE.Imm32(asm.R1, statusBit(conntrack.StatusEstablished), upd),
		asm.LoadMapPtr(asm.R1, 0).WithReference(alias),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(natKeyArea)),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, upd),
		asm.LoadMem(asm.R1, asm.R10, ctValueArea+8, asm.DWord),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R10, ctValueArea, asm.DWord),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Ja.Label(labelNATRewrite),
	)
	e.label(upd)
}

// emitNATRewrite emits labelNATRewrite: the packet's rewritten end gets
// its new address and port, and the IPv4 header's and layer 4's checksums
// are updated incrementally (RFC 1624): TCP and UDP for the pseudo-header
// and the port (a UDP checksum of 0 stays 0, a computed 0 is 0xffff), an
// echo's for its identifier.
func emitNATRewrite(e *emitter, n *NATPart) {
	e.label(labelNATRewrite)
	e.at("nat: rewrite the packet")
	untranslated := e.newLabel("nat.untranslated")
	e.emit(
		asm.Mov.Imm32(asm.R1, partialChecked), // until emitPartialCheck says otherwise
		store(slotPartial, asm.R1),
		load(asm.R1, slotNATRewrite),
		asm.JEq.Imm32(asm.R1, absent, untranslated),
	)
	e.emit(
		load(asm.R1, slotCTKind),
		asm.JEq.Imm32(asm.R1, int32(conntrack.KindICMPError), labelNATError),
	)
	emitFragRecord(e, n)
	emitPartialCheck(e)
	emitIPHeader(e, labelNATForward)
	e.emit(ihlBytes(asm.R1)...)
	e.emit(asm.Add.Reg(rL3, asm.R1)) // layer-4 offset
	e.at("nat: the address and the IPv4 header checksum")
	e.emit(load(asm.R5, slotNATAddr))
	emitSwapEnd(e, asm.R3, 12, 16, asm.Word)
	e.emit(store(slotNATScratch, asm.R4)) // the old address
	emitCsumUpdate(e, asm.R3, 10, func() { csumReplace(e, asm.R4, asm.R5, true) }, false)

	e.at("nat: layer 4 (a later fragment has none)")
	tcp, udp, icmp := e.newLabel("nat.rewrite_tcp"), e.newLabel("nat.rewrite_udp"), e.newLabel("nat.rewrite_icmp")
	e.emit(
		load(asm.R1, slotFragment),
		asm.JEq.Imm32(asm.R1, int32(policy.FragLater), labelNATForward),
		load(asm.R1, slotProto),
		asm.JEq.Imm32(asm.R1, wire.ProtoTCP, tcp),
		asm.JEq.Imm32(asm.R1, wire.ProtoUDP, udp),
		asm.JEq.Imm32(asm.R1, wire.ProtoICMP, icmp),
		asm.Ja.Label(labelNATForward),
	)
	l4 := func(n int32) {
		e.emit(
			asm.JGT.Imm(rL3, 22+60, labelNATForward),
			asm.Mov.Reg(asm.R3, rData),
			asm.Add.Reg(asm.R3, rL3),
		)
		guard(e, asm.R3, n, asm.R4, labelNATForward)
	}
	// port loads the old port (r4) and stores the new one (r5), raw.
	port := func() {
		e.emit(natPortBE(asm.R5)...)
		emitSwapEnd(e, asm.R3, 0, 2, asm.Half)
	}
	// portAndPseudo is a TCP or UDP checksum's change: the port, and the
	// pseudo-header's address.
	portAndPseudo := func() {
		csumReplace(e, asm.R4, asm.R5, false)
		e.emit(load(asm.R4, slotNATScratch), load(asm.R5, slotNATAddr))
		csumReplace(e, asm.R4, asm.R5, true)
	}
	e.label(tcp)
	e.at("nat: the TCP port and checksum")
	l4(20)
	port()
	emitPartialUpdate(e, 16)
	emitCsumUpdate(e, asm.R3, 16, portAndPseudo, false)
	e.emit(asm.Ja.Label(labelNATForward))

	e.label(udp)
	e.at("nat: the UDP port and checksum (0: none)")
	l4(8)
	port()
	e.emit(
		asm.LoadMem(asm.R1, asm.R3, 6, asm.Half),
		asm.JEq.Imm32(asm.R1, 0, labelNATForward),
	)
	emitPartialUpdate(e, 6)
	emitCsumUpdate(e, asm.R3, 6, portAndPseudo, true)
	e.emit(asm.Ja.Label(labelNATForward))

	e.label(icmp)
	e.at("nat: the echo identifier and the ICMP checksum")
	l4(8)
	e.emit(natPortBE(asm.R5)...)
	e.emit(
		asm.LoadMem(asm.R4, asm.R3, 4, asm.Half),
		// The same identifier is no rewrite: updating for it would turn
		// a checksum of 0xffff (an all-zero echo) into 0, which does not
		// verify.
		asm.JEq.Reg(asm.R4, asm.R5, labelNATForward),
		asm.StoreMem(asm.R3, 4, asm.R5, asm.Half),
	)
	// A computed 0 is written 0xffff, as UDP's: the two verify alike,
	// except for a message of all zeros (an echo reply whose identifier
	// became 0), which only 0xffff does.
	emitCsumUpdate(e, asm.R3, 2, func() { csumReplace(e, asm.R4, asm.R5, false) }, true)
	e.emit(asm.Ja.Label(labelNATForward))

	emitNATError(e)

	e.label(untranslated)
	e.at("nat: an untranslated first fragment on a NAT address: its later fragments pass too")
	record := e.newLabel("nat.frag_untranslated")
	e.emit(
		load(asm.R1, slotFragment),
		asm.JNE.Imm32(asm.R1, int32(policy.FragFirst), labelNATForward),
	)
	emitNATAddressMatch(e, n, record)
	e.emit(asm.Ja.Label(labelNATForward))
	e.label(record)
	emitFragRecord(e, n)
	e.emit(asm.Ja.Label(labelNATForward))
}

// emitCsumUpdate updates the checksum at ptr+off by RFC 1624's
// HC' = ~(~HC + ~m + m'): add emits the additions to r0; nonzero makes a
// result of 0 0xffff (UDP). It clobbers r0 and r1.
func emitCsumUpdate(e *emitter, ptr asm.Register, off int16, add func(), nonzero bool) {
	e.emit(
		asm.LoadMem(asm.R0, ptr, off, asm.Half),
		asm.Xor.Imm(asm.R0, 0xffff),
	)
	add()
	for range 2 {
		e.emit(
			asm.Mov.Reg(asm.R1, asm.R0),
			asm.RSh.Imm(asm.R1, 16),
			asm.And.Imm(asm.R0, 0xffff),
			asm.Add.Reg(asm.R0, asm.R1),
		)
	}
	e.emit(asm.Xor.Imm(asm.R0, 0xffff), asm.And.Imm(asm.R0, 0xffff))
	if nonzero {
		ok := e.newLabel("nat.csum_nonzero")
		e.emit(asm.JNE.Imm(asm.R0, 0, ok), asm.Mov.Imm(asm.R0, 0xffff))
		e.label(ok)
	}
	e.emit(asm.StoreMem(ptr, off, asm.R0, asm.Half))
}

// csumReplace adds to r0 what replacing old by new (16 or 32 bits, by
// wide) changes in a checksum: ~old + new, using r1.
func csumReplace(e *emitter, old, new asm.Register, wide bool) {
	add := csumAdd16
	if wide {
		add = csumAdd32
	}
	add(e, old, true)
	add(e, new, false)
}

// ihlBytes sets r to the length of the IPv4 header at r3 (IHL × 4).
func ihlBytes(r asm.Register) []asm.Instruction {
	return []asm.Instruction{
		asm.LoadMem(r, asm.R3, 0, asm.Byte),
		asm.And.Imm(r, 0x0f),
		asm.LSh.Imm(r, 2),
	}
}

// natPortBE sets r to the rewrite's new port in network order.
func natPortBE(r asm.Register) []asm.Instruction {
	return []asm.Instruction{
		load(r, slotNATRewrite),
		asm.HostTo(asm.BE, r, asm.Half),
		asm.And.Imm(r, 0xffff),
	}
}

// emitSwapEnd writes r5 over the rewritten end of the header at ptr: the
// field at srcOff when the rewrite is of the source, at dstOff when of
// the destination, of the given size; the old value is left in r4. It
// clobbers r1.
func emitSwapEnd(e *emitter, ptr asm.Register, srcOff, dstOff int16, size asm.Size) {
	d, done := e.newLabel("nat.swap_dst"), e.newLabel("nat.swap_done")
	e.emit(
		load(asm.R1, slotNATRewrite),
		asm.RSh.Imm32(asm.R1, 16),
		asm.JNE.Imm32(asm.R1, natRewriteSource, d),
		asm.LoadMem(asm.R4, ptr, srcOff, size),
		asm.StoreMem(ptr, srcOff, asm.R5, size),
		asm.Ja.Label(done),
	)
	e.label(d)
	e.emit(
		asm.LoadMem(asm.R4, ptr, dstOff, size),
		asm.StoreMem(ptr, dstOff, asm.R5, size),
	)
	e.label(done)
}

// csumAdd32 adds the two 16-bit words of r (complemented: neg) to r0,
// using r1.
func csumAdd32(e *emitter, r asm.Register, neg bool) {
	e.emit(asm.Mov.Reg32(asm.R1, r))
	if neg {
		e.emit(asm.Xor.Imm32(asm.R1, -1))
	}
	e.emit(
		asm.And.Imm(asm.R1, 0xffff),
		asm.Add.Reg(asm.R0, asm.R1),
		asm.Mov.Reg32(asm.R1, r),
	)
	if neg {
		e.emit(asm.Xor.Imm32(asm.R1, -1))
	}
	e.emit(
		asm.RSh.Imm32(asm.R1, 16),
		asm.Add.Reg(asm.R0, asm.R1),
	)
}

// csumAdd16 adds the 16-bit word r (complemented: neg) to r0, using r1.
func csumAdd16(e *emitter, r asm.Register, neg bool) {
	e.emit(asm.Mov.Reg32(asm.R1, r))
	if neg {
		e.emit(asm.Xor.Imm32(asm.R1, -1))
	}
	e.emit(
		asm.And.Imm(asm.R1, 0xffff),
		asm.Add.Reg(asm.R0, asm.R1),
	)
}

// struct bpf_fib_lookup's fields (include/uapi/linux/bpf.h).
const (
	fibFamily  = 0
	fibL4Proto = 1
	fibTotLen  = 6
	fibIfindex = 8
	fibSrc     = 16
	fibDst     = 32
	fibSMAC    = 52
	fibDMAC    = 58
	fibSize    = 64
	afInet     = 2
)

// emitNATForward emits labelNATForward: a translated packet the policy
// passed is forwarded by XDP when the FIB resolves its new destination to
// a neighbour: new MAC addresses, TTL one lower (and its checksum),
// bpf_redirect to the route's device; anything else (a redirect verdict,
// a VLAN tag, TTL 1 or less, a partial checksum, any lookup result but
// success) goes on as decided, to the stack. Then the verdict is counted.
func emitNATForward(e *emitter) {
	e.label(labelNATForward)
	e.at("nat: forward a translated packet by the FIB")
	e.emit(
		load(asm.R1, slotNATVerdict),
		asm.JNE.Imm32(asm.R1, int32(artifact.ActionPass), labelNATDone),
		load(asm.R1, slotNATRewrite),
		asm.JEq.Imm32(asm.R1, absent, labelNATDone),
		load(asm.R1, slotVLAN),
		asm.JNE.Imm32(asm.R1, absent, labelNATDone),
		load(asm.R1, slotTTL),
		asm.JLE.Imm32(asm.R1, 1, labelNATDone),
		// A partial checksum is completed by the device the stack sends
		// the packet out of; a redirected frame carries no offload state
		// and would leave unfinished.
		load(asm.R1, slotPartial),
		asm.JEq.Imm32(asm.R1, 1, labelNATDone),
	)
	// The addresses are the header's as rewritten: a packet's own, or
	// an ICMP error's outer ones (which its translation rewrites by the
	// embedded packet's, not by slotNATRewrite's end).
	e.emit(
		asm.LoadMem(rData, rCtx, 0, asm.Word),
		asm.LoadMem(rDataEnd, rCtx, 4, asm.Word),
	)
	guard(e, rData, 14+20, asm.R1, labelNATDone)
	for off := int16(0); off < fibSize; off += 4 {
		e.emit(asm.StoreImm(asm.R10, fibArea+off, 0, asm.Word))
	}
	e.emit(
		asm.StoreImm(asm.R10, fibArea+fibFamily, afInet, asm.Byte),
		load(asm.R1, slotProto),
		asm.StoreMem(asm.R10, fibArea+fibL4Proto, asm.R1, asm.Byte),
		load(asm.R1, slotLength),
		asm.StoreMem(asm.R10, fibArea+fibTotLen, asm.R1, asm.Half),
		asm.LoadMem(asm.R1, rCtx, 12, asm.Word), // ingress_ifindex
		asm.StoreMem(asm.R10, fibArea+fibIfindex, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, rData, 14+12, asm.Word),
		asm.StoreMem(asm.R10, fibArea+fibSrc, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, rData, 14+16, asm.Word),
		asm.StoreMem(asm.R10, fibArea+fibDst, asm.R1, asm.Word),
		asm.Mov.Reg(asm.R1, rCtx),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(fibArea)),
		asm.Mov.Imm(asm.R3, fibSize),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnFibLookup.Call(),
		asm.JNE.Imm(asm.R0, 0, labelNATDone), // BPF_FIB_LKUP_RET_SUCCESS
	)
	e.at("nat: the next hop's MAC addresses, TTL one lower")
	for i := int16(0); i < 6; i += 2 {
		e.emit(
			asm.LoadMem(asm.R1, asm.R10, fibArea+fibDMAC+i, asm.Half),
			asm.StoreMem(rData, i, asm.R1, asm.Half),
			asm.LoadMem(asm.R1, asm.R10, fibArea+fibSMAC+i, asm.Half),
			asm.StoreMem(rData, 6+i, asm.R1, asm.Half),
		)
	}
	e.emit(
		asm.LoadMem(asm.R4, rData, 14+8, asm.Half), // ttl | proto<<8, raw
		asm.Mov.Reg(asm.R5, asm.R4),
		asm.Sub.Imm(asm.R5, 1),
		asm.StoreMem(rData, 14+8, asm.R5, asm.Half),
	)
	emitCsumUpdate(e, rData, 14+10, func() { csumReplace(e, asm.R4, asm.R5, false) }, false)
	e.emit(
		asm.LoadMem(asm.R1, asm.R10, fibArea+fibIfindex, asm.Word),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Mov.Imm32(asm.R1, natForwarded),
		store(slotNATVerdict, asm.R1),
	)
	e.label(labelNATDone)
	e.at("nat: count the decision")
	e.emit(load(rVerdict, slotNATVerdict), asm.Ja.Label(labelCount))
}

// emitIPHeader points r3 at the IPv4 header, rL3 holding its offset and
// rData, rDataEnd the frame, its fixed 20 bytes readable; fail is where a
// frame too short goes (none is: the parser read it).
func emitIPHeader(e *emitter, fail string) {
	e.emit(
		asm.LoadMem(rData, rCtx, 0, asm.Word),
		asm.LoadMem(rDataEnd, rCtx, 4, asm.Word),
		asm.Mov.Imm(rL3, 14),
		load(asm.R1, slotVLAN),
	)
	one, l3 := e.newLabel("nat.one_tag"), e.newLabel("nat.l3")
	e.emit(
		asm.JEq.Imm32(asm.R1, absent, l3),
		asm.Add.Imm(rL3, 4),
		load(asm.R1, slotInnerVLAN),
		asm.JEq.Imm32(asm.R1, absent, one),
		asm.Add.Imm(rL3, 4),
	)
	e.label(one)
	e.label(l3)
	e.emit(asm.Mov.Reg(asm.R3, rData), asm.Add.Reg(asm.R3, rL3))
	guard(e, asm.R3, 20, asm.R4, fail)
}

// emitFragKey writes at natKeyArea the fragment map's key of the packet
// as it arrived (struct nat_frag_key: source, destination, IP id in host
// order, protocol, pad); it jumps to fail if the header cannot be read.
func emitFragKey(e *emitter, fail string) {
	emitIPHeader(e, fail)
	e.emit(be16(asm.R2, asm.R3, 4)...)
	e.emit(
		load(asm.R1, slotSrcAddr),
		store(natKeyArea, asm.R1),
		load(asm.R1, slotDstAddr),
		store(natKeyArea+4, asm.R1),
		load(asm.R1, slotProto),
		asm.LSh.Imm32(asm.R1, 16),
		asm.Or.Reg32(asm.R1, asm.R2),
		store(natKeyArea+8, asm.R1),
	)
}

// emitFragRecord remembers a translated first fragment's rewrite of its
// address in the fragment map, for its later fragments.
func emitFragRecord(e *emitter, n *NATPart) {
	done := e.newLabel("nat.frag_recorded")
	e.at("nat: a first fragment's translation, for its later fragments")
	e.emit(
		load(asm.R1, slotFragment),
		asm.JNE.Imm32(asm.R1, int32(policy.FragFirst), done),
	)
	emitFragKey(e, done)
	e.emit(
		load(asm.R1, slotNATAddr),
		store(natKeyArea+16, asm.R1),
		load(asm.R1, slotNATRewrite),
		asm.RSh.Imm32(asm.R1, 16),
		asm.JNE.Imm32(asm.R1, 0xffff, e.labelAfter(done)),
		asm.Mov.Imm32(asm.R1, 0), // absent: untranslated
	)
	e.label(e.labelAfter(done))
	e.emit(
		store(natKeyArea+20, asm.R1),
		asm.LoadMapPtr(asm.R1, 0).WithReference(n.Fragments.Name),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(natKeyArea)),
		asm.Mov.Reg(asm.R3, asm.R10),
		asm.Add.Imm(asm.R3, int32(natKeyArea+16)),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
	)
	e.label(done)
}

// emitLaterFragment emits "nat.later": a later fragment gets the address
// rewrite its first fragment got; without a record, one that an address
// of the nat block says may belong to a translated flow is dropped and
// counted on nat-fragment, others pass untranslated.
func emitLaterFragment(e *emitter, n *NATPart) {
	e.label("nat.later")
	e.at("nat: a later fragment follows its first")
	e.emit(asm.Mov.Reg(asm.R9, rVerdict))
	emitFragKey(e, labelCommit)
	unrecorded := e.newLabel("nat.later_unrecorded")
	e.emit(
		asm.Mov.Reg(rVerdict, asm.R9),
		asm.LoadMapPtr(asm.R1, 0).WithReference(n.Fragments.Name),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(natKeyArea)),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, unrecorded),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		store(slotNATAddr, asm.R1),
		asm.LoadMem(asm.R1, asm.R0, 4, asm.Byte),
		asm.JEq.Imm32(asm.R1, 0, labelCommit), // its first was not translated
		asm.LSh.Imm32(asm.R1, 16),
		store(slotNATRewrite, asm.R1),
		asm.Ja.Label(labelCommit),
	)
	e.label(unrecorded)
	e.at("nat: a later fragment without its first: does it need translation")
	drop := e.newLabel("nat.later_drop")
	emitNATAddressMatch(e, n, drop)
	e.emit(asm.Ja.Label(labelCommit))
	e.label(drop)
	e.at("nat: a later fragment of a translated flow without its first: drop, nat-fragment slot %d", n.FragmentSlot)
	e.emit(
		storeImm(slotKey, int32(n.FragmentSlot)),
		asm.Mov.Imm32(asm.R1, int32(artifact.ActionDrop)),
		store(slotNATVerdict, asm.R1),
		asm.Ja.Label(labelNATDone),
	)
}

// emitNATAddressMatch jumps to match when an address of the packet is one
// the nat block translates on this interface: on the outside a
// masquerade's to, a forward's dst or a static outside address as the
// destination; on the inside a masquerade's src, a forward's to or a
// static inside address as the source. It clobbers r1.
func emitNATAddressMatch(e *emitter, n *NATPart, match string) {
	var src, dst []netip.Addr
	b := n.Block
	switch n.Role {
	case policy.NATOutside:
		for _, m := range b.Masquerades {
			dst = append(dst, m.To)
		}
		for _, f := range b.Forwards {
			dst = append(dst, f.Dst)
		}
		for _, s := range b.Statics {
			dst = append(dst, s.Outside)
		}
	case policy.NATInside:
		for _, f := range b.Forwards {
			src = append(src, f.To)
		}
		for _, s := range b.Statics {
			src = append(src, s.Inside)
		}
		for _, m := range b.Masquerades {
			for _, p := range m.Src {
				mask := rawMask(p.Bits())
				e.emit(
					load(asm.R1, slotSrcAddr),
					asm.And.Imm32(asm.R1, int32(mask)),
					asm.JEq.Imm32(asm.R1, int32(uint32(word(p.Addr()))&mask), match),
				)
			}
		}
	}
	for _, a := range src {
		e.emit(load(asm.R1, slotSrcAddr), asm.JEq.Imm32(asm.R1, word(a), match))
	}
	for _, a := range dst {
		e.emit(load(asm.R1, slotDstAddr), asm.JEq.Imm32(asm.R1, word(a), match))
	}
}

// rawMask is the mask of an IPv4 prefix of bits bits in the byte order
// the parser loads addresses in.
func rawMask(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], uint32(0xffffffff)<<(32-bits))
	return binary.LittleEndian.Uint32(m[:])
}

// labelNATError rewrites an ICMP error about a translated flow.
const labelNATError = "nat.rewrite_error"

// Temporaries of emitNATError, in natKeyArea (dead by then).
const (
	errOldAddr  = natKeyArea      // the embedded end's address before
	errOldCsum  = natKeyArea + 4  // the embedded IPv4 checksum before
	errOldPort  = natKeyArea + 8  // the embedded port (raw) before
	errOldL4    = natKeyArea + 12 // the embedded UDP or echo checksum before
	errProto    = natKeyArea + 16 // the embedded protocol
	errL4Offset = natKeyArea + 20 // the embedded layer 4's offset
)

// emitNATError emits labelNATError: an ICMP error whose embedded packet
// belongs to a translated flow. The tracker's rewrite is the embedded
// packet's (its end, address and port, as the flow's packets are
// translated that way): the embedded address and port, its IPv4
// checksum, its UDP checksum when not 0 or its echo's; the outer ICMP
// checksum for all of that; and the outer header's opposite end (the
// error's destination for an embedded source, its source for an embedded
// destination) when it is the embedded end's old address, with the outer
// IPv4 checksum. A TCP checksum lies beyond the 8 bytes carried: left.
func emitNATError(e *emitter) {
	e.label(labelNATError)
	e.at("nat: an ICMP error: the packet it carries")
	emitICMPHeader(e)
	e.emit(
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.Add.Imm(asm.R3, 8), // the embedded IPv4 header
		asm.LoadMem(asm.R1, asm.R3, 9, asm.Byte),
		store(errProto, asm.R1),
		asm.LoadMem(asm.R1, asm.R3, 10, asm.Half),
		store(errOldCsum, asm.R1),
	)
	e.emit(ihlBytes(asm.R1)...)
	e.emit(
		asm.Add.Reg(asm.R1, rL3),
		asm.Add.Imm(asm.R1, 8),
		store(errL4Offset, asm.R1),
	)
	e.at("nat: an ICMP error: the embedded address and IPv4 checksum")
	e.emit(load(asm.R5, slotNATAddr))
	emitSwapEnd(e, asm.R3, 12, 16, asm.Word)
	e.emit(store(errOldAddr, asm.R4))
	emitCsumUpdate(e, asm.R3, 10, func() { csumReplace(e, asm.R4, asm.R5, true) }, false)

	e.at("nat: an ICMP error: the embedded port and its checksum")
	icmp, ported, outer := e.newLabel("nat.error_echo"), e.newLabel("nat.error_ports"), e.newLabel("nat.error_outer")
	e.emit(
		load(asm.R1, errL4Offset),
		asm.JGT.Imm(asm.R1, 22+60+8+60, labelNATForward),
		asm.Mov.Reg(asm.R3, rData),
		asm.Add.Reg(asm.R3, asm.R1),
	)
	guard(e, asm.R3, 8, asm.R4, labelNATForward)
	e.emit(natPortBE(asm.R5)...)
	e.emit(
		load(asm.R1, errProto),
		asm.JEq.Imm32(asm.R1, wire.ProtoICMP, icmp),
		asm.JEq.Imm32(asm.R1, wire.ProtoTCP, ported),
		asm.JNE.Imm32(asm.R1, wire.ProtoUDP, outer),
	)
	e.label(ported)
	emitSwapEnd(e, asm.R3, 0, 2, asm.Half)
	e.emit(
		store(errOldPort, asm.R4),
		asm.LoadMem(asm.R1, asm.R3, 6, asm.Half),
		store(errOldL4, asm.R1),
		load(asm.R1, errProto),
		asm.JNE.Imm32(asm.R1, wire.ProtoUDP, outer), // TCP: its checksum was not carried
		asm.LoadMem(asm.R1, asm.R3, 6, asm.Half),
		asm.JEq.Imm32(asm.R1, 0, outer),
	)
	emitCsumUpdate(e, asm.R3, 6, func() {
		csumReplace(e, asm.R4, asm.R5, false)
		e.emit(load(asm.R4, errOldAddr), load(asm.R5, slotNATAddr))
		csumReplace(e, asm.R4, asm.R5, true)
	}, true)
	e.emit(asm.Ja.Label(outer))

	e.label(icmp)
	e.emit(
		asm.LoadMem(asm.R4, asm.R3, 4, asm.Half),
		asm.StoreMem(asm.R3, 4, asm.R5, asm.Half),
		store(errOldPort, asm.R4),
		asm.LoadMem(asm.R1, asm.R3, 2, asm.Half),
		store(errOldL4, asm.R1),
	)
	emitCsumUpdate(e, asm.R3, 2, func() { csumReplace(e, asm.R4, asm.R5, false) }, false)

	e.label(outer)
	e.at("nat: an ICMP error: its own checksum, for every embedded word changed")
	emitICMPHeader(e)
	e.emit(
		load(asm.R1, errL4Offset),
		asm.JGT.Imm(asm.R1, 22+60+8+60, labelNATForward),
		asm.Mov.Reg(asm.R5, rData),
		asm.Add.Reg(asm.R5, asm.R1),
	)
	guard(e, asm.R5, 8, asm.R4, labelNATForward)
	noPort, sum := e.newLabel("nat.error_no_port"), e.newLabel("nat.error_sum")
	e.emit(asm.Mov.Reg(asm.R9, asm.R5)) // the embedded layer 4
	emitCsumUpdate(e, asm.R2, 2, func() {
		e.emit(load(asm.R4, errOldAddr), load(asm.R5, slotNATAddr))
		csumReplace(e, asm.R4, asm.R5, true)
		e.emit(load(asm.R4, errOldCsum), asm.LoadMem(asm.R5, asm.R2, 8+10, asm.Half))
		csumReplace(e, asm.R4, asm.R5, false)
		e.emit(
			load(asm.R4, errProto),
			asm.JEq.Imm32(asm.R4, wire.ProtoICMP, sum),
			asm.JEq.Imm32(asm.R4, wire.ProtoUDP, sum),
			asm.JNE.Imm32(asm.R4, wire.ProtoTCP, noPort),
		)
		e.label(sum)
		got := e.newLabel("nat.error_sum_port")
		e.emit(natPortBE(asm.R5)...)
		e.emit(load(asm.R4, errOldPort))
		csumReplace(e, asm.R4, asm.R5, false)
		e.emit(
			load(asm.R4, errProto),
			asm.JEq.Imm32(asm.R4, wire.ProtoTCP, noPort),
			asm.Mov.Reg(asm.R5, asm.R9),
			asm.JEq.Imm32(asm.R4, wire.ProtoICMP, got),
			asm.LoadMem(asm.R5, asm.R5, 6, asm.Half),
			asm.Ja.Label(e.labelAfter(got)),
		)
		e.label(got)
		e.emit(asm.LoadMem(asm.R5, asm.R5, 2, asm.Half))
		e.label(e.labelAfter(got))
		e.emit(load(asm.R4, errOldL4))
		csumReplace(e, asm.R4, asm.R5, false)
		e.label(noPort)
	}, false)

	e.at("nat: an ICMP error: the outer end that was the embedded one's, and the IPv4 checksum")
	odst, oaddr := e.newLabel("nat.error_outer_dst"), e.newLabel("nat.error_outer_addr")
	emitIPHeader(e, labelNATForward)
	e.emit(
		load(asm.R4, errOldAddr),
		load(asm.R5, slotNATAddr),
		load(asm.R1, slotNATRewrite),
		asm.RSh.Imm32(asm.R1, 16),
		asm.JEq.Imm32(asm.R1, natRewriteSource, odst),
		asm.LoadMem(asm.R1, asm.R3, 12, asm.Word),
		asm.JNE.Reg32(asm.R1, asm.R4, labelNATForward),
		asm.StoreMem(asm.R3, 12, asm.R5, asm.Word),
		asm.Ja.Label(oaddr),
	)
	e.label(odst)
	e.emit(
		asm.LoadMem(asm.R1, asm.R3, 16, asm.Word),
		asm.JNE.Reg32(asm.R1, asm.R4, labelNATForward),
		asm.StoreMem(asm.R3, 16, asm.R5, asm.Word),
	)
	e.label(oaddr)
	emitCsumUpdate(e, asm.R3, 10, func() { csumReplace(e, asm.R4, asm.R5, true) }, false)
	e.emit(asm.Ja.Label(labelNATForward))
}

// emitICMPHeader sets rL3 to the ICMP header's offset and r2 to it, with
// the error's 8 bytes and the carried IPv4 header's 20 in bounds; r3 is
// the outer IPv4 header. A packet too short goes to labelNATForward.
func emitICMPHeader(e *emitter) {
	emitIPHeader(e, labelNATForward)
	e.emit(ihlBytes(asm.R1)...)
	e.emit(
		asm.Add.Reg(rL3, asm.R1),
		asm.JGT.Imm(rL3, 22+60, labelNATForward),
		asm.Mov.Reg(asm.R2, rData),
		asm.Add.Reg(asm.R2, rL3),
	)
	guard(e, asm.R2, 8+20, asm.R4, labelNATForward)
}

// Slots of the partial-checksum check, in natKeyArea after the fragment
// key and value.
const (
	slotPartial    = natKeyArea + 24 // 1: the TCP or UDP checksum is partial
	slotSumCursor  = natKeyArea + 28 // offset of the next bytes to sum
	slotSumEnd     = natKeyArea + 32 // the IP packet's end offset
	slotSumAcc     = natKeyArea + 36 // the running sum
	sumChunk       = 512             // bpf_csum_diff's largest size
	sumChunks      = 7               // 3,584 bytes: any frame of one page
	maxSumOffset   = 4096
	partialChecked = 2 // slotPartial when the checksum is full
)

// emitPartialCheck decides, before the packet is rewritten, whether the
// checksum of a TCP or UDP packet that is not a fragment is partial
// (docs/nat.md "Checksums"): it equals the folded pseudo-header sum and
// the full checksum of the segment does not verify. The segment is summed
// by bpf_csum_diff in chunks of 512 bytes, then of 256 down to 4, then
// its last bytes one by one; each step reloads its cursor and sum from
// the stack, so the verifier meets every step in one state.
func emitPartialCheck(e *emitter) {
	done := e.newLabel("nat.partial_done")
	e.at("nat: is the TCP or UDP checksum partial")
	e.emit(
		asm.Mov.Imm32(asm.R1, partialChecked),
		store(slotPartial, asm.R1),
		load(asm.R1, slotFragment),
		asm.JNE.Imm32(asm.R1, int32(policy.FragNone), done),
		load(asm.R1, slotProto),
		asm.JEq.Imm32(asm.R1, wire.ProtoTCP, e.labelAfter(done)),
		asm.JNE.Imm32(asm.R1, wire.ProtoUDP, done),
	)
	e.label(e.labelAfter(done))
	emitIPHeader(e, done)
	e.emit(be16(asm.R2, asm.R3, 2)...) // total length
	e.emit(ihlBytes(asm.R1)...)
	e.emit(
		asm.Mov.Reg(asm.R4, rL3),
		asm.Add.Reg(asm.R4, asm.R2),
		store(slotSumEnd, asm.R4),
		asm.Sub.Reg(asm.R2, asm.R1), // layer-4 length
		asm.Add.Reg(rL3, asm.R1),
		store(slotSumCursor, rL3),
	)
	e.at("nat: the pseudo-header's sum as the packet arrived")
	e.emit(
		asm.Mov.Reg(asm.R0, asm.R2),
		asm.HostTo(asm.BE, asm.R0, asm.Half),
		asm.And.Imm(asm.R0, 0xffff),
		load(asm.R4, slotProto),
		asm.LSh.Imm(asm.R4, 8),
		asm.Add.Reg(asm.R0, asm.R4),
		load(asm.R4, slotSrcAddr),
	)
	csumAdd32(e, asm.R4, false)
	e.emit(load(asm.R4, slotDstAddr))
	csumAdd32(e, asm.R4, false)
	for range 2 {
		e.emit(
			asm.Mov.Reg(asm.R1, asm.R0),
			asm.RSh.Imm(asm.R1, 16),
			asm.And.Imm(asm.R0, 0xffff),
			asm.Add.Reg(asm.R0, asm.R1),
		)
	}
	e.emit(
		store(slotSumAcc, asm.R0),
		asm.JGT.Imm(rL3, 22+60, done),
		asm.Mov.Reg(asm.R3, rData),
		asm.Add.Reg(asm.R3, rL3),
	)
	guard(e, asm.R3, 8, asm.R4, done)
	udp, field := e.newLabel("nat.partial_udp"), e.newLabel("nat.partial_field")
	e.emit(
		load(asm.R1, slotProto),
		asm.JEq.Imm32(asm.R1, wire.ProtoUDP, udp),
	)
	guard(e, asm.R3, 20, asm.R4, done)
	e.emit(
		asm.LoadMem(asm.R1, asm.R3, 16, asm.Half),
		asm.Ja.Label(field),
	)
	e.label(udp)
	e.emit(asm.LoadMem(asm.R1, asm.R3, 6, asm.Half))
	e.label(field)
	e.emit(asm.JNE.Reg(asm.R1, asm.R0, done)) // not the pseudo-header's sum: full

	e.at("nat: the segment's full checksum (bpf_csum_diff)")
	step := func(size int32, next string) {
		e.emit(
			load(asm.R1, slotSumCursor),
			load(asm.R2, slotSumEnd),
			asm.Sub.Reg(asm.R2, asm.R1),
			asm.JLT.Imm(asm.R2, size, next),
			asm.JGT.Imm(asm.R1, maxSumOffset, done),
			asm.Mov.Reg(asm.R3, rData),
			asm.Add.Reg(asm.R3, asm.R1),
		)
		guard(e, asm.R3, size, asm.R4, done)
		e.emit(
			asm.Mov.Imm(asm.R1, 0),
			asm.Mov.Imm(asm.R2, 0),
			asm.Mov.Imm(asm.R4, size),
			load(asm.R5, slotSumAcc),
			asm.FnCsumDiff.Call(),
			asm.JSLT.Imm(asm.R0, 0, done),
			store(slotSumAcc, asm.R0),
			load(asm.R1, slotSumCursor),
			asm.Add.Imm(asm.R1, size),
			store(slotSumCursor, asm.R1),
		)
	}
	for range sumChunks {
		next := e.newLabel("nat.sum_chunk")
		step(sumChunk, next)
		e.label(next)
	}
	e.emit(
		load(asm.R1, slotSumCursor),
		load(asm.R2, slotSumEnd),
		asm.Sub.Reg(asm.R2, asm.R1),
		asm.JGE.Imm(asm.R2, sumChunk, done), // longer than a page: taken as full
	)
	for size := int32(sumChunk / 2); size >= 4; size /= 2 {
		next := e.newLabel("nat.sum_piece")
		step(size, next)
		e.label(next)
	}
	e.at("nat: the segment's last bytes")
	fold := e.newLabel("nat.sum_fold")
	e.emit(
		load(asm.R1, slotSumCursor),
		load(asm.R2, slotSumEnd),
		asm.Sub.Reg(asm.R2, asm.R1),
		asm.JEq.Imm(asm.R2, 0, fold),
		asm.JGT.Imm(asm.R1, maxSumOffset, done),
		asm.Mov.Reg(asm.R3, rData),
		asm.Add.Reg(asm.R3, asm.R1),
	)
	guard(e, asm.R3, 1, asm.R4, done)
	e.emit(
		load(asm.R0, slotSumAcc),
		asm.LoadMem(asm.R4, asm.R3, 0, asm.Byte),
		asm.Add.Reg(asm.R0, asm.R4),
		asm.JEq.Imm(asm.R2, 1, e.labelAfter(fold)),
	)
	guard(e, asm.R3, 2, asm.R4, done)
	e.emit(
		asm.LoadMem(asm.R4, asm.R3, 1, asm.Byte),
		asm.LSh.Imm(asm.R4, 8),
		asm.Add.Reg(asm.R0, asm.R4),
		asm.JEq.Imm(asm.R2, 2, e.labelAfter(fold)),
	)
	guard(e, asm.R3, 3, asm.R4, done)
	e.emit(
		asm.LoadMem(asm.R4, asm.R3, 2, asm.Byte),
		asm.Add.Reg(asm.R0, asm.R4),
	)
	e.label(e.labelAfter(fold))
	e.emit(store(slotSumAcc, asm.R0))
	e.label(fold)
	e.emit(load(asm.R0, slotSumAcc))
	for range 3 {
		e.emit(
			asm.Mov.Reg(asm.R1, asm.R0),
			asm.RSh.Imm(asm.R1, 16),
			asm.And.Imm(asm.R0, 0xffff),
			asm.Add.Reg(asm.R0, asm.R1),
		)
	}
	e.emit(
		asm.JEq.Imm(asm.R0, 0xffff, done), // it verifies: full
		asm.Mov.Imm32(asm.R1, 1),
		store(slotPartial, asm.R1),
	)
	e.label(done)
}

// emitPartialUpdate updates a partial TCP or UDP checksum at r3+off for
// the pseudo-header's address only, not complemented (as the kernel's
// inet_proto_csum_replace4 does for CHECKSUM_PARTIAL), and jumps to
// labelNATForward; a full one falls through.
func emitPartialUpdate(e *emitter, off int16) {
	full := e.newLabel("nat.csum_full")
	e.emit(
		load(asm.R1, slotPartial),
		asm.JNE.Imm32(asm.R1, 1, full),
		asm.LoadMem(asm.R0, asm.R3, off, asm.Half),
		load(asm.R4, slotNATScratch),
		load(asm.R5, slotNATAddr),
	)
	csumReplace(e, asm.R4, asm.R5, true)
	for range 2 {
		e.emit(
			asm.Mov.Reg(asm.R1, asm.R0),
			asm.RSh.Imm(asm.R1, 16),
			asm.And.Imm(asm.R0, 0xffff),
			asm.Add.Reg(asm.R0, asm.R1),
		)
	}
	e.emit(asm.StoreMem(asm.R3, off, asm.R0, asm.Half), asm.Ja.Label(labelNATForward))
	e.label(full)
}
