package artifact

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// Map is the blueprint of one BPF map of an artifact. The compiler makes
// it from the kind of map it is (MapKind.Map), which fixes the type and
// the key and value layouts; any other map an object can describe is
// allowed here too (tests write some by hand).
type Map struct {
	// Name is the ELF symbol and the kernel object name (at most 15 bytes).
	Name       string
	Type       ebpf.MapType
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Flags      uint32
	// Key and Value describe the layouts in BTF; their sizes equal
	// KeySize and ValueSize.
	Key, Value btf.Type
}

// Artifact is the deterministic output of the compiler: one XDP program
// (and, when the policy tracks connections, a TC egress program), the maps
// they reference and the manifest that maps counters and sets back to the
// policy. Nothing in it depends on the host that built it.
type Artifact struct {
	// Program is the XDP program's ELF function symbol and kernel program
	// name (at most 15 bytes).
	Program string
	// License is written to the ELF "license" section.
	License string
	// Instructions are the XDP program's. They reference maps by name:
	// asm.LoadMapPtr(r, 0).WithReference(Map.Name).
	Instructions asm.Instructions
	// Egress is the TC egress program that records the host's own
	// traffic for connection tracking; nil when the policy tracks none.
	Egress   *Program
	Maps     []Map
	Manifest Manifest
}

// Program is a program of an artifact besides its XDP program.
type Program struct {
	// Name is the ELF function symbol and kernel program name (at most 15 bytes).
	Name string
	// Instructions reference maps by name, as the XDP program's do.
	Instructions asm.Instructions
}

// ProgramSection is the ELF section holding the XDP program.
const ProgramSection = "xdp"

// EgressSection is the ELF section holding the TC egress program: loaders
// take a program in section "tc" as a BPF_PROG_TYPE_SCHED_CLS program.
const EgressSection = "tc"

// elfProgram is one program as the ELF writer lays it out.
type elfProgram struct {
	name, section string
	// context is the BTF struct the program's one argument points to.
	context string
	insns   asm.Instructions
}

// programs lists the artifact's programs, the XDP program first.
func (a *Artifact) programs() []elfProgram {
	progs := []elfProgram{{a.Program, ProgramSection, "xdp_md", a.Instructions}}
	if a.Egress != nil {
		progs = append(progs, elfProgram{a.Egress.Name, EgressSection, "__sk_buff", a.Egress.Instructions})
	}
	return progs
}

// ManifestSection is the ELF section holding the JSON manifest.
const ManifestSection = ".xdpc.manifest"
