package compiler

import (
	"fmt"

	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/artifact"
)

// Labels of the epilogue's entries, one per verdict.
func verdictLabel(v artifact.Action) string { return "verdict." + v.String() }

const labelCount = "epilogue.count"

// emitDecision ends a path: it records the counter slot and jumps to the
// epilogue of verdict v.
func emitDecision(e *emitter, slot int, v artifact.Action) {
	e.emit(storeImm(slotKey, int32(slot)), asm.Ja.Label(verdictLabel(v)))
}

// emitRedirect ends a path with a redirect to the target of device-map
// key target.
func emitRedirect(e *emitter, slot, target int) {
	e.emit(storeImm(slotTarget, int32(target)))
	emitDecision(e, slot, artifact.ActionRedirect)
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
// verdict returned. Per-CPU counters need no atomic add. A program with
// redirect rules returns what bpf_redirect_map returns for a redirect:
// XDP_REDIRECT, or XDP_DROP when the target is not in the device map.
//
// A program that tracks connections commits the packets it passes or
// redirects first (emitCommit), then counts them; the commit keeps
// rVerdict.
func emitEpilogue(e *emitter, prog *Program) {
	verdicts := []artifact.Action{artifact.ActionDrop, artifact.ActionPass}
	if prog.Redirect != nil {
		verdicts = append(verdicts, artifact.ActionRedirect)
	}
	if ct := prog.Conntrack; ct != nil {
		// The verdicts that commit last, so pass falls into the commit.
		verdicts = []artifact.Action{artifact.ActionDrop}
		if prog.Redirect != nil {
			verdicts = append(verdicts, artifact.ActionRedirect)
		}
		verdicts = append(verdicts, artifact.ActionPass)
	}
	for _, v := range verdicts {
		e.label(verdictLabel(v))
		e.at("epilogue: verdict %s", v)
		next := labelCount
		if prog.Conntrack != nil && v != artifact.ActionDrop {
			next = labelCommit
			if prog.NAT != nil {
				next = labelNATDecide
			}
		}
		e.emit(asm.Mov.Imm(rVerdict, int32(v)), asm.Ja.Label(next))
	}
	if ct := prog.Conntrack; ct != nil && prog.NAT != nil {
		emitNATDecide(e, prog)
		emitCommit(e, commitOptions{next: labelNATAlias, assured: ct.Assured.Name, unassured: ct.Unassured.Name, timeouts: ct.Timeouts, nat: true})
		emitNATAlias(e, prog)
		emitNATRewrite(e, prog.NAT)
		emitNATForward(e)
	} else if ct != nil {
		emitCommit(e, commitOptions{next: labelCount, assured: ct.Assured.Name, unassured: ct.Unassured.Name, timeouts: ct.Timeouts})
	}
	e.label(labelCount)
	e.at("epilogue: count the decision and return its verdict")
	out := "epilogue.return"
	emitCounterAdd(e, out)
	e.label(out)
	if prog.NAT != nil {
		ret := "epilogue.not_forwarded"
		e.at("epilogue: a packet NAT forwarded by the FIB (bpf_redirect)")
		e.emit(
			asm.JNE.Imm(rVerdict, natForwarded, ret),
			asm.Mov.Imm(asm.R0, int32(artifact.ActionRedirect)),
			asm.Return(),
		)
		e.label(ret)
	}
	if prog.Redirect != nil {
		ret := "epilogue.verdict"
		e.emit(asm.JNE.Imm(rVerdict, int32(artifact.ActionRedirect), ret))
		e.at("epilogue: redirect to the interface of the device-map key")
		e.emit(
			asm.LoadMapPtr(asm.R1, 0).WithReference(prog.Redirect.Name),
			load(asm.R2, slotTarget),
			asm.Mov.Imm(asm.R3, int32(artifact.ActionDrop)),
			asm.FnRedirectMap.Call(),
			asm.Return(),
		)
		e.label(ret)
	}
	e.emit(asm.Mov.Reg(asm.R0, rVerdict), asm.Return())
}

// ruleSource is the source comment of a rule's instructions.
func ruleSource(r *Rule, what string) string {
	return fmt.Sprintf("%s rule %q: %s", r.Pos, r.Name, what)
}
