package compiler

import (
	"encoding/binary"
	"net/netip"

	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/policy"
)

// Addresses are compared as the u32 words a little-endian load of the packet
// bytes gives, against constants built the same way from the prefix bytes:
// no byte swapping at run time.

// prefixWord is word i of p's address and its mask (both as little-endian
// loads of network-order bytes); ok is false past the prefix length.
func prefixWord(p netip.Prefix, i int) (val, mask uint32, ok bool) {
	bits := p.Bits() - 32*i
	if bits <= 0 {
		return 0, 0, false
	}
	b := p.Addr().AsSlice()
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], ^uint32(0)<<(32-min(bits, 32)))
	mask = binary.LittleEndian.Uint32(m[:])
	val = binary.LittleEndian.Uint32(b[4*i:4*i+4]) & mask
	return val, mask, true
}

// emitPrefixTest: the address lies in one of the prefixes of its own
// family. A packet of a family the list has no prefix of, or without
// addresses, fails, negated or not.
func emitPrefixTest(e *emitter, t *Test, fail string) {
	var v4, v6 []netip.Prefix
	for _, p := range t.Prefixes {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	pass := e.newLabel("test.addr_ok")
	// in: where a member goes; out: where a non-member goes.
	in, out := pass, fail
	if t.Negate {
		in, out = fail, pass
	}
	e.emit(load(asm.R0, slotFamily))
	switch {
	case len(v4) > 0 && len(v6) > 0:
		isV4 := e.newLabel("test.addr_v4")
		e.emit(
			asm.JEq.Imm32(asm.R0, 4, isV4),
			asm.JNE.Imm32(asm.R0, 6, fail),
		)
		emitPrefixes(e, t.Field, v6, in, out)
		e.label(isV4)
		emitPrefixes(e, t.Field, v4, in, out)
	case len(v4) > 0:
		e.emit(asm.JNE.Imm32(asm.R0, 4, fail))
		emitPrefixes(e, t.Field, v4, in, out)
	default:
		e.emit(asm.JNE.Imm32(asm.R0, 6, fail))
		emitPrefixes(e, t.Field, v6, in, out)
	}
	e.label(pass)
}

// emitPrefixes jumps to in when the address is in one of ps (all of one
// family), else to out.
func emitPrefixes(e *emitter, f policy.Field, ps []netip.Prefix, in, out string) {
	for _, p := range ps {
		if p.Bits() == 0 {
			e.emit(asm.Ja.Label(in))
			return
		}
		next := e.newLabel("test.prefix_next")
		words := (p.Bits() + 31) / 32
		for i := 0; i < words; i++ {
			val, mask, _ := prefixWord(p, i)
			e.emit(load(asm.R1, addrWordSlot(f, i)))
			if mask != ^uint32(0) {
				e.emit(asm.And.Imm32(asm.R1, int32(mask)))
			}
			if i == words-1 {
				e.emit(asm.JEq.Imm32(asm.R1, int32(val), in))
			} else {
				e.emit(asm.JNE.Imm32(asm.R1, int32(val), next))
			}
		}
		e.label(next)
	}
	e.emit(asm.Ja.Label(out))
}

// emitMACTest compares the destination (frame bytes 0..5) or source (6..11)
// MAC, copied to macArea, as a u32 and a u16 word: destination low word at
// macArea, high at +4; source low half-word at +6, high word at +8.
func emitMACTest(e *emitter, t *Test, fail string) {
	pass := e.newLabel("test.mac_ok")
	in, out := pass, fail
	if t.Negate {
		in, out = fail, pass
	}
	for _, m := range t.MACs {
		next := e.newLabel("test.mac_next")
		var first, second asm.Instruction
		var c1, c2 uint32
		if t.Field == policy.FieldDstMAC {
			first = asm.LoadMem(asm.R1, asm.R10, macArea, asm.Word)
			c1 = binary.LittleEndian.Uint32(m[0:4])
			second = asm.LoadMem(asm.R1, asm.R10, macArea+4, asm.Half)
			c2 = uint32(binary.LittleEndian.Uint16(m[4:6]))
		} else {
			first = asm.LoadMem(asm.R1, asm.R10, macArea+6, asm.Half)
			c1 = uint32(binary.LittleEndian.Uint16(m[0:2]))
			second = asm.LoadMem(asm.R1, asm.R10, macArea+8, asm.Word)
			c2 = binary.LittleEndian.Uint32(m[2:6])
		}
		e.emit(
			first,
			asm.JNE.Imm32(asm.R1, int32(c1), next),
			second,
			asm.JEq.Imm32(asm.R1, int32(c2), in),
		)
		e.label(next)
	}
	e.emit(asm.Ja.Label(out))
	e.label(pass)
}

// emitSetTest looks the field up in the set's map: a non-NULL value is
// membership. A cidr set has one trie per family; a port set is keyed by
// the low half of the port slot (the port in host order). Sets are never
// negated: the language has no negated set, and a negated address is a
// single prefix, which moveLongListsToMaps leaves inline.
func emitSetTest(e *emitter, t *Test, fail string) {
	if t.Negate {
		panic("compiler: a set lookup cannot be negated")
	}
	lookup := func(m *artifact.Map, key int16) {
		e.emit(
			asm.LoadMapPtr(asm.R1, 0).WithReference(m.Name),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, int32(key)),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, fail),
		)
	}
	s := t.Set
	switch t.Field {
	case policy.FieldSrc, policy.FieldDst:
		// A family without a trie (an implicit set holds only the
		// families of its prefixes) fails without a lookup.
		pass, isV4 := e.newLabel("test.set_ok"), e.newLabel("test.set_v4")
		e.emit(
			load(asm.R0, slotFamily),
			asm.JEq.Imm32(asm.R0, 4, isV4),
			asm.JNE.Imm32(asm.R0, 6, fail),
		)
		if s.V6 != nil {
			lookup(s.V6, lpmKey(t.Field))
			e.emit(asm.Ja.Label(pass))
		} else {
			e.emit(asm.Ja.Label(fail))
		}
		e.label(isV4)
		if s.V4 != nil {
			lookup(s.V4, lpmKey(t.Field))
		} else {
			e.emit(asm.Ja.Label(fail))
		}
		e.label(pass)
	case policy.FieldSrcPort, policy.FieldDstPort:
		slot := fieldSlot(t.Field)
		e.emit(
			load(asm.R0, slot),
			asm.JEq.Imm32(asm.R0, absent, fail),
		)
		lookup(s.Map, slot)
	case policy.FieldSrcMAC:
		lookup(s.Map, macArea+6)
	case policy.FieldDstMAC:
		lookup(s.Map, macArea)
	default:
		panic("compiler: no set lookup for field " + t.Field.String())
	}
}
