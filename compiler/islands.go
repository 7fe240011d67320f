package compiler

import (
	"fmt"
	"math"

	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/artifact"
)

// maxJump is the farthest a jump's 16-bit offset reaches, in raw
// instruction slots.
const maxJump = math.MaxInt16

// Jumps longer than farJump get islands. An island goes at most
// islandReach from the first far jump it serves, with at most maxIslands
// more islands of the same block after it, so every jump sent to an island
// is then no longer far; the margin to maxJump absorbs islands inserted
// later between a jump and its target.
const (
	farJump     = maxJump - 1024
	islandReach = maxJump - 2048
	maxIslands  = 1000
)

// routeFarJumps makes every jump reach its target with a 16-bit offset. A
// jump that cannot is sent to an island, an unconditional jump on to its
// target, placed within reach where no path falls into it: after an
// unconditional jump or an exit, or behind a jump over the islands. Jumps
// to the same target share an island; islands chain for longer distances.
//
// The alternative, the 32-bit unconditional jump (gotol) of BPF ISA v4,
// needs Linux 6.6, and a conditional jump has no 32-bit form at all.
func (e *emitter) routeFarJumps() error {
	if len(e.pending) != 0 {
		panic(fmt.Sprintf("compiler: labels %v name no instruction", e.pending))
	}
	for round := 0; ; round++ {
		raw := e.rawOffsets()
		first := -1
		for i := range e.insns {
			if e.jumpDistance(i, raw) > farJump {
				first = i
				break
			}
		}
		if first < 0 {
			return nil
		}
		if round > len(e.insns) {
			return fmt.Errorf("%s: %w: no place for a jump island", artifact.SourceInFile(e.file, fmt.Sprint(e.insns[first].Source())), errJumpTooFar)
		}
		at, fallsIn := e.islandSpot(first, raw)
		e.insertIslands(first, at, fallsIn, raw)
	}
}

// rawOffsets returns each instruction's offset in instruction slots (a
// dword load takes two), and the program's length last.
func (e *emitter) rawOffsets() []int {
	raw := make([]int, len(e.insns)+1)
	for i := range e.insns {
		raw[i+1] = raw[i] + int(e.insns[i].Size()/asm.InstructionSize)
	}
	return raw
}

// jumpDistance is the offset jump i needs to reach its label; 0 for an
// instruction that is not a jump to a label.
func (e *emitter) jumpDistance(i int, raw []int) int {
	ins := &e.insns[i]
	op := ins.OpCode
	if !op.Class().IsJump() || op.JumpOp() == asm.Call || op.JumpOp() == asm.Exit || ins.Reference() == "" {
		return 0
	}
	target, ok := e.labels[ins.Reference()]
	if !ok || target < 0 {
		panic(fmt.Sprintf("compiler: jump to unknown label %q", ins.Reference()))
	}
	return raw[target] - raw[i] - 1
}

// islandSpot picks where the islands for the far jump first go: the last
// instruction index within islandReach that no path falls into, or, when
// there is none in the farther half of that reach, the last index within
// it (fallsIn: the islands need a jump over them). Either way an island
// gets at least half a reach closer to the target.
func (e *emitter) islandSpot(first int, raw []int) (at int, fallsIn bool) {
	reach := first + 1
	for reach+1 < len(e.insns) && raw[reach+1]-raw[first]-1 <= islandReach {
		reach++
	}
	for q := reach; q > first+1 && raw[q]-raw[first] > islandReach/2; q-- {
		prev := e.insns[q-1].OpCode
		if prev.Class().IsJump() && (prev.JumpOp() == asm.Exit || prev.JumpOp() == asm.Ja) {
			return q, false
		}
	}
	return reach, true
}

// insertIslands puts before instruction at one island for each target (up
// to maxIslands) of the far jumps from first up to at, and sends those
// jumps there.
func (e *emitter) insertIslands(first, at int, fallsIn bool, raw []int) {
	var targets []string
	islandOf := map[string]string{}
	for j := first; j < at; j++ {
		if e.jumpDistance(j, raw) <= farJump {
			continue
		}
		t := e.insns[j].Reference()
		if e.labels[t] <= at {
			continue
		}
		if _, ok := islandOf[t]; !ok {
			if len(targets) == maxIslands {
				continue
			}
			islandOf[t] = e.newLabel("island")
			targets = append(targets, t)
		}
		e.insns[j] = e.insns[j].WithReference(islandOf[t])
	}
	var block asm.Instructions
	over := ""
	if fallsIn {
		over = e.newLabel("island.over")
		block = append(block, asm.Ja.Label(over).WithSource(asm.Comment("jump island: over the islands")))
	}
	islandIndex := map[string]int{}
	for _, t := range targets {
		islandIndex[islandOf[t]] = at + len(block)
		block = append(block, asm.Ja.Label(t).WithSource(asm.Comment("jump island: on to "+t)))
	}
	for l, i := range e.labels {
		if i >= at {
			e.labels[l] = i + len(block)
		}
	}
	for l, i := range islandIndex {
		e.labels[l] = i
	}
	if over != "" {
		e.labels[over] = at + len(block)
	}
	e.insns = append(e.insns[:at], append(block, e.insns[at:]...)...)
}
