package compiler

import (
	"fmt"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/policy"
)

// CounterMap is the name of every artifact's counter map.
const CounterMap = "xdpc_counters"

// RedirectMap is the name of the device map of redirect targets.
const RedirectMap = "xdpc_redirect"

// The connection table's maps. The runtime replaces them with the network
// namespace's pinned ones (artifact.KeepShared).
const (
	CTAssuredMap   = "xdpc_ct_assured"
	CTUnassuredMap = "xdpc_ct_unassrd"
)

// The NAT maps (docs/nat.md "Data layout"), shared like the connection
// table's.
const (
	NATAliasMap     = "xdpc_nat_alias"
	NATFragmentsMap = "xdpc_nat_frags"
	NATSettingsMap  = "xdpc_nat_conf"
	NATReservedMap  = "xdpc_nat_rsvd"
)

// allocateNAT describes the NAT part of a policy bound to a NAT
// interface: its maps (the NAT map as large as the connection table) and
// the two counter slots after the malformed one.
func allocateNAT(prog *Program, cfg *policy.Config, p *policy.Policy) {
	nb := cfg.NATBindings(p)
	if len(nb) == 0 || prog.Conntrack == nil {
		return
	}
	prog.NAT = &NATPart{
		Block:         nb[0].NAT,
		Role:          nb[0].Role,
		Alias:         artifact.MapNATAlias.Map(NATAliasMap, prog.Conntrack.Assured.MaxEntries),
		Fragments:     artifact.MapNATFragments.Map(NATFragmentsMap, nat.FragmentEntries),
		Settings:      artifact.MapNATSettings.Map(NATSettingsMap, 1),
		Reserved:      artifact.MapNATReserved.Map(NATReservedMap, natReservedEntries),
		ExhaustedSlot: p.NATExhaustedSlot(),
		FragmentSlot:  p.NATFragmentSlot(),
	}
	prog.Counters = artifact.MapCounters.Map(CounterMap, uint32(prog.NAT.FragmentSlot+1))
}

// natReservedEntries is the room for reserved ports: the host's listening
// sockets.
const natReservedEntries = 4096

// minUnassured is the least room the unassured map gets
// (docs/conntrack.md): a quarter of the assured map's, at least this.
const minUnassured = 1024

// allocateConntrack describes the connection table of a policy that
// tracks connections: the assured map with the configured capacity, the
// unassured one with a quarter of it (at least minUnassured), and the
// timeouts by state.
func allocateConntrack(prog *Program, cfg *policy.Config, p *policy.Policy) {
	if !p.TracksConnections() {
		return
	}
	n := cfg.Conntrack.MaxEntries
	if n <= 0 {
		n = policy.DefaultConntrackEntries
	}
	prog.Conntrack = &Conntrack{
		Assured:   artifact.MapCTAssured.Map(CTAssuredMap, uint32(n)),
		Unassured: artifact.MapCTUnassured.Map(CTUnassuredMap, uint32(max(n/4, minUnassured))),
		Timeouts:  cfg.Conntrack.Timeouts.WithDefaults(),
	}
}

// allocateCounters describes the per-CPU counter array: one slot per rule,
// then the default and malformed slots.
func allocateCounters(prog *Program) {
	prog.Counters = artifact.MapCounters.Map(CounterMap, uint32(prog.MalformedSlot+1))
}

// allocateSetMaps gives every set the rules look up its maps, named by order
// of first use ("xs0_v4", "xs0_v6", "xs1_port", ...), and points every
// OpSetLookup test at them.
func allocateSetMaps(prog *Program) error {
	index := map[*policy.Set]int{}
	for i := range prog.Rules {
		for j := range prog.Rules[i].Tests {
			t := &prog.Rules[i].Tests[j]
			if t.Op != OpSetLookup {
				continue
			}
			if err := checkSetField(t.Field, t.Set.Set); err != nil {
				return err
			}
			if _, ok := index[t.Set.Set]; ok {
				continue
			}
			sm, err := setMaps(t.Set.Set, len(prog.Sets), t.Set.Implicit)
			if err != nil {
				return err
			}
			index[t.Set.Set] = len(prog.Sets)
			prog.Sets = append(prog.Sets, *sm)
		}
	}
	for i := range prog.Rules {
		for j := range prog.Rules[i].Tests {
			if t := &prog.Rules[i].Tests[j]; t.Op == OpSetLookup {
				t.Set = &prog.Sets[index[t.Set.Set]]
			}
		}
	}
	return nil
}

func checkSetField(f policy.Field, s *policy.Set) error {
	want := map[policy.MatchKind]policy.SetType{policy.KindPrefix: policy.SetCIDR, policy.KindMAC: policy.SetMAC, policy.KindRange: policy.SetPort}[f.Kind()]
	if s.Type != want || s.Type == policy.SetPort && f != policy.FieldSrcPort && f != policy.FieldDstPort {
		return fmt.Errorf("set %q of type %s cannot match field %s", s.Name, s.Type, f)
	}
	return nil
}

// setMaps describes the maps of set s, the index-th set of the program. A
// declared cidr set gets a trie per family, since a dynamic one may gain
// either; an implicit set is static and gets only the families it holds.
func setMaps(s *policy.Set, index int, implicit bool) (*SetMaps, error) {
	capacity := max(s.MaxElements, 1)
	sm := &SetMaps{Set: s, Implicit: implicit}
	prefix := fmt.Sprintf("xs%d_", index)
	switch s.Type {
	case policy.SetCIDR:
		has4, has6 := !implicit, !implicit
		for _, p := range s.Prefixes {
			has4, has6 = has4 || p.Addr().Is4(), has6 || !p.Addr().Is4()
		}
		if has4 {
			sm.V4 = blueprint(artifact.MapCIDRv4, prefix+"v4", capacity)
		}
		if has6 {
			sm.V6 = blueprint(artifact.MapCIDRv6, prefix+"v6", capacity)
		}
	case policy.SetPort:
		// A port map holds every port of every range.
		ports := 0
		for _, r := range s.Ports {
			ports += int(r.Hi-r.Lo) + 1
		}
		sm.Map = blueprint(artifact.MapPorts, prefix+"port", max(capacity, ports))
	case policy.SetMAC:
		sm.Map = blueprint(artifact.MapMACs, prefix+"mac", capacity)
	default:
		return nil, fmt.Errorf("set %q: unknown type %s", s.Name, s.Type)
	}
	return sm, nil
}

// blueprint is a map of kind k.
func blueprint(k artifact.MapKind, name string, capacity int) *artifact.Map {
	m := k.Map(name, uint32(capacity))
	return &m
}

// allocateRedirects gives every redirect target a key in the device map,
// by order of first use; the loader maps keys to interface indexes.
func allocateRedirects(prog *Program) {
	keys := map[string]int{}
	for i := range prog.Rules {
		r := &prog.Rules[i]
		if !r.Terminal || r.Verdict != artifact.ActionRedirect {
			continue
		}
		k, ok := keys[r.To]
		if !ok {
			k = len(prog.Redirects)
			keys[r.To] = k
			prog.Redirects = append(prog.Redirects, r.To)
		}
		r.Target = k
	}
	if len(prog.Redirects) == 0 {
		return
	}
	prog.Redirect = blueprint(artifact.MapRedirect, RedirectMap, len(prog.Redirects))
}

// maps lists every map of prog: the counters, the sets' maps, the
// redirect map, the connection table's.
func (p *Program) maps() []artifact.Map {
	ms := []artifact.Map{p.Counters}
	for _, s := range p.Sets {
		for _, m := range []*artifact.Map{s.V4, s.V6, s.Map} {
			if m != nil {
				ms = append(ms, *m)
			}
		}
	}
	if p.Redirect != nil {
		ms = append(ms, *p.Redirect)
	}
	if ct := p.Conntrack; ct != nil {
		ms = append(ms, ct.Assured, ct.Unassured)
	}
	if n := p.NAT; n != nil {
		ms = append(ms, n.Alias, n.Fragments, n.Settings, n.Reserved)
	}
	return ms
}
