package artifact

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Manifests outlive the xdpc that wrote them: a host upgraded to this xdpc
// holds the kept manifests and the applied artifacts of the previous one,
// and its pinned counters and dynamic sets follow them (a rollback of
// apply --confirm re-applies such an artifact). DecodeManifest reads every
// format an xdpc has written and returns the current one.
//
// Format 1 (xdpc before the datapath contract moved into this package)
// differs from format 2 in:
//   - set elements: a list of strings in the policy's syntax, not typed
//     values by kind;
//   - counter slot positions: "FILE:LINE:COL" strings, not line and col;
//   - a "source" field naming the policy file;
//   - counter slots of its first versions have no "action".

// ErrManifestFormat is returned for a manifest of a format this xdpc
// cannot read (one written by a newer xdpc).
var ErrManifestFormat = errors.New("manifest of an unknown format")

// DecodeManifest decodes a manifest of format 1 or 2 and returns it in the
// current format.
func DecodeManifest(data []byte) (*Manifest, error) {
	var head struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, err
	}
	switch head.Format {
	case ManifestFormat:
		var m Manifest
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
	return nil, fmt.Errorf("%w: format %d, this xdpc reads formats 1 to %d", ErrManifestFormat, head.Format, ManifestFormat)
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
			Slot   int      `json:"slot"`
			Name   string   `json:"name"`
			Kind   SlotKind `json:"kind"`
			Action *Action  `json:"action"`
			To     string   `json:"to"`
			Pos    string   `json:"pos"`
		} `json:"slots"`
	} `json:"counters"`
	Sets []struct {
		Set         string   `json:"set"`
		Type        SetType  `json:"type"`
		Dynamic     bool     `json:"dynamic"`
		Implicit    bool     `json:"implicit"`
		MaxElements int      `json:"max_elements"`
		V4Map       string   `json:"v4_map"`
		V6Map       string   `json:"v6_map"`
		Map         string   `json:"map"`
		Elements    []string `json:"elements"`
	} `json:"sets"`
	Interfaces  []InterfaceBinding `json:"interfaces"`
	RedirectMap string             `json:"redirect_map"`
	Redirects   []RedirectTarget   `json:"redirects"`
}

// upgrade returns m in the current format: elements parsed by the
// language's rules (the previous xdpc wrote them by the same rules, so
// one that does not parse means the file is damaged), positions without
// the file.
func (m *manifestV1) upgrade() (*Manifest, error) {
	up := &Manifest{
		Format: ManifestFormat, Policy: m.Policy, Hash: m.Hash, Program: m.Program,
		Counters:    CounterTable{Map: m.Counters.Map},
		Interfaces:  m.Interfaces,
		RedirectMap: m.RedirectMap, Redirects: m.Redirects,
	}
	for _, s := range m.Counters.Slots {
		cs := CounterSlot{Slot: s.Slot, Name: s.Name, Kind: s.Kind, To: s.To, Pos: posV1(s.Pos)}
		if s.Action != nil {
			cs.Action = *s.Action
		}
		up.Counters.Slots = append(up.Counters.Slots, cs)
	}
	for _, s := range m.Sets {
		els, err := ParseElements(s.Type, s.Elements)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", s.Set, err)
		}
		up.Sets = append(up.Sets, SetMap{
			Set: s.Set, Type: s.Type, Dynamic: s.Dynamic, Implicit: s.Implicit, MaxElements: s.MaxElements,
			V4Map: s.V4Map, V6Map: s.V6Map, Map: s.Map, Elements: els,
		})
	}
	return up, nil
}

// posV1 reads a format-1 position, "FILE:LINE:COL" (the file name may
// hold colons); no position when it is not one.
func posV1(s string) Pos {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return Pos{}
	}
	j := strings.LastIndex(s[:i], ":")
	p, _ := SourcePos(s[j+1:])
	return p
}
