package compiler

import (
	"errors"
	"fmt"
	"math"

	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/artifact"
)

// emitter accumulates instructions with symbolic jump labels and a source
// comment on every instruction. resolveJumps turns labels into offsets.
type emitter struct {
	insns asm.Instructions
	// labels maps a label to the index of the instruction it names.
	labels map[string]int
	// pending labels name the next emitted instruction.
	pending []string
	source  asm.Comment
	fresh   int
	// file names the policy file in error messages.
	file string
}

func newEmitter() *emitter {
	return &emitter{labels: map[string]int{}}
}

// at sets the source comment of the instructions emitted from now on.
func (e *emitter) at(format string, args ...any) {
	e.source = asm.Comment(fmt.Sprintf(format, args...))
}

// newLabel returns a label not used before, named after what it marks.
func (e *emitter) newLabel(what string) string {
	e.fresh++
	return fmt.Sprintf("%s.%d", what, e.fresh)
}

// label names the next emitted instruction.
func (e *emitter) label(name string) {
	if _, ok := e.labels[name]; ok {
		panic(fmt.Sprintf("compiler: label %q bound twice", name))
	}
	e.labels[name] = -1
	e.pending = append(e.pending, name)
}

// emit appends instructions, tagging each with the current source comment.
func (e *emitter) emit(insns ...asm.Instruction) {
	for _, ins := range insns {
		for _, l := range e.pending {
			e.labels[l] = len(e.insns)
		}
		e.pending = e.pending[:0]
		e.insns = append(e.insns, ins.WithSource(e.source))
	}
}

// errJumpTooFar is a conditional jump whose target is further than its
// 16-bit offset reaches.
var errJumpTooFar = errors.New("too many instructions to jump over")

// resolveJumps replaces every jump's label by its offset and drops the
// label, so the instructions stand alone. Run after routeFarJumps, every
// offset fits in 16 bits.
func (e *emitter) resolveJumps() (asm.Instructions, error) {
	if len(e.pending) != 0 {
		panic(fmt.Sprintf("compiler: labels %v name no instruction", e.pending))
	}
	raw := e.rawOffsets()
	out := make(asm.Instructions, len(e.insns))
	for i, ins := range e.insns {
		if ins.Reference() == "" || !ins.OpCode.Class().IsJump() {
			out[i] = ins
			continue
		}
		dist := e.jumpDistance(i, raw)
		if dist < math.MinInt16 || dist > math.MaxInt16 {
			return nil, fmt.Errorf("%s: %w: the jump needs an offset of %d", artifact.SourceInFile(e.file, fmt.Sprint(ins.Source())), errJumpTooFar, dist)
		}
		ins = ins.WithReference("")
		ins.Offset = int16(dist)
		out[i] = ins
	}
	return out, nil
}

// removeUnreachable drops instructions no path from the entry reaches (the
// code after a catch-all rule, a verdict no rule decides): the verifier
// rejects unreachable instructions.
func (e *emitter) removeUnreachable() {
	if len(e.pending) != 0 {
		panic(fmt.Sprintf("compiler: labels %v name no instruction", e.pending))
	}
	reached := make([]bool, len(e.insns))
	work := []int{0}
	for len(work) > 0 {
		i := work[len(work)-1]
		work = work[:len(work)-1]
		if i >= len(e.insns) || reached[i] {
			continue
		}
		reached[i] = true
		ins := &e.insns[i]
		op := ins.OpCode
		if !op.Class().IsJump() || op.JumpOp() == asm.Call {
			work = append(work, i+1)
			continue
		}
		if op.JumpOp() == asm.Exit {
			continue
		}
		target, ok := e.labels[ins.Reference()]
		if !ok || target < 0 {
			panic(fmt.Sprintf("compiler: jump to unknown label %q", ins.Reference()))
		}
		work = append(work, target)
		if op.JumpOp() != asm.Ja {
			work = append(work, i+1)
		}
	}
	e.keep(reached)
}

// removeStores drops the stores to the stack at the given frame-pointer
// offsets: metadata no rule reads (see unreadStores).
func (e *emitter) removeStores(dead map[int16]bool) {
	kept := make([]bool, len(e.insns))
	for i := range e.insns {
		ins := &e.insns[i]
		cls := ins.OpCode.Class()
		isStore := (cls == asm.StClass || cls == asm.StXClass) && ins.OpCode.Mode() == asm.MemMode
		kept[i] = !(isStore && ins.Dst == asm.R10 && dead[ins.Offset])
	}
	e.keep(kept)
}

// removeJumpsToNext drops unconditional jumps to the instruction right after
// them (a rule or verdict that ends where its target begins). Dropping one
// can make the jump before it one too, so it repeats until none is left.
func (e *emitter) removeJumpsToNext() {
	for {
		kept := make([]bool, len(e.insns))
		dropped := false
		for i := range e.insns {
			ins := &e.insns[i]
			kept[i] = true
			if ins.OpCode.JumpOp() == asm.Ja && ins.OpCode.Class().IsJump() && e.labels[ins.Reference()] == i+1 {
				kept[i], dropped = false, true
			}
		}
		if !dropped {
			return
		}
		e.keep(kept)
	}
}

// keep removes the instructions not marked in kept; a label of a removed
// instruction moves to the next kept one.
func (e *emitter) keep(kept []bool) {
	newIndex := make([]int, len(e.insns)+1)
	out := e.insns[:0]
	for i, ins := range e.insns {
		newIndex[i] = len(out)
		if kept[i] {
			out = append(out, ins)
		}
	}
	newIndex[len(e.insns)] = len(out)
	e.insns = out
	for l, i := range e.labels {
		e.labels[l] = newIndex[i]
	}
}
