package artifact

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/asm"
)

// Disassemble renders the program one instruction per line, with a label
// (L<offset>) on every jump target, the target after every jump and each
// run of instructions headed by their source comment. It holds nothing
// host-dependent (map loads show the map's name, not a descriptor).
func (a *Artifact) Disassemble() string { return a.DisassembleIn("") }

// DisassembleIn is Disassemble with file, the policy file the program was
// compiled from, named in every source comment that starts with a
// position (SourceInFile).
func (a *Artifact) DisassembleIn(file string) string {
	type line struct {
		offset int
		ins    asm.Instruction
	}
	var lines []line
	targets := map[int]bool{}
	iter := a.Instructions.Iterate()
	for iter.Next() {
		off := int(iter.Offset)
		lines = append(lines, line{off, *iter.Ins})
		if t, ok := jumpTarget(iter.Ins, off); ok {
			targets[t] = true
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n", a.Program)
	var source string
	for _, l := range lines {
		if targets[l.offset] {
			fmt.Fprintf(&b, "L%d:\n", l.offset)
		}
		if src := l.ins.Source(); src != nil && src.String() != source {
			source = src.String()
			fmt.Fprintf(&b, "\t; %s\n", SourceInFile(file, source))
		}
		text := formatInstruction(l.ins)
		if t, ok := jumpTarget(&l.ins, l.offset); ok {
			text += fmt.Sprintf(" -> L%d", t)
		}
		fmt.Fprintf(&b, "\t%4d: %s\n", l.offset, text)
	}
	return b.String()
}

// jumpTarget is the raw offset a jump at offset off goes to.
func jumpTarget(ins *asm.Instruction, off int) (int, bool) {
	op := ins.OpCode
	if !op.Class().IsJump() || op.JumpOp() == asm.Call || op.JumpOp() == asm.Exit {
		return 0, false
	}
	if op.Class() == asm.Jump32Class && op.JumpOp() == asm.Ja {
		return off + 1 + int(ins.Constant), true
	}
	return off + 1 + int(ins.Offset), true
}

// formatInstruction is cilium/ebpf's rendering, with map loads by name.
func formatInstruction(ins asm.Instruction) string {
	if ins.IsLoadFromMap() {
		return fmt.Sprintf("LoadMapPtr dst: %s map: %s", ins.Dst, ins.Reference())
	}
	return fmt.Sprint(ins)
}
