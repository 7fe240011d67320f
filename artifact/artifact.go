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

// Artifact is the deterministic output of the compiler: one XDP program, the
// maps it references and the manifest that maps counters and sets back to the
// policy. Nothing in it depends on the host that built it.
type Artifact struct {
	// Program is the ELF function symbol and kernel program name (at most 15 bytes).
	Program string
	// License is written to the ELF "license" section.
	License string
	// Instructions reference maps by name: asm.LoadMapPtr(r, 0).WithReference(Map.Name).
	Instructions asm.Instructions
	Maps         []Map
	Manifest     Manifest
}

// ProgramSection is the ELF section holding the XDP program.
const ProgramSection = "xdp"

// ManifestSection is the ELF section holding the JSON manifest.
const ManifestSection = ".xdpc.manifest"
