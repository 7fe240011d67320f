package compiler

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
)

// Labels of the epilogue's entries, one per verdict.
func verdictLabel(v Verdict) string { return "verdict." + v.String() }

const labelCount = "epilogue.count"

// emitDecision ends a path: it records the counter slot and jumps to the
// epilogue of verdict v.
func emitDecision(e *emitter, slot int, v Verdict) {
	e.emit(storeImm(slotKey, int32(slot)), asm.Ja.Label(verdictLabel(v)))
}

// emitMalformed emits the target of every parser failure.
func emitMalformed(e *emitter, prog *Program) {
	e.label(labelMalformed)
	e.at("malformed: %s, slot %d", prog.Malformed, prog.MalformedSlot)
	emitDecision(e, prog.MalformedSlot, prog.Malformed)
}

// emitDefault emits the decision of packets no terminal rule matched.
func emitDefault(e *emitter, prog *Program) {
	e.at("default: %s, slot %d", prog.Default, prog.DefaultSlot)
	emitDecision(e, prog.DefaultSlot, prog.Default)
}

// emitCounterAdd adds the packet and its bytes to the counter whose key is in
// slotKey; a missing slot (impossible with the map the artifact describes)
// is skipped, jumping to done.
func emitCounterAdd(e *emitter, done string) {
	e.emit(
		asm.LoadMapPtr(asm.R1, 0).WithReference(CounterMap),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(slotKey)),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, done),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		load(asm.R2, slotFrameLen),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
	)
}

// emitCount counts a matching count rule in place; the code falls through.
func emitCount(e *emitter, slot int) {
	done := e.newLabel("count.done")
	e.emit(storeImm(slotKey, int32(slot)))
	emitCounterAdd(e, done)
	e.label(done)
}

// emitEpilogue emits the shared end of every decision: one entry per verdict
// loads it into rVerdict, then the counter of slotKey is bumped and the
// verdict returned. Per-CPU counters need no atomic add.
func emitEpilogue(e *emitter) {
	for _, v := range []Verdict{VerdictDrop, VerdictPass} {
		e.label(verdictLabel(v))
		e.at("epilogue: verdict %s", v)
		e.emit(asm.Mov.Imm(rVerdict, int32(v)), asm.Ja.Label(labelCount))
	}
	e.label(labelCount)
	e.at("epilogue: count the decision and return its verdict")
	out := "epilogue.return"
	emitCounterAdd(e, out)
	e.label(out)
	e.emit(asm.Mov.Reg(asm.R0, rVerdict), asm.Return())
}

// ruleSource is the source comment of a rule's instructions.
func ruleSource(r *Rule, what string) string {
	return fmt.Sprintf("%s rule %q: %s", r.Pos, r.Name, what)
}
