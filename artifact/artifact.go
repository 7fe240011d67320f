package artifact

import (
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// MapType is the kind of a BPF map; values are the kernel's enum bpf_map_type.
type MapType uint32

const (
	// MapHash is BPF_MAP_TYPE_HASH: port and MAC sets.
	MapHash MapType = 1
	// MapArray is BPF_MAP_TYPE_ARRAY.
	MapArray MapType = 2
	// MapPerCPUArray is BPF_MAP_TYPE_PERCPU_ARRAY: rule counters.
	MapPerCPUArray MapType = 6
	// MapLPMTrie is BPF_MAP_TYPE_LPM_TRIE: CIDR sets, one map per family.
	MapLPMTrie MapType = 11
	// MapDevMapHash is BPF_MAP_TYPE_DEVMAP_HASH: redirect targets.
	MapDevMapHash MapType = 25
)

// MapFlagNoPrealloc is BPF_F_NO_PREALLOC, required by LPM tries.
const MapFlagNoPrealloc = 1

// Map is the blueprint of one BPF map of an artifact.
//
// Key and value layouts (little-endian target):
//   - counters: key u32 slot, value struct { packets, bytes u64 } per CPU;
//   - cidr sets: key struct { prefixlen u32; addr [4]u8 or [16]u8 } (address in
//     network order), value u8 = 1;
//   - port sets: key u16 port in host order, value u8 = 1;
//   - mac sets: key [6]u8, value u8 = 1.
type Map struct {
	// Name is the ELF symbol and the kernel object name (at most 15 bytes).
	Name       string
	Type       MapType
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

// ManifestFormat is the version of the manifest layout written by this compiler.
const ManifestFormat = 1

// Manifest maps the artifact's counters, sets and maps back to the policy.
// It is stored as JSON in ManifestSection.
type Manifest struct {
	Format  int    `json:"format"`
	Policy  string `json:"policy"`
	Hash    string `json:"hash"`
	Source  string `json:"source"`
	Program string `json:"program"`
	// Counters is the per-CPU array of packet and byte counters.
	Counters CounterTable `json:"counters"`
	Sets     []SetMap     `json:"sets,omitempty"`
	// Interfaces lists the policy file's interfaces that attach this policy.
	Interfaces []InterfaceBinding `json:"interfaces,omitempty"`
	// RedirectMap is the device map of redirect targets; Redirects say
	// which interface each key stands for. Loaders put each interface's
	// index under its key.
	RedirectMap string           `json:"redirect_map,omitempty"`
	Redirects   []RedirectTarget `json:"redirects,omitempty"`
}

// RedirectTarget is one key of the redirect device map.
type RedirectTarget struct {
	Key       int    `json:"key"`
	Interface string `json:"interface"`
}

// CounterTable names the counter map and what each slot counts.
type CounterTable struct {
	Map   string        `json:"map"`
	Slots []CounterSlot `json:"slots"`
}

// CounterSlot kinds.
const (
	SlotRule      = "rule"      // a pass or drop rule
	SlotCount     = "count"     // a count rule
	SlotDefault   = "default"   // the policy's default verdict
	SlotMalformed = "malformed" // the policy's malformed verdict
)

// CounterSlot is one entry of the counter map.
type CounterSlot struct {
	Slot int `json:"slot"`
	// Name is the rule name, or "default" / "malformed".
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Pos is the rule's source position as file:line:col ("" for default and malformed).
	Pos string `json:"pos,omitempty"`
}

// SetMap ties a policy set to the maps that hold it. Elements are the set's
// declared contents in the policy's syntax; loaders insert them.
type SetMap struct {
	Set     string `json:"set"`
	Type    string `json:"type"`
	Dynamic bool   `json:"dynamic,omitempty"`
	// Implicit marks a set the compiler made of a rule's long address or
	// port list ("RULE:FIELD"); it is static.
	Implicit    bool     `json:"implicit,omitempty"`
	MaxElements int      `json:"max_elements"`
	V4Map       string   `json:"v4_map,omitempty"` // cidr sets
	V6Map       string   `json:"v6_map,omitempty"` // cidr sets
	Map         string   `json:"map,omitempty"`    // port and mac sets
	Elements    []string `json:"elements"`
}

// InterfaceBinding is an `interface` block that names this policy.
type InterfaceBinding struct {
	Name string `json:"name"`
	Mode string `json:"mode"`
}

// MapNames returns the names of the maps holding the set.
func (s SetMap) MapNames() []string {
	var names []string
	for _, n := range []string{s.V4Map, s.V6Map, s.Map} {
		if n != "" {
			names = append(names, n)
		}
	}
	return names
}
