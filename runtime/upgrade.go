package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/xdpc/xdpc/artifact"
)

// Kept manifests (STATEDIR/maps/POLICY/manifest.json) outlive the xdpc
// that wrote them: a host upgraded to this xdpc holds the manifests of the
// previous one, and its pinned counters and dynamic sets follow them. They
// are read in every format an xdpc has written (artifacts, which are
// built again, only in artifact.ManifestFormat) and upgraded to the
// current one, so the first apply of the new xdpc keeps what they
// describe, and set and stats work on them before it.
//
// Format 1 (xdpc before the datapath contract moved into package
// artifact) differs from format 2 in:
//   - set elements: a list of strings in the policy's syntax, not typed
//     values by kind;
//   - counter slot positions: "FILE:LINE:COL" strings, not line and col;
//   - a "source" field naming the policy file;
//   - counter slots of its first versions have no "action".

// ErrManifestFormat is returned for a kept manifest of a format this xdpc
// cannot read (one written by a newer xdpc).
var ErrManifestFormat = errors.New("kept manifest of an unknown format")

// loadKeptManifest reads the kept manifest at path in any format this xdpc
// reads and returns it in the current one. A missing file is reported with
// os.ErrNotExist.
func loadKeptManifest(path string) (*artifact.Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	m, err := decodeKeptManifest(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return m, nil
}

// decodeKeptManifest decodes a kept manifest of format 1 or 2.
func decodeKeptManifest(data []byte) (*artifact.Manifest, error) {
	var head struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, err
	}
	switch head.Format {
	case artifact.ManifestFormat:
		var m artifact.Manifest
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		return &m, nil
	case 1:
		var m manifestV1
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("format 1: %w", err)
		}
		up, err := m.upgrade()
		if err != nil {
			return nil, fmt.Errorf("upgrade format 1: %w", err)
		}
		return up, nil
	}
	return nil, fmt.Errorf("%w: format %d, this xdpc reads formats 1 to %d", ErrManifestFormat, head.Format, artifact.ManifestFormat)
}

// manifestV1 is a manifest of format 1.
type manifestV1 struct {
	Format   int    `json:"format"`
	Policy   string `json:"policy"`
	Hash     string `json:"hash"`
	Source   string `json:"source"`
	Program  string `json:"program"`
	Counters struct {
		Map   string `json:"map"`
		Slots []struct {
			Slot   int               `json:"slot"`
			Name   string            `json:"name"`
			Kind   artifact.SlotKind `json:"kind"`
			Action *artifact.Action  `json:"action"`
			To     string            `json:"to"`
			Pos    string            `json:"pos"`
		} `json:"slots"`
	} `json:"counters"`
	Sets []struct {
		Set         string           `json:"set"`
		Type        artifact.SetType `json:"type"`
		Dynamic     bool             `json:"dynamic"`
		Implicit    bool             `json:"implicit"`
		MaxElements int              `json:"max_elements"`
		V4Map       string           `json:"v4_map"`
		V6Map       string           `json:"v6_map"`
		Map         string           `json:"map"`
		Elements    []string         `json:"elements"`
	} `json:"sets"`
	Interfaces  []artifact.InterfaceBinding `json:"interfaces"`
	RedirectMap string                      `json:"redirect_map"`
	Redirects   []artifact.RedirectTarget   `json:"redirects"`
}

// upgrade returns m in the current format: elements parsed by the
// language's rules (the previous xdpc wrote them by the same rules, so
// one that does not parse means the file is damaged), positions without
// the file.
func (m *manifestV1) upgrade() (*artifact.Manifest, error) {
	up := &artifact.Manifest{
		Format: artifact.ManifestFormat, Policy: m.Policy, Hash: m.Hash, Program: m.Program,
		Counters:    artifact.CounterTable{Map: m.Counters.Map},
		Interfaces:  m.Interfaces,
		RedirectMap: m.RedirectMap, Redirects: m.Redirects,
	}
	for _, s := range m.Counters.Slots {
		cs := artifact.CounterSlot{Slot: s.Slot, Name: s.Name, Kind: s.Kind, To: s.To, Pos: posV1(s.Pos)}
		if s.Action != nil {
			cs.Action = *s.Action
		}
		up.Counters.Slots = append(up.Counters.Slots, cs)
	}
	for _, s := range m.Sets {
		els, err := artifact.ParseElements(s.Type, s.Elements)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", s.Set, err)
		}
		up.Sets = append(up.Sets, artifact.SetMap{
			Set: s.Set, Type: s.Type, Dynamic: s.Dynamic, Implicit: s.Implicit, MaxElements: s.MaxElements,
			V4Map: s.V4Map, V6Map: s.V6Map, Map: s.Map, Elements: els,
		})
	}
	return up, nil
}

// posV1 reads a format-1 position, "FILE:LINE:COL" (the file name may
// hold colons); no position when it is not one.
func posV1(s string) artifact.Pos {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return artifact.Pos{}
	}
	j := strings.LastIndex(s[:i], ":")
	p, _ := artifact.SourcePos(s[j+1:])
	return p
}
