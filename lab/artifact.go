package lab

import (
	"errors"
	"fmt"

	"github.com/xdpc/xdpc/runtime"
)

// ErrNeedsPolicy is returned by NewArtifactBackend for what an artifact
// cannot serve: the reference backend evaluates the policy's rules, which
// an artifact holds only as bytecode.
var ErrNeedsPolicy = errors.New("needs the policy source")

// NewArtifactBackend returns the named backend for the artifact elf
// (an ELF object 'xdpc build' wrote). The kernel and lab backends load
// its program as apply would and attribute each frame by the counter
// slots it moved, as for a policy: the manifest's slot table says what
// each slot decides. The reference backend returns ErrNeedsPolicy.
func NewArtifactBackend(name string, elf []byte, opts LabOptions) (Backend, error) {
	switch name {
	case BackendReference:
		return nil, fmt.Errorf("the reference backend %w: it evaluates the rules, which an artifact holds only as bytecode; replay the policy file, or use --backend kernel or lab", ErrNeedsPolicy)
	case BackendKernel, BackendLab:
	default:
		return nil, UnknownBackendError(name)
	}
	prog, err := runtime.NewTestProgram(elf)
	if err != nil {
		return nil, err
	}
	if name == BackendKernel {
		return newKernelBackendOf(prog)
	}
	return newLabBackendOf(prog, opts)
}
