package compiler

import (
	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/policy"
)

// The parser writes everything the rules read into a metadata area on the
// stack, once per packet; the rules only read it back.
//
// Every scalar is a u32 at a frame-pointer offset of 8k+4. The verifier
// tracks stores to 8-byte aligned offsets as register spills, and a spilled
// register reloaded into a rule's scratch register would carry what earlier
// comparisons taught the verifier across rules: states at rule boundaries
// would differ by path and a policy of 1,000 rules would be verified once per
// combination. A store at a misaligned offset is plain data to the verifier
// (STACK_MISC) and reloads as an unknown scalar, so every path reaches every
// rule in the same state and the rule chain is verified about once.
//
// A field the packet does not have holds absent (0xffffffff), above every
// value of every field, so a positive comparison fails on it without a
// presence check; negated tests check presence first. The fragment class
// holds a FragmentMask bit (1, 2, 4) or fragAbsent.
const (
	absent     = -1 // 0xffffffff as a 32-bit immediate
	fragAbsent = 8

	slotKey       int16 = -4 // counter key of the decision being counted
	slotFrameLen  int16 = -12
	slotEtherType int16 = -20
	slotVLAN      int16 = -28
	slotInnerVLAN int16 = -36
	slotFamily    int16 = -44 // 4, 6 or absent
	slotProto     int16 = -52
	slotTTL       int16 = -60
	slotLength    int16 = -68
	slotFragment  int16 = -76
	slotSrcPort   int16 = -84 // low half: the u16 key of port-set lookups
	slotDstPort   int16 = -92
	slotTCPFlags  int16 = -100
	slotICMPType  int16 = -108
	slotICMPCode  int16 = -116
	// Address words as loaded from the packet (network byte order in
	// memory, read as little-endian u32): word i at slotSrcAddr - 8*i.
	slotSrcAddr int16 = -124
	slotDstAddr int16 = -156

	// macArea holds frame bytes 0..11: destination then source MAC. It
	// starts at 8k+4 so the words rules compare are misaligned or narrower
	// than what was stored (both reload as unknown scalars).
	macArea int16 = -196
	// lpmKeySrc and lpmKeyDst are LPM trie keys: u32 prefix length (32 or
	// 128), then the address. An IPv4 trie reads the first 8 bytes.
	lpmKeySrc int16 = -220
	lpmKeyDst int16 = -244

	// slotCursor and slotIPEnd hold the parser's header cursor and the IP
	// packet's end (offsets from the packet start) while it walks IPv6
	// extension headers and enters layer 4; see normaliseCursor.
	slotCursor int16 = -252
	slotIPEnd  int16 = -260
	// slotTarget is the device-map key of a redirect decision.
	slotTarget int16 = -252

	// The connection tracker's slots (conntrack.go), each a u32 at 8k+4
	// like the parser's: what the tracker found before the rules and the
	// commit after the decision reads back.
	//
	// slotCTStatus holds 1<<status (conntrack.Status), so the untracked
	// packet's is bit 0, in no ct_state mask, and no value is 0.
	slotCTStatus int16 = -268
	// slotCTKind is the packet's conntrack.Kind.
	slotCTKind int16 = -276
	// slotCTClass is a TCP segment's conntrack.TCPClass.
	slotCTClass int16 = -284
	// slotCTOrder is ctSrcIsLo or ctSrcIsHi: which end of the key the
	// packet's source is.
	slotCTOrder int16 = -292
	// slotCTDir is ctOriginal or ctReply: the packet's direction relative
	// to its live entry.
	slotCTDir int16 = -300
	// slotCTEntry is the live entry's state | flags<<8.
	slotCTEntry int16 = -308
	// slotCTCreated and slotCTNow hold the live entry's creation time and
	// the packet's time (bpf_ktime_get_ns), u64s as two u32 halves, low
	// first: a u64 needs an 8-byte aligned slot, which the verifier
	// tracks as a register spill.
	slotCTCreated int16 = -316 // and -324
	slotCTNow     int16 = -332 // and -340
	// slotCTHeld says which maps hold an entry of the key, live or dead
	// (ctHeld* bits), so a commit can remove the copy it replaces.
	slotCTHeld int16 = -348
	// slotCTState is the state a commit gives the entry.
	slotCTState int16 = -356
	// ctKeyArea is the struct ct_key of the packet's flow
	// (conntrack.Key.Encode), 8-byte aligned: family and protocol at +0,
	// the ports at +4 and +6, the addresses at +8 and +24.
	ctKeyArea int16 = -400
	// ctValueArea is the struct ct_entry a commit writes
	// (conntrack.Entry.Encode), 8-byte aligned.
	ctValueArea int16 = -432
)

// lpmKeySizeV6 is the size of an LPM key area: an IPv6 trie key, whose
// first 8 bytes are the IPv4 trie key of an IPv4 address.
var lpmKeySizeV6 = int16(artifact.MapCIDRv6.Layout().KeySize)

// fieldSlot is the stack slot of a scalar field.
func fieldSlot(f policy.Field) int16 {
	switch f {
	case policy.FieldEtherType:
		return slotEtherType
	case policy.FieldVLAN:
		return slotVLAN
	case policy.FieldInnerVLAN:
		return slotInnerVLAN
	case policy.FieldProto:
		return slotProto
	case policy.FieldSrcPort:
		return slotSrcPort
	case policy.FieldDstPort:
		return slotDstPort
	case policy.FieldTCPFlags:
		return slotTCPFlags
	case policy.FieldICMPType:
		return slotICMPType
	case policy.FieldICMPCode:
		return slotICMPCode
	case policy.FieldTTL:
		return slotTTL
	case policy.FieldLength:
		return slotLength
	case policy.FieldFragment:
		return slotFragment
	}
	panic("compiler: field " + f.String() + " has no scalar slot")
}

// addrWordSlot is the slot of word i (0..3) of the source or destination address.
func addrWordSlot(f policy.Field, i int) int16 {
	base := slotSrcAddr
	if f == policy.FieldDst {
		base = slotDstAddr
	}
	return base - int16(8*i)
}

// lpmKey is the LPM key area of the source or destination address.
func lpmKey(f policy.Field) int16 {
	if f == policy.FieldDst {
		return lpmKeyDst
	}
	return lpmKeySrc
}

// initSlots are the slots the entry fills with absent before parsing: every
// field that some packet lacks, so no path leaves one unwritten.
var initSlots = []int16{
	slotVLAN, slotInnerVLAN, slotFamily, slotProto, slotTTL, slotLength,
	slotSrcPort, slotDstPort, slotTCPFlags, slotICMPType, slotICMPCode,
	slotSrcAddr, slotSrcAddr - 8, slotSrcAddr - 16, slotSrcAddr - 24,
	slotDstAddr, slotDstAddr - 8, slotDstAddr - 16, slotDstAddr - 24,
}

// Registers. r6-r9 survive helper calls; r0-r5 are scratch.
const (
	rCtx     = asm.R6 // the xdp_md context, for the whole program
	rData    = asm.R7 // packet start, while parsing
	rDataEnd = asm.R8 // packet end, while parsing
	rL3      = asm.R9 // offset of the network header, while parsing
	rVerdict = asm.R7 // the verdict, in the epilogue
)

// slotsRead returns the metadata slots prog's tests load: a scalar field's
// slot, the address family and words of address tests, the LPM key of
// cidr set lookups.
func slotsRead(prog *Program) map[int16]bool {
	read := map[int16]bool{}
	forEachTest(prog, func(_ *Rule, t *Test) {
		switch t.Field {
		case policy.FieldSrc, policy.FieldDst:
			read[slotFamily] = true
			if t.Op == OpSetLookup {
				read[lpmKey(t.Field)] = true
				return
			}
			for i := range 4 {
				read[addrWordSlot(t.Field, i)] = true
			}
		case policy.FieldSrcMAC, policy.FieldDstMAC:
			// The Ethernet header is copied before any rule runs.
		case policy.FieldCTState:
			read[slotCTStatus] = true
		default:
			read[fieldSlot(t.Field)] = true
		}
	})
	return read
}

// trackerReads are the metadata slots the connection tracker reads.
var trackerReads = []int16{
	slotFamily, slotProto, slotFragment, slotSrcPort, slotDstPort, slotTCPFlags, slotICMPType,
	slotSrcAddr, slotSrcAddr - 8, slotSrcAddr - 16, slotSrcAddr - 24,
	slotDstAddr, slotDstAddr - 8, slotDstAddr - 16, slotDstAddr - 24,
}

// unreadStores returns the stack offsets of the metadata no test of prog
// reads, nor its connection tracker: the parser's stores there, and the
// entry's defaults, are dead.
func unreadStores(prog *Program) map[int16]bool {
	read := slotsRead(prog)
	if prog.Conntrack != nil {
		for _, s := range trackerReads {
			read[s] = true
		}
	}
	if prog.NAT != nil {
		for _, s := range natReads {
			read[s] = true
		}
	}
	return deadStores(read)
}

// deadStores returns the parser's stores to metadata slots not in read.
func deadStores(read map[int16]bool) map[int16]bool {
	dead := map[int16]bool{}
	for _, s := range append([]int16{slotEtherType, slotFragment}, initSlots...) {
		if !read[s] {
			dead[s] = true
		}
	}
	for _, key := range []int16{lpmKeySrc, lpmKeyDst} {
		if read[key] {
			continue
		}
		for off := int16(0); off < lpmKeySizeV6; off += 4 {
			dead[key+off] = true
		}
	}
	return dead
}
