package compiler

import (
	"fmt"

	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/artifact"
)

// Classifier emits the code that decides a parsed packet's fate from the IR.
// The code starts at labelClassify with the metadata area filled; every path
// must end in emitDecision (count rules count with emitCount and go on).
// Strategies differ in how they find the first matching rule, never in which
// rule that is.
type Classifier interface {
	// Name is the strategy's name in Options.Strategy.
	Name() string
	Emit(e *emitter, prog *Program)
}

// classifiers are the strategies Options.Strategy may name; "" is the
// default, skipping.
var classifiers = map[string]Classifier{
	"":         linear{skipShared: true},
	"skipping": linear{skipShared: true},
	"linear":   linear{},
}

func classifierFor(strategy string) (Classifier, error) {
	c, ok := classifiers[strategy]
	if !ok {
		return nil, fmt.Errorf("unknown classifier strategy %q (known: skipping, linear)", strategy)
	}
	return c, nil
}

// linear tries the rules in policy order: each test of a rule either falls
// through (pass) or jumps to a later rule. Rules keep no state in
// registers: each test reloads its field from the metadata area, so every
// rule starts in the same verifier state.
//
// With skipShared, a failing test jumps past every following rule that
// holds the same test, since none of them can match either: a packet that
// is not TCP leaves a block of TCP rules at its first test. Without it, a
// failing test jumps to the next rule.
type linear struct{ skipShared bool }

func (l linear) Name() string {
	if l.skipShared {
		return "skipping"
	}
	return "linear"
}

func (l linear) Emit(e *emitter, prog *Program) {
	e.label(labelClassify)
	n := len(prog.Rules)
	// starts[i] is rule i's first instruction; starts[n] the default's.
	starts := make([]string, n+1)
	for i := range starts {
		starts[i] = e.newLabel(fmt.Sprintf("rule%d", i))
	}
	for i := range prog.Rules {
		r := &prog.Rules[i]
		e.label(starts[i])
		for j := range r.Tests {
			t := &r.Tests[j]
			next := i + 1
			if l.skipShared {
				for next < n && prog.Rules[next].HasTest(t) {
					next++
				}
			}
			e.at("%s", ruleSource(r, t.Field.String()))
			emitTest(e, t, starts[next])
		}
		e.at("%s", ruleSource(r, r.Kind()))
		switch {
		case r.Terminal && r.Verdict == artifact.ActionRedirect:
			emitRedirect(e, r.Slot, r.Target)
		case r.Terminal:
			emitDecision(e, r.Slot, r.Verdict)
		default:
			emitCount(e, r.Slot)
		}
	}
	e.label(starts[n])
	emitDefault(e, prog)
}

// emitTest emits code that falls through when the packet passes t and
// jumps to fail otherwise. It uses r0-r5 and keeps nothing in them.
func emitTest(e *emitter, t *Test, fail string) {
	switch t.Op {
	case OpEq, OpRange:
		emitRangeTest(e, t, fail)
	case OpFragment:
		emitFragmentTest(e, t, fail)
	case OpFlags:
		emitFlagsTest(e, t, fail)
	case OpPrefix:
		emitPrefixTest(e, t, fail)
	case OpMAC:
		emitMACTest(e, t, fail)
	case OpSetLookup:
		emitSetTest(e, t, fail)
	case OpCTState:
		emitCTStateTest(e, t, fail)
	default:
		panic(fmt.Sprintf("compiler: test %s has no emitter", t.Op))
	}
}

// alwaysPresent reports whether every well-formed packet has scalar field f
// (ether_type); other fields hold absent when missing.
func alwaysPresent(t *Test) bool { return fieldSlot(t.Field) == slotEtherType }

// emitRangeTest compares a scalar field with sorted disjoint ranges.
// Ranges are sorted, so a value below range k is in none of ranges k...
func emitRangeTest(e *emitter, t *Test, fail string) {
	e.emit(load(asm.R0, fieldSlot(t.Field)))
	vals := t.Values
	if !t.Negate {
		// absent is above every range: the comparisons reject it.
		if len(vals) == 1 {
			r := vals[0]
			if r.Lo == r.Hi {
				e.emit(asm.JNE.Imm32(asm.R0, imm(r.Lo), fail))
				return
			}
			if r.Lo > 0 {
				e.emit(asm.JLT.Imm32(asm.R0, imm(r.Lo), fail))
			}
			e.emit(asm.JGT.Imm32(asm.R0, imm(r.Hi), fail))
			return
		}
		ok := e.newLabel("test.in")
		for _, r := range vals {
			if r.Lo == r.Hi {
				e.emit(asm.JEq.Imm32(asm.R0, imm(r.Lo), ok))
				continue
			}
			if r.Lo > 0 {
				e.emit(asm.JLT.Imm32(asm.R0, imm(r.Lo), fail))
			}
			e.emit(asm.JLE.Imm32(asm.R0, imm(r.Hi), ok))
		}
		e.emit(asm.Ja.Label(fail))
		e.label(ok)
		return
	}
	if !alwaysPresent(t) {
		e.emit(asm.JEq.Imm32(asm.R0, absent, fail))
	}
	out := e.newLabel("test.not_in")
	for _, r := range vals {
		if r.Lo == r.Hi {
			e.emit(asm.JEq.Imm32(asm.R0, imm(r.Lo), fail))
			continue
		}
		if r.Lo > 0 {
			e.emit(asm.JLT.Imm32(asm.R0, imm(r.Lo), out))
		}
		e.emit(asm.JLE.Imm32(asm.R0, imm(r.Hi), fail))
	}
	e.label(out)
}

// imm is v as a 32-bit immediate; JMP32 compares use its bits unsigned.
func imm(v uint32) int32 { return int32(v) }

// emitFragmentTest: the slot holds one FragmentMask bit, or fragAbsent,
// which no mask has; a negated test is the positive one with the other
// classes.
func emitFragmentTest(e *emitter, t *Test, fail string) {
	mask := uint8(t.Fragments) & 7
	if t.Negate {
		mask = 7 &^ mask
	}
	e.emit(
		load(asm.R0, slotFragment),
		asm.And.Imm32(asm.R0, int32(mask)),
		asm.JEq.Imm32(asm.R0, 0, fail),
	)
}

// emitCTStateTest: the slot holds 1<<status, the untracked packet's bit 0,
// which no mask has.
func emitCTStateTest(e *emitter, t *Test, fail string) {
	e.emit(
		load(asm.R0, slotCTStatus),
		asm.And.Imm32(asm.R0, int32(t.CTStates)),
		asm.JEq.Imm32(asm.R0, 0, fail),
	)
}

// emitFlagsTest: flags&(Set|Clear) == Set, after a presence check.
func emitFlagsTest(e *emitter, t *Test, fail string) {
	cmp := asm.JNE
	if t.Negate {
		cmp = asm.JEq
	}
	e.emit(
		load(asm.R0, slotTCPFlags),
		asm.JEq.Imm32(asm.R0, absent, fail),
		asm.And.Imm32(asm.R0, int32(t.Flags.Set|t.Flags.Clear)),
		cmp.Imm32(asm.R0, int32(t.Flags.Set), fail),
	)
}
