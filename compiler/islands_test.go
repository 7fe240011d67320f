package compiler

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
)

// follow returns the index of the instruction a jump at i lands on after
// every island it passes through, and how many islands that took.
func follow(t *testing.T, insns asm.Instructions, i int) (int, int) {
	t.Helper()
	raw := make([]int, len(insns)+1)
	at := map[int]int{}
	for k := range insns {
		at[raw[k]] = k
		raw[k+1] = raw[k] + int(insns[k].Size()/asm.InstructionSize)
	}
	hops := 0
	for {
		next, ok := at[raw[i]+int(insns[i].Offset)+1]
		if !ok {
			t.Fatalf("jump at %d lands inside an instruction", i)
		}
		src := fmt.Sprint(insns[next].Source())
		if !strings.HasPrefix(src, "jump island: on to") {
			return next, hops
		}
		i, hops = next, hops+1
	}
}

// TestRouteFarJumps builds programs whose jumps reach further than a
// 16-bit offset, with and without places no path falls into, and checks
// every jump still lands where it pointed, through islands, that paths
// falling through never enter an island, and that no 32-bit jump is left.
func TestRouteFarJumps(t *testing.T) {
	for _, barriers := range []bool{true, false} {
		t.Run(fmt.Sprintf("barriers=%v", barriers), func(t *testing.T) {
			e := newEmitter()
			e.at("start")
			e.emit(asm.JEq.Imm(asm.R1, 1, "far"), asm.JEq.Imm(asm.R1, 2, "farther"), asm.Ja.Label("far"))
			for i := range 100_000 {
				e.at("filler %d", i)
				if barriers && i%1000 == 999 {
					next := e.newLabel("next")
					e.emit(asm.Ja.Label(next))
					e.label(next)
					continue
				}
				e.emit(asm.Mov.Imm(asm.R2, int32(i)))
			}
			e.label("far")
			e.at("far target")
			e.emit(asm.Mov.Imm(asm.R0, 1))
			for i := range 40_000 {
				e.at("more %d", i)
				e.emit(asm.Mov.Imm(asm.R2, int32(i)))
			}
			e.label("farther")
			e.at("farther target")
			e.emit(asm.Mov.Imm(asm.R0, 2), asm.Return())
			if err := e.routeFarJumps(); err != nil {
				t.Fatal(err)
			}
			insns, err := e.resolveJumps()
			if err != nil {
				t.Fatal(err)
			}
			for i, ins := range insns {
				if ins.OpCode.Class() == asm.Jump32Class && ins.OpCode.JumpOp() == asm.Ja {
					t.Fatalf("instruction %d is a 32-bit jump (gotol)", i)
				}
				src := fmt.Sprint(ins.Source())
				// The filler runs straight on: the instruction after a
				// filler one is a filler one, an island jump over, or a target.
				if strings.HasPrefix(src, "filler") && i+1 < len(insns) && ins.OpCode.JumpOp() != asm.Ja {
					if next := fmt.Sprint(insns[i+1].Source()); strings.HasPrefix(next, "jump island: on to") {
						t.Fatalf("filler instruction %d falls into an island", i)
					}
				}
			}
			for i, want := range map[int]string{0: "far target", 1: "farther target", 2: "far target"} {
				got, hops := follow(t, insns, i)
				if src := fmt.Sprint(insns[got].Source()); src != want {
					t.Errorf("jump %d lands on %q, want %q", i, src, want)
				}
				if hops == 0 {
					t.Errorf("jump %d reached its far target without an island", i)
				}
			}
		})
	}
}
