package artifact

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
)

// ManifestFormat is the version of the manifest layout written by this
// package; Read refuses any other. Format 2: typed set elements, typed
// slot kinds with actions, positions as line and column without a file,
// no source file name.
const ManifestFormat = 2

// Manifest maps the artifact's counters, sets and maps back to the policy.
// It is stored as JSON in ManifestSection. It names no file and nothing of
// the host that built it: the same policy gives the same manifest from any
// path.
type Manifest struct {
	Format  int    `json:"format"`
	Policy  string `json:"policy"`
	Hash    string `json:"hash"`
	Program string `json:"program"`
	// Egress is the TC egress program, when the policy tracks
	// connections: loaders attach it to the same interfaces.
	Egress string `json:"egress,omitempty"`
	// Conntrack names the connection table's maps, when the policy
	// tracks connections.
	Conntrack *ConntrackTables `json:"conntrack,omitempty"`
	// NAT names the NAT maps, when an interface of the policy plays a
	// part in a nat block (its binding says which).
	NAT *NATTables `json:"nat,omitempty"`
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

// ConntrackTables names the two maps of the connection table
// (docs/conntrack.md). Loaders replace them with the network namespace's
// pinned ones, so every program there shares one table.
type ConntrackTables struct {
	Assured   string `json:"assured"`
	Unassured string `json:"unassured"`
}

// NATTables names the NAT maps (docs/nat.md). Loaders replace them with
// the network namespace's pinned ones, as the connection table's.
type NATTables struct {
	Alias     string `json:"alias"`
	Fragments string `json:"fragments"`
	Settings  string `json:"settings"`
	Reserved  string `json:"reserved"`
}

// RedirectTarget is one key of the redirect device map.
type RedirectTarget struct {
	Key       int    `json:"key"`
	Interface string `json:"interface"`
}

// SetMap ties a policy set to the maps that hold it. Elements are the
// set's declared contents, typed; loaders insert them (Entries).
type SetMap struct {
	Set     string  `json:"set"`
	Type    SetType `json:"type"`
	Dynamic bool    `json:"dynamic,omitempty"`
	// Implicit marks a set the compiler made of a rule's long address or
	// port list ("RULE:FIELD"); it is static.
	Implicit    bool     `json:"implicit,omitempty"`
	MaxElements int      `json:"max_elements"`
	V4Map       string   `json:"v4_map,omitempty"` // cidr sets
	V6Map       string   `json:"v6_map,omitempty"` // cidr sets
	Map         string   `json:"map,omitempty"`    // port and mac sets
	Elements    Elements `json:"elements"`
}

// InterfaceBinding is an `interface` block that names this policy.
type InterfaceBinding struct {
	Name string `json:"name"`
	Mode string `json:"mode"`
	// NAT is the interface's part in a nat block, "outside" or "inside";
	// NATBlock that block's name. Loaders set the host up for it (the
	// sysctls of docs/nat.md).
	NAT      string `json:"nat,omitempty"`
	NATBlock string `json:"nat_block,omitempty"`
}

// MapRef is a map a manifest names, and the kind it is.
type MapRef struct {
	Name string
	Kind MapKind
}

// Maps lists every map the manifest names, with its kind: the counters,
// the maps of each set in order, the redirect map.
func (m *Manifest) Maps() []MapRef {
	var refs []MapRef
	if m.Counters.Map != "" {
		refs = append(refs, MapRef{m.Counters.Map, MapCounters})
	}
	for _, s := range m.Sets {
		refs = append(refs, s.Maps()...)
	}
	if m.RedirectMap != "" {
		refs = append(refs, MapRef{m.RedirectMap, MapRedirect})
	}
	if c := m.Conntrack; c != nil {
		refs = append(refs, MapRef{c.Assured, MapCTAssured}, MapRef{c.Unassured, MapCTUnassured})
	}
	if n := m.NAT; n != nil {
		refs = append(refs, MapRef{n.Alias, MapNATAlias}, MapRef{n.Fragments, MapNATFragments},
			MapRef{n.Settings, MapNATSettings}, MapRef{n.Reserved, MapNATReserved})
	}
	return refs
}

// Maps lists the maps holding the set, with their kinds.
func (s SetMap) Maps() []MapRef {
	var refs []MapRef
	switch s.Type {
	case SetCIDR:
		if s.V4Map != "" {
			refs = append(refs, MapRef{s.V4Map, MapCIDRv4})
		}
		if s.V6Map != "" {
			refs = append(refs, MapRef{s.V6Map, MapCIDRv6})
		}
	case SetPort:
		if s.Map != "" {
			refs = append(refs, MapRef{s.Map, MapPorts})
		}
	case SetMAC:
		if s.Map != "" {
			refs = append(refs, MapRef{s.Map, MapMACs})
		}
	}
	return refs
}

// MapNames returns the names of the maps holding the set.
func (s SetMap) MapNames() []string {
	var names []string
	for _, r := range s.Maps() {
		names = append(names, r.Name)
	}
	return names
}

// encodeManifest returns the manifest as stored in ManifestSection: compact
// JSON, fields in declaration order, so equal manifests give equal bytes.
func encodeManifest(m *Manifest) ([]byte, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return data, nil
}

// ReadManifest returns the manifest stored in an artifact's ManifestSection.
func ReadManifest(r io.ReaderAt) (*Manifest, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("read elf: %w", err)
	}
	defer f.Close()
	sec := f.Section(ManifestSection)
	if sec == nil {
		return nil, fmt.Errorf("read manifest: no section %s", ManifestSection)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read section %s: %w", ManifestSection, err)
	}
	m, err := DecodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	return m, nil
}
