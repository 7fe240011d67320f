package lab

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// linearProbe is a tiny XDP program that returns data_end - data: how many
// bytes of a frame an XDP program can read directly. BPF_PROG_TEST_RUN puts
// the bytes of a long frame (past about a page, less headroom and tailroom)
// into fragments that a program loaded without multi-buffer support never
// sees, so the policy's program would decide on a cut frame. The kernel
// backend runs the probe first and refuses such frames instead.
//
// Subtracting two packet pointers needs the verifier's pointer-leak
// allowance (CAP_PERFMON), which the kernel backend's root has.
type linearProbe struct{ prog *ebpf.Program }

func newLinearProbe() (*linearProbe, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xdpc_linear",
		Type: ebpf.XDP,
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // xdp_md->data
			asm.LoadMem(asm.R0, asm.R1, 4, asm.Word), // xdp_md->data_end
			asm.Sub.Reg(asm.R0, asm.R2),
			asm.Return(),
		},
		License: "GPL",
	})
	if err != nil {
		return nil, fmt.Errorf("load linear-length probe: %w", err)
	}
	return &linearProbe{prog: prog}, nil
}

// seen returns how many bytes of frame a test run shows an XDP program.
func (p *linearProbe) seen(frame []byte) (int, error) {
	n, err := p.prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return 0, fmt.Errorf("probe %d-byte frame: %w", len(frame), err)
	}
	return int(n), nil
}

func (p *linearProbe) close() error { return p.prog.Close() }

// SplitFrameError is returned by the kernel backend for a frame that
// BPF_PROG_TEST_RUN would split: the program would see only Seen of its
// Len bytes, and decide on a cut frame.
type SplitFrameError struct{ Len, Seen int }

func (e SplitFrameError) Error() string {
	return fmt.Sprintf("a %d-byte frame is split by the kernel test run; the program would see only its first %d bytes", e.Len, e.Seen)
}
