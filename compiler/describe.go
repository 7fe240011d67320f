package compiler

import (
	"fmt"
	"math"
	"slices"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/policy"
)

// buildManifest describes the artifact for loaders and operators: what each
// counter slot counts, which maps hold which set (with its declared
// elements) and which interfaces attach the policy.
func buildManifest(cfg *policy.Config, p *policy.Policy, prog *Program) artifact.Manifest {
	m := artifact.Manifest{
		Format:   artifact.ManifestFormat,
		Policy:   p.Name,
		Hash:     cfg.PolicyHash(p),
		Program:  prog.Name,
		Counters: artifact.CounterTable{Map: prog.Counters.Name},
	}
	for i := range prog.Rules {
		r := &prog.Rules[i]
		s := artifact.CounterSlot{Slot: r.Slot, Name: r.Name, Kind: artifact.SlotCount, Pos: r.Pos}
		if r.Terminal {
			s.Kind, s.Action, s.To = artifact.SlotRule, r.Verdict, r.To
		}
		m.Counters.Slots = append(m.Counters.Slots, s)
	}
	m.Counters.Slots = append(m.Counters.Slots,
		artifact.CounterSlot{Slot: prog.DefaultSlot, Name: "default", Kind: artifact.SlotDefault, Action: prog.Default},
		artifact.CounterSlot{Slot: prog.MalformedSlot, Name: "malformed", Kind: artifact.SlotMalformed, Action: prog.Malformed},
	)
	if n := prog.NAT; n != nil {
		m.Counters.Slots = append(m.Counters.Slots,
			artifact.CounterSlot{Slot: n.ExhaustedSlot, Name: "nat-exhausted", Kind: artifact.SlotNATExhausted, Action: artifact.ActionDrop},
			artifact.CounterSlot{Slot: n.FragmentSlot, Name: "nat-fragment", Kind: artifact.SlotNATFragment, Action: artifact.ActionDrop},
		)
	}
	for _, s := range prog.Sets {
		sm := artifact.SetMap{
			Set:         s.Set.Name,
			Type:        s.Set.Type,
			Dynamic:     s.Set.Dynamic,
			Implicit:    s.Implicit,
			MaxElements: s.Set.MaxElements,
			Elements:    setElements(s.Set),
		}
		for _, m := range []struct {
			m    *artifact.Map
			name *string
		}{{s.V4, &sm.V4Map}, {s.V6, &sm.V6Map}, {s.Map, &sm.Map}} {
			if m.m != nil {
				*m.name = m.m.Name
			}
		}
		m.Sets = append(m.Sets, sm)
	}
	if prog.Redirect != nil {
		m.RedirectMap = prog.Redirect.Name
		for k, name := range prog.Redirects {
			m.Redirects = append(m.Redirects, artifact.RedirectTarget{Key: k, Interface: name})
		}
	}
	for _, i := range cfg.Interfaces {
		if i.Policy == p {
			b := artifact.InterfaceBinding{Name: i.Name, Mode: i.Mode.String()}
			if nb, ok := cfg.NATOf(i.Name); ok {
				b.NAT, b.NATBlock = nb.Role.String(), nb.NAT.Name
			}
			m.Interfaces = append(m.Interfaces, b)
		}
	}
	return m
}

// setElements returns a set's elements, typed as loaders read them.
func setElements(s *policy.Set) artifact.Elements {
	e := artifact.Elements{
		Prefixes: slices.Clone(s.Prefixes),
		MACs:     slices.Clone(s.MACs),
	}
	for _, r := range s.Ports {
		if r.Lo > r.Hi || r.Hi > math.MaxUint16 {
			panic(fmt.Sprintf("compiler: port set %s holds %s", s.Name, r))
		}
		e.Ports = append(e.Ports, artifact.PortRange{Lo: uint16(r.Lo), Hi: uint16(r.Hi)})
	}
	return e
}
