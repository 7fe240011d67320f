package compiler

import (
	"fmt"
	"slices"
	"sort"

	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// Connection tracking (docs/conntrack.md) is two stages around the rules,
// both emitted from package conntrack's data so that its Go code stays the
// one definition of what they decide:
//
//	parser -> track -> rules -> verdict -> commit (pass, redirect) -> count
//
// The tracker (emitTrack) runs after the parser: it reads the packet's
// flow (an ICMP error's from the packet it carries), builds the flow's
// struct ct_key in ctKeyArea in conntrack.Key order, looks it up in the
// assured map, then the unassured one, and decides the packet's status as
// conntrack.Table.Status does; slotCTStatus holds it for the rules' ct_state
// tests. The commit (emitCommit) runs once the rules have passed the packet
// and records it as conntrack.Table.Commit does: a new entry in the
// unassured map, an established one moved through the state machine and
// refreshed, and put in the map its new state belongs in. The TC egress
// program (egress.go) runs the same parser, tracker and commit on the
// host's own packets, with no rules between.
//
// What the tracker found crosses the rules in metadata slots (layout.go),
// never in registers: each stage reloads what it needs, so every path
// reaches the rules in one verifier state, as without tracking. For the
// same reason no stage stores to the stack a zero the verifier knows of
// (see unknownZero), and the key area is written in ascending order.
//
// Races: the tables are shared by every CPU and every program of the
// network namespace, and there is no lock. Two CPUs deciding packets of
// one flow at once both read the entry, and the later write wins: a state
// transition or a refresh may be lost, and a flow may briefly sit in both
// maps (the assured copy is found first; the other dies or is evicted).
// The state machine tolerates a lost update: the next packet of the flow
// moves it on (without window tracking there is nothing else to keep in
// step), and a lost refresh costs at most one packet's worth of timeout.

// Labels of the tracker and the commit.
const (
	labelTrack  = "track"
	labelCommit = "commit"
)

// What slotCTOrder and slotCTDir hold (never 0: see unknownZero).
const (
	ctSrcIsLo  = 1 // the packet's source is the key's Lo endpoint
	ctSrcIsHi  = 2
	ctOriginal = 1 // the packet goes the way of the packet that created its entry
	ctReply    = 2
)

// Bits of slotCTHeld: which maps hold an entry of the key, live or dead.
const (
	ctHeldAssured   = 1
	ctHeldUnassured = 2
	ctHeldNone      = 8 // the base value, never 0
)

// Offsets in struct ct_key and struct ct_entry (conntrack.Key.Encode,
// conntrack.Entry.Encode).
const (
	keyFamily  = 0 // u8 family, u8 proto, u16 pad
	keyLoPort  = 4
	keyHiPort  = 6
	keyLoAddr  = 8
	keyHiAddr  = 24
	entExpires = 0
	entCreated = 8
	entState   = 16 // u8 state, u8 flags, reserved
	entFlags   = 17
)

// statusBit is slotCTStatus's value for status s.
func statusBit(s conntrack.Status) int32 { return 1 << s }

// icmpFamily is how the tracker reads the ICMP messages of one family
// (docs/conntrack.md "Which packets are tracked").
type icmpFamily struct {
	family, proto          int32
	echoRequest, echoReply int32
	// errors are the message types that carry the packet they are about.
	errors []int32
}

var icmpFamilies = [...]icmpFamily{
	{4, wire.ProtoICMP, wire.ICMPEchoRequest, 0, []int32{3, 11, 12}},
	{6, wire.ProtoICMPv6, wire.ICMPv6EchoRequest, 129, []int32{1, 2, 3, 4}},
}

// The states an entry starts in and moves to when a packet goes the reply
// way, for the kinds without a state machine (conntrack.Table.Commit;
// TestTrackerStatesMatchConntrack holds them to it).
var (
	ctFirstState = map[conntrack.Kind]conntrack.State{
		conntrack.KindTCP:         conntrack.TCPSynSent,
		conntrack.KindUDP:         conntrack.UDPUnreplied,
		conntrack.KindEchoRequest: conntrack.ICMPRequested,
		conntrack.KindOther:       conntrack.OtherUnreplied,
	}
	ctRepliedState = map[conntrack.Kind]conntrack.State{
		conntrack.KindUDP:         conntrack.UDPReplied,
		conntrack.KindEchoRequest: conntrack.ICMPReplied,
		conntrack.KindEchoReply:   conntrack.ICMPReplied,
		conntrack.KindOther:       conntrack.OtherReplied,
	}
)

// sortedKinds returns m's kinds in numeric order, for deterministic code.
func sortedKinds(m map[conntrack.Kind]conntrack.State) []conntrack.Kind {
	var ks []conntrack.Kind
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// tcpFlagBits are the TCP flags conntrack.ClassifyTCP looks at.
const tcpFlagBits = wire.TCPFin | wire.TCPSyn | wire.TCPRst | wire.TCPAck

// tcpClassTable packs conntrack.ClassifyTCP into a u64: the class of a
// flags byte f is nibble (f&7 | (f&0x10)>>1) of it. It panics if the
// classification reads other bits than tcpFlagBits, which the index
// leaves out.
func tcpClassTable() uint64 {
	for f := 0; f < 256; f++ {
		if conntrack.ClassifyTCP(uint8(f)) != conntrack.ClassifyTCP(uint8(f)&tcpFlagBits) {
			panic(fmt.Sprintf("compiler: conntrack.ClassifyTCP(%#x) reads flags outside %#x", f, tcpFlagBits))
		}
	}
	var t uint64
	for idx := uint8(0); idx < 16; idx++ {
		flags := idx&7 | (idx&8)<<1
		c := conntrack.ClassifyTCP(flags)
		if c >= 16 {
			panic(fmt.Sprintf("compiler: TCP class %d does not fit a nibble", c))
		}
		t |= uint64(c) << (4 * idx)
	}
	return t
}

// tcpClasses are the classes of conntrack.TCPTable's rows, in order.
var tcpClasses = []conntrack.TCPClass{conntrack.ClassSyn, conntrack.ClassSynAck, conntrack.ClassFin,
	conntrack.ClassAck, conntrack.ClassRst, conntrack.ClassNone}

// tcpTransitions packs the row of conntrack.TCPTable for a segment of
// class c going d into a u64: nibble s is the state an entry in state s
// moves to, 0 where it stays (netfilter's invalid and ignored
// transitions). It panics if a state does not fit a nibble.
func tcpTransitions(d conntrack.Dir, c conntrack.TCPClass) uint64 {
	var t uint64
	for _, s := range conntrack.TCPStates {
		if s >= 16 {
			panic(fmt.Sprintf("compiler: TCP state %s does not fit a nibble", s))
		}
		n, moved := conntrack.NextTCP(s, d, c)
		if !moved {
			continue
		}
		if n == conntrack.StateNone || n >= 16 {
			panic(fmt.Sprintf("compiler: TCP transition to %s does not fit a nibble", n))
		}
		t |= uint64(n) << (4 * uint(s))
	}
	return t
}

// reopening is a direction and class whose segment reopens an entry in
// one of states (conntrack.Reopens).
type reopening struct {
	dir    conntrack.Dir
	class  conntrack.TCPClass
	states []conntrack.State
}

// tcpReopenings evaluates conntrack.Reopens for every direction, class and
// TCP state.
func tcpReopenings() []reopening {
	var out []reopening
	for _, d := range []conntrack.Dir{conntrack.Original, conntrack.Reply} {
		for _, c := range tcpClasses {
			r := reopening{dir: d, class: c}
			for _, s := range conntrack.TCPStates[1:] {
				if conntrack.Reopens(s, d, c) {
					r.states = append(r.states, s)
				}
			}
			if len(r.states) > 0 {
				out = append(out, r)
			}
		}
	}
	return out
}

// dirValue is slotCTDir's value for d.
func dirValue(d conntrack.Dir) int32 {
	if d == conntrack.Reply {
		return ctReply
	}
	return ctOriginal
}

// assuredStates is the set of states conntrack.State.Assured holds, a bit
// per state.
func assuredStates() uint64 {
	var m uint64
	for _, s := range conntrack.States() {
		if s >= 64 {
			panic(fmt.Sprintf("compiler: state %s does not fit the assured mask", s))
		}
		if s.Assured() {
			m |= 1 << uint(s)
		}
	}
	return m
}

// unknownZero sets r to 0 without the verifier knowing it is 0: it xors r
// with itself after loading a slot the verifier knows nothing of. Stored
// to the stack, a zero the verifier knows marks those bytes STACK_ZERO
// where other paths leave plain data (STACK_MISC), and states that differ
// so do not meet: every rule after the tracker would be verified once
// more. Linux 6.1 to 6.18 do not follow a register xored with itself.
func unknownZero(e *emitter, r asm.Register) {
	e.emit(load(r, slotFamily), asm.Xor.Reg(r, r))
}

// trackDefaults stores the entry's defaults of the tracker's slots and key
// area: every path reaches the rules and the commit with them written, as
// plain data (no zeros; the key area in ascending order).
func trackDefaults(e *emitter) {
	e.at("entry: connection tracking defaults")
	e.emit(storeImm(slotCTStatus, statusBit(conntrack.StatusNone)))
	for _, s := range []int16{slotCTKind, slotCTClass, slotCTOrder, slotCTDir, slotCTEntry,
		slotCTCreated, slotCTCreated - 8, slotCTNow, slotCTNow - 8, slotCTHeld, slotCTState} {
		e.emit(storeImm(s, absent))
	}
	for off := int16(0); off < conntrack.KeySize; off += 4 {
		e.emit(storeImm(ctKeyArea+off, absent))
	}
}

// trackOptions place the tracker in a program.
type trackOptions struct {
	// next is where every packet goes once its status is in
	// slotCTStatus: labelClassify, or the commit.
	next string
	// assured and unassured name the table's maps.
	assured, unassured string
	// alias names the NAT map of a program bound to a NAT interface: a
	// flow not in the table is looked for through it (emitAliasFallback).
	alias string
	// role is the XDP program's part in its nat block: which packets
	// found by their flow's own tuple it translates
	// (emitFlowTranslation); 0 for the egress program, which translates
	// nothing.
	role policy.NATRole
}

// emitTrack emits the tracker at labelTrack. It reads the metadata area
// and the packet (rData, rDataEnd), and writes the tracker's slots and the
// key area; it keeps nothing in registers.
func emitTrack(e *emitter, o trackOptions) {
	e.label(labelTrack)
	e.at("conntrack: is the packet tracked")
	e.emit(
		load(asm.R0, slotFamily),
		asm.JEq.Imm32(asm.R0, absent, o.next),
		load(asm.R0, slotFragment),
		asm.JEq.Imm32(asm.R0, int32(policy.FragLater), o.next),
	)
	e.at("conntrack: the packet's time")
	e.emit(
		asm.FnKtimeGetNs.Call(),
		store(slotCTNow, asm.R0),
		asm.RSh.Imm(asm.R0, 32),
		store(slotCTNow-8, asm.R0),
	)
	e.at("conntrack: the packet's kind")
	tcp, udp, other := e.newLabel("track.tcp"), e.newLabel("track.udp"), e.newLabel("track.other")
	v4 := e.newLabel("track.ipv4")
	icmp := []string{e.newLabel("track.icmp"), e.newLabel("track.icmpv6")}
	e.emit(
		load(asm.R1, slotFamily),
		load(asm.R2, slotProto),
		asm.JEq.Imm32(asm.R2, wire.ProtoTCP, tcp),
		asm.JEq.Imm32(asm.R2, wire.ProtoUDP, udp),
		asm.JEq.Imm32(asm.R1, 4, v4),
		asm.JEq.Imm32(asm.R2, wire.ProtoICMPv6, icmp[1]),
		asm.Ja.Label(other),
	)
	e.label(v4)
	e.emit(asm.JEq.Imm32(asm.R2, wire.ProtoICMP, icmp[0]), asm.Ja.Label(other))

	head, order, addrs := e.newLabel("track.key_head"), e.newLabel("track.order"), e.newLabel("track.outer_addrs")

	e.label(tcp)
	e.at("conntrack: a TCP segment and its class (conntrack.ClassifyTCP)")
	e.emit(
		storeImm(slotCTKind, int32(conntrack.KindTCP)),
		load(asm.R1, slotTCPFlags),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.And.Imm(asm.R2, 7),
		asm.RSh.Imm(asm.R1, 1),
		asm.And.Imm(asm.R1, 8),
		asm.Or.Reg(asm.R1, asm.R2),
		asm.LSh.Imm(asm.R1, 2),
		asm.LoadImm(asm.R2, int64(tcpClassTable()), asm.DWord),
		asm.RSh.Reg(asm.R2, asm.R1),
		asm.And.Imm(asm.R2, 0xf),
		store(slotCTClass, asm.R2),
	)
	emitOuterFlow(e, addrs, false)

	e.label(udp)
	e.at("conntrack: a UDP datagram")
	e.emit(storeImm(slotCTKind, int32(conntrack.KindUDP)))
	emitOuterFlow(e, addrs, false)

	e.label(other)
	e.at("conntrack: a packet of another protocol (ports 0)")
	e.emit(storeImm(slotCTKind, int32(conntrack.KindOther)))
	emitOuterFlow(e, addrs, true)

	for i, f := range icmpFamilies {
		emitTrackICMP(e, o, f, icmp[i], addrs, head)
	}
	emitOuterAddrs(e, addrs, head)

	e.label(head)
	e.at("conntrack: the key's family, protocol and ports (r5 protocol, r3 and r4 ports)")
	e.emit(
		asm.LSh.Imm(asm.R5, 8),
		load(asm.R1, slotFamily),
		asm.Or.Reg(asm.R5, asm.R1),
		asm.StoreMem(asm.R10, ctKeyArea+keyFamily, asm.R5, asm.Word),
		asm.StoreMem(asm.R10, ctKeyArea+keyLoPort, asm.R3, asm.Half),
		asm.StoreMem(asm.R10, ctKeyArea+keyHiPort, asm.R4, asm.Half),
	)

	emitOrder(e, order)
	if o.alias == "" {
		emitLookup(e, o, "track.live", "track.none")
	} else {
		emitLookup(e, o, labelTrackFound, labelTrackAlias)
		emitFlowTranslation(e, o.role)
		emitAliasFallback(e, o)
	}
	emitStatus(e, o)
}

// emitOuterFlow loads the packet's own ports into r3 (source) and r4
// (destination), from the metadata area or 0, and jumps to addrs
// (emitOuterAddrs).
func emitOuterFlow(e *emitter, addrs string, noPorts bool) {
	if noPorts {
		unknownZero(e, asm.R3)
		e.emit(asm.Mov.Reg(asm.R4, asm.R3))
	} else {
		e.emit(load(asm.R3, slotSrcPort), load(asm.R4, slotDstPort))
	}
	e.emit(asm.Ja.Label(addrs))
}

// emitOuterAddrs writes the packet's addresses to the key area, source as
// Lo, IPv4 in the first word, and goes on to head with the protocol in r5
// and the ports it came with in r3 and r4.
func emitOuterAddrs(e *emitter, addrs, head string) {
	e.label(addrs)
	e.at("conntrack: the packet's addresses, source as Lo (r3 and r4 its ports)")
	v4, done := e.newLabel("track.addr_v4"), e.newLabel("track.addrs")
	e.emit(
		load(asm.R1, slotFamily),
		asm.JNE.Imm32(asm.R1, 6, v4),
	)
	for i, f := range []policy.Field{policy.FieldSrc, policy.FieldDst} {
		for w := 0; w < 4; w++ {
			e.emit(load(asm.R1, addrWordSlot(f, w)), store(ctKeyArea+keyLoAddr+16*int16(i)+4*int16(w), asm.R1))
		}
	}
	e.emit(asm.Ja.Label(done))
	e.label(v4)
	unknownZero(e, asm.R2)
	for i, f := range []policy.Field{policy.FieldSrc, policy.FieldDst} {
		e.emit(load(asm.R1, addrWordSlot(f, 0)), store(ctKeyArea+keyLoAddr+16*int16(i), asm.R1))
		for w := int16(1); w < 4; w++ {
			e.emit(store(ctKeyArea+keyLoAddr+16*int16(i)+4*w, asm.R2))
		}
	}
	e.label(done)
	e.emit(load(asm.R5, slotProto), asm.Ja.Label(head))
}

// emitTrackICMP emits the tracking of family f's ICMP messages at label:
// echo requests and replies with the identifier as both ports, errors by
// the packet they carry; other messages are not tracked.
func emitTrackICMP(e *emitter, o trackOptions, f icmpFamily, label, addrs, head string) {
	e.label(label)
	e.at("conntrack: ICMP%s message type", map[int32]string{4: "", 6: "v6"}[f.family])
	request, reply, isErr := e.newLabel("track.echo_request"), e.newLabel("track.echo_reply"), e.newLabel("track.icmp_error")
	e.emit(
		load(asm.R1, slotICMPType),
		asm.JEq.Imm32(asm.R1, f.echoRequest, request),
		asm.JEq.Imm32(asm.R1, f.echoReply, reply),
	)
	for _, t := range f.errors {
		e.emit(asm.JEq.Imm32(asm.R1, t, isErr))
	}
	e.emit(asm.Ja.Label(o.next))

	echo := e.newLabel("track.echo")
	e.label(request)
	e.at("conntrack: an echo request")
	e.emit(storeImm(slotCTKind, int32(conntrack.KindEchoRequest)), asm.Ja.Label(echo))
	e.label(reply)
	e.at("conntrack: an echo reply")
	e.emit(storeImm(slotCTKind, int32(conntrack.KindEchoReply)))
	e.label(echo)
	e.at("conntrack: the echo identifier is both ports")
	e.emit(
		load(asm.R1, slotCursor),
		asm.JGT.Imm(asm.R1, maxCursor, o.next),
		asm.Mov.Reg(asm.R2, rData),
		asm.Add.Reg(asm.R2, asm.R1),
	)
	guard(e, asm.R2, 8, asm.R3, o.next)
	e.emit(be16(asm.R3, asm.R2, 4)...)
	e.emit(asm.Mov.Reg(asm.R4, asm.R3), asm.Ja.Label(addrs))

	e.label(isErr)
	emitTrackError(e, o, f, head)
}

// emitTrackError reads the flow of the packet an ICMP error of family f
// carries, after the error's 8-byte header (docs/conntrack.md, "The packet
// an ICMP error carries"): its IP header (IPv4 with options, not a later
// fragment; IPv6 without extension headers: the next header is the
// protocol) and the first 8 bytes after it: ports for TCP and UDP, an
// echo's identifier for its family's ICMP, nothing read for the others.
// An error that carries less, or another ICMP message than an echo, is
// invalid. The embedded packet
// is the flow's own as it was sent, so it keys the flow as the flow's
// packets do.
func emitTrackError(e *emitter, o trackOptions, f icmpFamily, head string) {
	short := e.newLabel("track.error_short")
	e.at("conntrack: an ICMP error: the embedded IP header")
	e.emit(
		storeImm(slotCTKind, int32(conntrack.KindICMPError)),
		load(asm.R1, slotCursor),
		asm.Add.Imm(asm.R1, 8), // the embedded IP header's offset
		asm.JGT.Imm(asm.R1, maxCursor, short),
		load(asm.R2, slotIPEnd),
		asm.Mov.Reg(asm.R4, rData),
		asm.Add.Reg(asm.R4, asm.R1),
	)
	hdr := int32(20)
	if f.family == 6 {
		hdr = 40
	}
	e.emit(
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.Add.Imm(asm.R3, hdr),
		asm.JGT.Reg(asm.R3, asm.R2, short),
	)
	guard(e, asm.R4, hdr, asm.R3, short)
	e.emit(
		asm.LoadMem(asm.R3, asm.R4, 0, asm.Byte),
		asm.Mov.Reg32(asm.R0, asm.R3),
		asm.RSh.Imm32(asm.R0, 4),
		asm.JNE.Imm32(asm.R0, f.family, short),
	)
	if f.family == 4 {
		e.emit(be16(asm.R0, asm.R4, 6)...)
		e.emit(
			asm.JSet.Imm32(asm.R0, 0x1fff, short), // a later fragment carries no ports
			asm.And.Imm32(asm.R3, 0x0f),
			asm.JLT.Imm32(asm.R3, 5, short),
			asm.LSh.Imm32(asm.R3, 2), // header length
			asm.Mov.Reg(asm.R0, asm.R1),
			asm.Add.Reg(asm.R0, asm.R3), // the embedded layer 4's offset
			asm.JGT.Reg(asm.R0, asm.R2, short),
		)
		e.at("conntrack: an ICMP error: the embedded addresses")
		unknownZero(e, asm.R3)
		for i := int16(0); i < 2; i++ {
			e.emit(
				asm.LoadMem(asm.R5, asm.R4, 12+4*i, asm.Word),
				store(ctKeyArea+keyLoAddr+16*i, asm.R5),
			)
			for w := int16(1); w < 4; w++ {
				e.emit(store(ctKeyArea+keyLoAddr+16*i+4*w, asm.R3))
			}
		}
		e.emit(asm.LoadMem(asm.R5, asm.R4, 9, asm.Byte))
	} else {
		e.emit(
			asm.Mov.Reg(asm.R0, asm.R1),
			asm.Add.Imm(asm.R0, 40), // the embedded layer 4's offset
		)
		e.at("conntrack: an ICMP error: the embedded addresses")
		for i := int16(0); i < 2; i++ {
			for w := int16(0); w < 4; w++ {
				e.emit(
					asm.LoadMem(asm.R5, asm.R4, 8+16*i+4*w, asm.Word),
					store(ctKeyArea+keyLoAddr+16*i+4*w, asm.R5),
				)
			}
		}
		e.emit(asm.LoadMem(asm.R5, asm.R4, 6, asm.Byte))
	}

	e.at("conntrack: an ICMP error: the embedded ports (r0 their offset, r5 the protocol)")
	ports, echo, noPorts := e.newLabel("track.error_ports"), e.newLabel("track.error_echo"), e.newLabel("track.error_no_ports")
	e.emit(
		asm.JEq.Imm32(asm.R5, wire.ProtoTCP, ports),
		asm.JEq.Imm32(asm.R5, wire.ProtoUDP, ports),
		asm.JEq.Imm32(asm.R5, f.proto, echo),
	)
	l4 := func() {
		e.emit(
			asm.JGT.Imm(asm.R0, maxCursor, short),
			asm.Mov.Reg(asm.R3, asm.R0),
			asm.Add.Imm(asm.R3, 8),
			asm.JGT.Reg(asm.R3, asm.R2, short),
			asm.Mov.Reg(asm.R1, rData),
			asm.Add.Reg(asm.R1, asm.R0),
		)
		guard(e, asm.R1, 8, asm.R3, short)
	}
	e.label(noPorts)
	e.at("conntrack: an ICMP error about another protocol: ports 0, 8 bytes carried all the same")
	l4()
	unknownZero(e, asm.R3)
	e.emit(asm.Mov.Reg(asm.R4, asm.R3), asm.Ja.Label(head))
	e.label(ports)
	l4()
	e.emit(be16(asm.R3, asm.R1, 0)...)
	e.emit(be16(asm.R4, asm.R1, 2)...)
	e.emit(asm.Ja.Label(head))
	e.label(echo)
	e.at("conntrack: an ICMP error about an echo: its identifier")
	l4()
	isEcho := e.newLabel("track.error_echo_id")
	e.emit(
		asm.LoadMem(asm.R3, asm.R1, 0, asm.Byte),
		asm.JEq.Imm32(asm.R3, f.echoRequest, isEcho),
		asm.JNE.Imm32(asm.R3, f.echoReply, short),
	)
	e.label(isEcho)
	e.emit(be16(asm.R3, asm.R1, 4)...)
	e.emit(asm.Mov.Reg(asm.R4, asm.R3), asm.Ja.Label(head))

	e.label(short)
	e.at("conntrack: an ICMP error that carries too little of its packet is invalid")
	e.emit(storeImm(slotCTStatus, statusBit(conntrack.StatusInvalid)), asm.Ja.Label(o.next))
}

// emitOrder orders the key's endpoints as conntrack.Less does (address
// words, then port) and records which end the packet's source is.
func emitOrder(e *emitter, order string) {
	e.label(order)
	e.at("conntrack: order the key's endpoints (conntrack.Less)")
	keep, swap, done := e.newLabel("track.src_is_lo"), e.newLabel("track.src_is_hi"), e.newLabel("track.ordered")
	emitOrderArea(e, ctKeyArea, keep, swap, func() {
		e.at("conntrack: the destination is the key's Lo endpoint")
		e.emit(storeImm(slotCTOrder, ctSrcIsHi), asm.Ja.Label(done))
	})
	e.emit(storeImm(slotCTOrder, ctSrcIsLo))
	e.label(done)
}

// emitOrderArea orders the endpoints of the key at area as conntrack.Less
// does (address words, then port): at label swap it swaps them and emits
// swapped; label keep ends it.
func emitOrderArea(e *emitter, area int16, keep, swap string, swapped func()) {
	for w := int16(0); w < 4; w++ {
		e.emit(
			load(asm.R1, area+keyLoAddr+4*w),
			load(asm.R2, area+keyHiAddr+4*w),
			asm.JLT.Reg32(asm.R1, asm.R2, keep),
			asm.JGT.Reg32(asm.R1, asm.R2, swap),
		)
	}
	e.emit(
		asm.LoadMem(asm.R1, asm.R10, area+keyLoPort, asm.Half),
		asm.LoadMem(asm.R2, asm.R10, area+keyHiPort, asm.Half),
		asm.JLE.Reg32(asm.R1, asm.R2, keep),
	)
	e.label(swap)
	for w := int16(0); w < 4; w++ {
		e.emit(
			load(asm.R1, area+keyLoAddr+4*w),
			load(asm.R2, area+keyHiAddr+4*w),
			store(area+keyLoAddr+4*w, asm.R2),
			store(area+keyHiAddr+4*w, asm.R1),
		)
	}
	e.emit(
		asm.LoadMem(asm.R1, asm.R10, area+keyLoPort, asm.Half),
		asm.LoadMem(asm.R2, asm.R10, area+keyHiPort, asm.Half),
		asm.StoreMem(asm.R10, area+keyLoPort, asm.R2, asm.Half),
		asm.StoreMem(asm.R10, area+keyHiPort, asm.R1, asm.Half),
	)
	swapped()
	e.label(keep)
}

// loadNow sets r to the packet's time; it clobbers scratch.
func loadNow(e *emitter, r, scratch asm.Register) {
	e.emit(
		load(r, slotCTNow-8),
		asm.LSh.Imm(r, 32),
		load(scratch, slotCTNow),
		asm.Or.Reg(r, scratch),
	)
}

// mapAndKey points r1 at map m and r2 at the key area.
func mapAndKey(e *emitter, m string) {
	e.emit(
		asm.LoadMapPtr(asm.R1, 0).WithReference(m),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(ctKeyArea)),
	)
}

// emitLookup looks the key up in the assured map, then the unassured one,
// and jumps to live with the first live entry's state, flags and creation
// time in the tracker's slots (and r0 pointing at it), or to none.
func emitLookup(e *emitter, o trackOptions, live, none string) {
	e.at("conntrack: look the flow up, assured first")
	e.emit(storeImm(slotCTHeld, ctHeldNone))
	for i, m := range []struct {
		name string
		held int32
	}{{o.assured, ctHeldAssured}, {o.unassured, ctHeldUnassured}} {
		next := none
		if i == 0 {
			next = e.newLabel("track.unassured")
		}
		mapAndKey(e, m.name)
		e.emit(
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, next),
			load(asm.R1, slotCTHeld),
			asm.Or.Imm32(asm.R1, m.held),
			store(slotCTHeld, asm.R1),
			asm.LoadMem(asm.R1, asm.R0, entExpires, asm.DWord),
		)
		loadNow(e, asm.R2, asm.R3)
		e.emit(
			asm.JGE.Reg(asm.R2, asm.R1, next), // dead: now >= expires
			asm.LoadMem(asm.R1, asm.R0, entState, asm.Half),
			store(slotCTEntry, asm.R1),
			asm.LoadMem(asm.R1, asm.R0, entCreated, asm.Word),
			store(slotCTCreated, asm.R1),
			asm.LoadMem(asm.R1, asm.R0, entCreated+4, asm.Word),
			store(slotCTCreated-8, asm.R1),
			asm.Ja.Label(live),
		)
		if i == 0 {
			e.label(next)
			e.at("conntrack: not live in the assured map: the unassured")
		}
	}
}

// emitStatus decides the packet's status as conntrack.Table.Status does,
// from what emitLookup found, and jumps to o.next.
func emitStatus(e *emitter, o trackOptions) {
	set := func(s conntrack.Status) {
		e.emit(storeImm(slotCTStatus, statusBit(s)), asm.Ja.Label(o.next))
	}
	established, related, isNew, invalid := e.newLabel("track.established"), e.newLabel("track.related"), e.newLabel("track.new"), e.newLabel("track.invalid")

	e.label("track.live")
	e.at("conntrack: a live entry: its direction (the entry's FlagOrigLo against the key's order)")
	srcLo, orig, reply := e.newLabel("track.src_lo"), e.newLabel("track.original"), e.newLabel("track.reply")
	e.emit(
		load(asm.R1, slotCTKind),
		asm.JEq.Imm32(asm.R1, int32(conntrack.KindICMPError), related),
		load(asm.R2, slotCTEntry),
		asm.RSh.Imm32(asm.R2, 8),
		asm.And.Imm32(asm.R2, int32(conntrack.FlagOrigLo)),
		load(asm.R3, slotCTOrder),
		asm.JEq.Imm32(asm.R3, ctSrcIsLo, srcLo),
		asm.JEq.Imm32(asm.R2, 0, orig),
		asm.Ja.Label(reply),
	)
	e.label(srcLo)
	e.emit(asm.JNE.Imm32(asm.R2, 0, orig))
	e.label(reply)
	e.emit(storeImm(slotCTDir, ctReply), asm.Ja.Label(established))
	e.label(orig)
	e.emit(storeImm(slotCTDir, ctOriginal))
	e.at("conntrack: a TCP segment that reopens its entry is new (conntrack.Reopens)")
	e.emit(
		load(asm.R1, slotCTKind),
		asm.JNE.Imm32(asm.R1, int32(conntrack.KindTCP), established),
		load(asm.R1, slotCTDir),
		load(asm.R2, slotCTClass),
		load(asm.R3, slotCTEntry),
		asm.And.Imm32(asm.R3, 0xff),
	)
	for _, r := range tcpReopenings() {
		skip := e.newLabel("track.reopen_next")
		e.emit(
			asm.JNE.Imm32(asm.R1, dirValue(r.dir), skip),
			asm.JNE.Imm32(asm.R2, int32(r.class), skip),
		)
		for _, s := range r.states {
			e.emit(asm.JEq.Imm32(asm.R3, int32(s), isNew))
		}
		e.label(skip)
	}
	e.label(established)
	e.at("conntrack: established")
	set(conntrack.StatusEstablished)
	e.label(related)
	e.at("conntrack: an ICMP error about a live flow is related")
	set(conntrack.StatusRelated)

	e.label("track.none")
	e.at("conntrack: no live entry: new or invalid by kind")
	tcpNone := e.newLabel("track.none_tcp")
	e.emit(
		load(asm.R1, slotCTKind),
		asm.JEq.Imm32(asm.R1, int32(conntrack.KindTCP), tcpNone),
		asm.JEq.Imm32(asm.R1, int32(conntrack.KindEchoReply), invalid),
		asm.JEq.Imm32(asm.R1, int32(conntrack.KindICMPError), invalid),
	)
	e.label(isNew)
	e.at("conntrack: new")
	set(conntrack.StatusNew)
	e.label(tcpNone)
	e.at("conntrack: a TCP segment without an entry is new only as a SYN")
	e.emit(
		load(asm.R1, slotCTClass),
		asm.JEq.Imm32(asm.R1, int32(conntrack.ClassSyn), isNew),
	)
	e.label(invalid)
	e.at("conntrack: invalid")
	set(conntrack.StatusInvalid)
}

// commitOptions place the commit in a program.
type commitOptions struct {
	// egress: the host's own packets, which create entries with
	// FlagEgress and pick up TCP connections (conntrack.Pickup).
	egress bool
	// next is where the commit goes when done.
	next string
	// assured and unassured name the table's maps.
	assured, unassured string
	// timeouts are the policy's, by state.
	timeouts conntrack.Timeouts
	// nat: entries carry their translation (slotCTNAT, slotCTNATAddr).
	nat bool
}

// emitCommit emits the commit at labelCommit: conntrack.Table.Commit of
// the packet the tracker classified, into the maps. It uses r0-r5 and
// keeps the other registers.
func emitCommit(e *emitter, o commitOptions) {
	e.label(labelCommit)
	e.at("commit: does the packet change the table")
	create, move, place := e.newLabel("commit.new"), e.newLabel("commit.move"), e.newLabel("commit.place")
	e.emit(
		load(asm.R1, slotCTStatus),
		asm.JEq.Imm32(asm.R1, statusBit(conntrack.StatusNew), create),
		asm.JEq.Imm32(asm.R1, statusBit(conntrack.StatusEstablished), move),
	)
	if o.egress {
		e.at("commit: the host's own TCP ACK without an entry picks its connection up (conntrack.Pickup)")
		e.emit(
			asm.JNE.Imm32(asm.R1, statusBit(conntrack.StatusInvalid), o.next),
			load(asm.R1, slotCTKind),
			asm.JNE.Imm32(asm.R1, int32(conntrack.KindTCP), o.next),
			load(asm.R1, slotCTClass),
			asm.JNE.Imm32(asm.R1, int32(conntrack.ClassAck), o.next),
			storeImm(slotCTState, int32(conntrack.TCPEstablished)),
		)
		emitFreshFlags(e, conntrack.FlagEgress|conntrack.FlagPickedUp, place)
	} else {
		e.emit(asm.Ja.Label(o.next))
	}

	e.label(create)
	e.at("commit: a new entry's first state")
	e.emit(load(asm.R1, slotCTKind))
	flags := e.newLabel("commit.new_flags")
	for _, k := range sortedKinds(ctFirstState) {
		skip := e.newLabel("commit.first_next")
		e.emit(
			asm.JNE.Imm32(asm.R1, int32(k), skip),
			storeImm(slotCTState, int32(ctFirstState[k])),
			asm.Ja.Label(flags),
		)
		e.label(skip)
	}
	e.emit(asm.Ja.Label(o.next)) // no kind is new without a first state
	e.label(flags)
	var f conntrack.Flags
	if o.egress {
		f = conntrack.FlagEgress
	}
	emitFreshFlags(e, f, place)

	e.label(move)
	e.at("commit: an established packet moves its entry's state")
	tcp, keep := e.newLabel("commit.move_tcp"), e.newLabel("commit.keep_state")
	e.emit(
		load(asm.R1, slotCTKind),
		asm.JEq.Imm32(asm.R1, int32(conntrack.KindTCP), tcp),
		load(asm.R2, slotCTDir),
		asm.JNE.Imm32(asm.R2, ctReply, keep),
	)
	for _, k := range sortedKinds(ctRepliedState) {
		skip := e.newLabel("commit.replied_next")
		e.emit(
			asm.JNE.Imm32(asm.R1, int32(k), skip),
			storeImm(slotCTState, int32(ctRepliedState[k])),
			asm.Ja.Label(place),
		)
		e.label(skip)
	}
	e.label(keep)
	e.emit(
		load(asm.R1, slotCTEntry),
		asm.And.Imm32(asm.R1, 0xff),
		store(slotCTState, asm.R1),
		asm.Ja.Label(place),
	)

	e.label(tcp)
	e.at("commit: the TCP state machine (conntrack.TCPTable, a nibble per state)")
	apply := e.newLabel("commit.tcp_apply")
	e.emit(
		load(asm.R1, slotCTClass),
		load(asm.R3, slotCTDir),
	)
	for _, c := range tcpClasses {
		skip, rep := e.newLabel("commit.class_next"), e.newLabel("commit.class_reply")
		e.emit(
			asm.JNE.Imm32(asm.R1, int32(c), skip),
			asm.JEq.Imm32(asm.R3, ctReply, rep),
			asm.LoadImm(asm.R2, int64(tcpTransitions(conntrack.Original, c)), asm.DWord),
			asm.Ja.Label(apply),
		)
		e.label(rep)
		e.emit(
			asm.LoadImm(asm.R2, int64(tcpTransitions(conntrack.Reply, c)), asm.DWord),
			asm.Ja.Label(apply),
		)
		e.label(skip)
	}
	e.emit(asm.Ja.Label(keep)) // no class: impossible
	e.label(apply)
	e.emit(
		load(asm.R1, slotCTEntry),
		asm.And.Imm32(asm.R1, 0xff),
		asm.JGT.Imm32(asm.R1, 15, keep),
		asm.LSh.Imm32(asm.R1, 2),
		asm.RSh.Reg(asm.R2, asm.R1),
		asm.And.Imm32(asm.R2, 0xf),
		asm.JEq.Imm32(asm.R2, 0, keep), // netfilter's invalid and ignored transitions
		store(slotCTState, asm.R2),
	)

	emitPlace(e, o, place)
}

// emitFreshFlags stores a fresh entry's flags (f, and FlagOrigLo when the
// packet's source is the key's Lo endpoint) and creation time (now) where
// emitPlace reads them, and jumps to place.
func emitFreshFlags(e *emitter, f conntrack.Flags, place string) {
	e.at("commit: a fresh entry's flags and creation time")
	hi := e.newLabel("commit.orig_hi")
	e.emit(
		asm.Mov.Imm32(asm.R1, int32(f)<<8),
		load(asm.R2, slotCTOrder),
		asm.JNE.Imm32(asm.R2, ctSrcIsLo, hi),
		asm.Or.Imm32(asm.R1, int32(conntrack.FlagOrigLo)<<8),
	)
	e.label(hi)
	e.emit(
		store(slotCTEntry, asm.R1),
		load(asm.R1, slotCTNow),
		store(slotCTCreated, asm.R1),
		load(asm.R1, slotCTNow-8),
		store(slotCTCreated-8, asm.R1),
		asm.Ja.Label(place),
	)
}

// emitPlace writes the entry (slotCTState, the flags in slotCTEntry,
// slotCTCreated, expiring after its state's timeout) into the map its
// state belongs in, removing the copy in the other map: an assured state
// into the assured map unless it is full, then the unassured one keeps it.
func emitPlace(e *emitter, o commitOptions, place string) {
	e.label(place)
	e.at("commit: the entry's timeout by state (conntrack.Timeouts.Of)")
	timeout, done := e.newLabel("commit.timeout"), o.next
	e.emit(load(asm.R1, slotCTState))
	states := conntrack.States()
	sort.Slice(states, func(i, j int) bool { return states[i] < states[j] })
	for _, s := range states {
		skip := e.newLabel("commit.timeout_next")
		e.emit(
			asm.JNE.Imm32(asm.R1, int32(s), skip),
			asm.LoadImm(asm.R2, int64(o.timeouts.Of(s)), asm.DWord),
			asm.Ja.Label(timeout),
		)
		e.label(skip)
	}
	e.emit(asm.Ja.Label(done)) // no state without a timeout
	e.label(timeout)
	e.at("commit: the entry (struct ct_entry)")
	loadNow(e, asm.R3, asm.R4)
	e.emit(
		asm.Add.Reg(asm.R3, asm.R2),
		asm.StoreMem(asm.R10, ctValueArea+entExpires, asm.R3, asm.DWord),
		load(asm.R3, slotCTCreated-8),
		asm.LSh.Imm(asm.R3, 32),
		load(asm.R4, slotCTCreated),
		asm.Or.Reg(asm.R3, asm.R4),
		asm.StoreMem(asm.R10, ctValueArea+entCreated, asm.R3, asm.DWord),
		load(asm.R3, slotCTEntry),
		asm.And.Imm32(asm.R3, 0xff00),
		load(asm.R4, slotCTState),
		asm.Or.Reg(asm.R3, asm.R4),
	)
	if o.nat {
		emitEntryNAT(e)
	} else {
		e.emit(
			asm.StoreMem(asm.R10, ctValueArea+entState, asm.R3, asm.Word),
			asm.StoreImm(asm.R10, ctValueArea+entState+4, 0, asm.Word), // reserved
			asm.StoreImm(asm.R10, ctValueArea+entState+8, 0, asm.Word),
			asm.StoreImm(asm.R10, ctValueArea+entState+12, 0, asm.Word),
		)
	}
	e.at("commit: assured states go to the assured map (conntrack.State.Assured)")
	unassured := e.newLabel("commit.unassured")
	e.emit(
		load(asm.R1, slotCTState),
		asm.And.Imm(asm.R1, 63),
		asm.LoadImm(asm.R2, int64(assuredStates()), asm.DWord),
		asm.RSh.Reg(asm.R2, asm.R1),
		asm.And.Imm(asm.R2, 1),
		asm.JEq.Imm(asm.R2, 0, unassured),
	)
	update := func(m string) {
		mapAndKey(e, m)
		e.emit(
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, int32(ctValueArea)),
			asm.Mov.Imm(asm.R4, 0), // BPF_ANY
			asm.FnMapUpdateElem.Call(),
		)
	}
	remove := func(m string, held int32) {
		del := e.newLabel("commit.remove")
		e.emit(
			load(asm.R1, slotCTHeld),
			asm.JSet.Imm32(asm.R1, held, del),
			asm.Ja.Label(done),
		)
		e.label(del)
		mapAndKey(e, m)
		e.emit(asm.FnMapDeleteElem.Call(), asm.Ja.Label(done))
	}
	// inPlace overwrites the entry the map already holds for the key
	// (slotCTHeld says it held one when the tracker looked) with the one
	// built, through the pointer a lookup returns, and goes on to after:
	// an update would take a fresh element and free the old one on every
	// packet, which in the LRU map costs more than the rest of the commit.
	// A key the map no longer holds goes to the update.
	inPlace := func(m string, held int32, after string) {
		upd := e.newLabel("commit.update")
		e.emit(
			load(asm.R1, slotCTHeld),
			asm.JSet.Imm32(asm.R1, held, e.labelAfter(upd)),
			asm.Ja.Label(upd),
		)
		e.label(e.labelAfter(upd))
		mapAndKey(e, m)
		e.emit(
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, upd),
		)
		// The expiry last: a reader on another CPU that finds the entry
		// live in it finds the rest written before it (on x86; the
		// update this replaces was atomic).
		for _, off := range []int16{8, 16, 24, entExpires} {
			e.emit(
				asm.LoadMem(asm.R1, asm.R10, ctValueArea+off, asm.DWord),
				asm.StoreMem(asm.R0, off, asm.R1, asm.DWord),
			)
		}
		e.emit(asm.Ja.Label(after))
		e.label(upd)
	}
	assuredPlaced, unassuredPlaced := e.newLabel("commit.assured_placed"), e.newLabel("commit.unassured_placed")
	inPlace(o.assured, ctHeldAssured, assuredPlaced)
	update(o.assured)
	e.emit(asm.JNE.Imm(asm.R0, 0, unassured)) // full: the unassured map keeps it
	e.label(assuredPlaced)
	remove(o.unassured, ctHeldUnassured)
	e.label(unassured)
	e.at("commit: other states, and assured ones the assured map has no room for, to the unassured map")
	inPlace(o.unassured, ctHeldUnassured, unassuredPlaced)
	update(o.unassured)
	e.label(unassuredPlaced)
	remove(o.assured, ctHeldAssured)
}
