package compiler

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
)

// TestCheckPortable feeds checkPortable one instruction of each kind Linux
// 6.1 refuses or verifies differently, and the forms the compiler uses.
func TestCheckPortable(t *testing.T) {
	swap := asm.HostTo(asm.BE, asm.R1, asm.Half)
	kfunc := asm.Instruction{OpCode: asm.OpCode(asm.JumpClass).SetJumpOp(asm.Call), Src: asm.PseudoKfuncCall, Constant: 1}
	for _, c := range []struct {
		name  string
		insns asm.Instructions
		want  string // "" when portable
	}{
		{"masked swap", asm.Instructions{swap, asm.And.Imm(asm.R1, 0xffff), asm.Return()}, ""},
		{"swap masked narrower", asm.Instructions{swap, asm.And.Imm(asm.R1, 0x0fff), asm.Return()}, ""},
		{"known helpers", asm.Instructions{asm.FnMapLookupElem.Call(), asm.FnRedirectMap.Call(), asm.Return()}, ""},
		{"connection tracking helpers", asm.Instructions{asm.FnKtimeGetNs.Call(), asm.FnMapUpdateElem.Call(), asm.FnMapDeleteElem.Call(),
			asm.FnSkbPullData.Call(), asm.Return()}, ""},
		{"16-bit jump", asm.Instructions{asm.Ja.Label("x"), asm.Return().WithSymbol("x")}, ""},
		{"unmasked swap", asm.Instructions{swap, asm.Return()}, "byte swap not followed by a mask"},
		{"swap masked elsewhere", asm.Instructions{swap, asm.And.Imm(asm.R2, 0xffff), asm.Return()}, "byte swap not followed by a mask"},
		{"swap mask too wide", asm.Instructions{swap, asm.And.Imm(asm.R1, 0x1ffff), asm.Return()}, "byte swap not followed by a mask"},
		{"gotol", asm.Instructions{asm.LongJump("x"), asm.Return().WithSymbol("x")}, "gotol"},
		{"movsx", asm.Instructions{asm.MovSX8.Reg(asm.R1, asm.R2), asm.Return()}, "sign-extending move"},
		{"sdiv", asm.Instructions{asm.SDiv.Imm(asm.R1, 3), asm.Return()}, "signed division"},
		{"smod", asm.Instructions{asm.SMod.Imm32(asm.R1, 3), asm.Return()}, "signed division"},
		{"bswap", asm.Instructions{asm.BSwap(asm.R1, asm.Half), asm.Return()}, "unconditional byte swap"},
		{"ldsx", asm.Instructions{asm.LoadMemSX(asm.R1, asm.R2, 0, asm.Half), asm.Return()}, "sign-extending load"},
		{"kfunc", asm.Instructions{kfunc, asm.Return()}, "kfunc"},
		{"unknown helper", asm.Instructions{asm.FnRingbufOutput.Call(), asm.Return()}, "helper FnRingbufOutput"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := checkPortable(c.insns)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}
