package compiler

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
)

// OldestKernel is the oldest Linux release whose verifier xdpc's programs
// are written for: Debian 12's 6.1 (docs/kernels.md).
const OldestKernel = "6.1"

// helperKernels are the BPF helpers generated code may call, with the
// first Linux release that has each for the program types that call it
// (XDP; bpf_skb_pull_data in the TC egress program). A helper missing
// here is not known to be on OldestKernel.
var helperKernels = map[asm.BuiltinFunc]string{
	asm.FnMapLookupElem: "3.19",
	asm.FnMapUpdateElem: "3.19",
	asm.FnMapDeleteElem: "3.19",
	asm.FnKtimeGetNs:    "4.1",
	asm.FnSkbPullData:   "4.9", // TC programs only
	asm.FnRedirectMap:   "4.14",
	asm.FnRedirect:      "4.8",  // NAT forwarding
	asm.FnFibLookup:     "4.18", // NAT forwarding
	asm.FnCsumDiff:      "4.6",  // NAT: partial checksums
}

// checkPortable returns an error naming the first instruction OldestKernel
// would refuse or verify differently from newer kernels: the BPF ISA v4
// instructions of Linux 6.6 (32-bit jumps, sign-extending moves and
// loads, signed division, unconditional byte swaps), kfunc calls, helpers
// not known on it, and byte swaps whose result is not masked (before
// 6.18, a byte swap loses the register's bounds; see be16). Every program
// the compiler emits passes it; a failure is a bug in the compiler.
func checkPortable(insns asm.Instructions) error {
	for i := range insns {
		ins := &insns[i]
		op := ins.OpCode
		why := ""
		switch {
		case op.Class() == asm.Jump32Class && op.JumpOp() == asm.Ja:
			why = "a 32-bit jump (gotol, BPF ISA v4, Linux 6.6)"
		case op.Class().IsALU() && (op.ALUOp() == asm.MovSX8 || op.ALUOp() == asm.MovSX16 || op.ALUOp() == asm.MovSX32):
			why = "a sign-extending move (BPF ISA v4, Linux 6.6)"
		case op.Class().IsALU() && (op.ALUOp() == asm.SDiv || op.ALUOp() == asm.SMod):
			why = "a signed division (BPF ISA v4, Linux 6.6)"
		case op.Class() == asm.ALU64Class && op.ALUOp() == asm.Swap:
			why = "an unconditional byte swap (BPF ISA v4, Linux 6.6)"
		case op.Class().IsLoad() && op.Mode() == asm.MemSXMode:
			why = "a sign-extending load (BPF ISA v4, Linux 6.6)"
		case ins.IsKfuncCall():
			why = "a kfunc call (kernel functions differ by release)"
		case ins.IsBuiltinCall():
			if _, ok := helperKernels[asm.BuiltinFunc(ins.Constant)]; !ok {
				why = fmt.Sprintf("helper %s, not known to be on Linux %s", asm.BuiltinFunc(ins.Constant), OldestKernel)
			}
		case op.Class() == asm.ALUClass && op.ALUOp() == asm.Swap:
			next := i + 1
			if next >= len(insns) || insns[next].OpCode.ALUOp() != asm.And || insns[next].OpCode.Source() != asm.ImmSource ||
				insns[next].Dst != ins.Dst || uint64(insns[next].Constant) > 1<<ins.Constant-1 {
				why = fmt.Sprintf("a byte swap not followed by a mask of its %d bits (Linux before 6.18 forgets the bounds)", ins.Constant)
			}
		}
		if why != "" {
			return fmt.Errorf("instruction %d (%s, %v): %s: Linux %s would refuse the program", i, ins.Source(), ins, why, OldestKernel)
		}
	}
	return nil
}
