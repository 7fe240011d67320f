package compiler

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
)

// Program is the intermediate representation of one policy: what the
// classifier has to decide, with counters and set maps already assigned.
// Nothing in it refers back to HCL; a Classifier emits code from it alone.
type Program struct {
	// Policy is the policy name; Name the kernel program name.
	Policy string
	Name   string
	Rules  []Rule
	// Default and Malformed are the fallback verdicts and their counter slots.
	Default, Malformed         artifact.Action
	DefaultSlot, MalformedSlot int
	// Counters is the per-CPU counter map; Sets the maps of the sets the
	// rules look up, in order of first use.
	Counters artifact.Map
	Sets     []SetMaps
	// Redirects are the interfaces redirect rules send to, by key in
	// Redirect, the device map the loader fills with their indexes; nil
	// when no rule redirects.
	Redirects []string
	Redirect  *artifact.Map
	// Conntrack is the connection table the program tracks flows in;
	// nil when no rule matches ct_state.
	Conntrack *Conntrack
	// NAT is the part the program plays in a nat block; nil when its
	// interfaces play none.
	NAT *NATPart
}

// NATPart is what a program bound to a NAT interface translates
// (docs/nat.md): its nat block, the role of its interfaces, the NAT maps
// shared with the connection table, and its two NAT counter slots.
type NATPart struct {
	Block *policy.NAT
	Role  policy.NATRole
	// Alias is the NAT map, Fragments the first fragments' translations,
	// Settings the table's seed, Reserved the ports never allocated.
	Alias, Fragments, Settings, Reserved artifact.Map
	ExhaustedSlot, FragmentSlot          int
}

// Conntrack is what a program that tracks connections needs to know of
// its table: its two maps (docs/conntrack.md) and the policy's timeouts.
type Conntrack struct {
	// Assured holds assured connections, Unassured the others.
	Assured, Unassured artifact.Map
	// Timeouts are by state, every one set.
	Timeouts conntrack.Timeouts
}

// Rule is one rule of the IR.
type Rule struct {
	Name string
	// Slot is the rule's counter slot.
	Slot int
	// Action is what a match does: Terminal rules end with Verdict (drop,
	// pass or redirect through the Redirect device map), count rules count
	// and go on.
	Terminal bool
	Verdict  artifact.Action
	// To is the interface of a redirect, Target its key in the device map.
	To     string
	Target int
	// Tests must all hold for the rule to match, tried in order.
	Tests []Test
	// Pos is where the rule is written (no file: see artifact.Pos).
	Pos artifact.Pos
}

// Kind is "count", "pass", "drop" or "redirect".
func (r *Rule) Kind() string {
	if !r.Terminal {
		return "count"
	}
	return r.Verdict.String()
}

// Op is how a Test compares a packet field.
type Op uint8

const (
	// OpEq: the field equals one of Values (all single values).
	OpEq Op = iota + 1
	// OpRange: the field lies in one of Values (inclusive ranges).
	OpRange
	// OpPrefix: the address lies in one of Prefixes of its own family.
	OpPrefix
	// OpMAC: the MAC address is one of MACs.
	OpMAC
	// OpFlags: the TCP flags byte satisfies Flags.
	OpFlags
	// OpFragment: the fragment class is in Fragments.
	OpFragment
	// OpSetLookup: the field's value is an element of Set (a map lookup).
	OpSetLookup
	// OpCTState: the packet's ct_state is in CTStates; an untracked
	// packet has none.
	OpCTState
)

var opNames = [...]string{OpEq: "eq", OpRange: "range", OpPrefix: "prefix", OpMAC: "mac", OpFlags: "flags", OpFragment: "fragment", OpSetLookup: "lookup", OpCTState: "ctstate"}

func (o Op) String() string {
	if o > 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Test is one condition of a rule on one packet field. A packet without the
// field never passes a test, negated or not; a negated test passes packets
// that have the field and whose value is not among the values. For OpPrefix,
// a packet whose family has no prefix in Prefixes never passes.
type Test struct {
	Field  policy.Field
	Negate bool
	Op     Op
	// Values for OpEq and OpRange: sorted, disjoint, inclusive.
	Values []policy.Range
	// Prefixes for OpPrefix: masked, IPv4 before IPv6.
	Prefixes []netip.Prefix
	// MACs for OpMAC.
	MACs      []policy.MAC
	Flags     policy.TCPFlags
	Fragments policy.FragmentMask
	// CTStates for OpCTState (never negated: a negated ct_state is the
	// complement, which an untracked packet is not in either).
	CTStates policy.CTStateMask
	// Set for OpSetLookup.
	Set *SetMaps
	// Pos is where the value expression is written.
	Pos artifact.Pos
}

// Equal reports whether t and u are the same test: the same field,
// negation, comparison and values, or the same set's maps. Where they are
// written does not matter: a packet passes one exactly when it passes the
// other. (String is for golden files; it decides nothing.)
func (t *Test) Equal(u *Test) bool {
	return t.Field == u.Field && t.Negate == u.Negate && t.Op == u.Op &&
		slices.Equal(t.Values, u.Values) && slices.Equal(t.Prefixes, u.Prefixes) &&
		slices.Equal(t.MACs, u.MACs) && t.Flags == u.Flags && t.Fragments == u.Fragments &&
		t.CTStates == u.CTStates && t.Set == u.Set
}

// HasTest reports whether r holds a test equal to t.
func (r *Rule) HasTest(t *Test) bool {
	for i := range r.Tests {
		if r.Tests[i].Equal(t) {
			return true
		}
	}
	return false
}

// SetMaps are the maps compiled for one policy set.
type SetMaps struct {
	Set *policy.Set
	// Implicit marks a set the compiler made of a rule's long address or
	// port list; it is static and named "RULE:FIELD".
	Implicit bool
	// V4 and V6 hold a cidr set; Map a port or mac set.
	V4, V6, Map *artifact.Map
}

// String renders the IR as stable text for golden files.
func (p *Program) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "program %s policy %q\n", p.Name, p.Policy)
	writeMap(&b, &p.Counters)
	for _, s := range p.Sets {
		for _, m := range []*artifact.Map{s.V4, s.V6, s.Map} {
			if m != nil {
				writeMap(&b, m)
			}
		}
	}
	if p.Redirect != nil {
		writeMap(&b, p.Redirect)
	}
	if ct := p.Conntrack; ct != nil {
		writeMap(&b, &ct.Assured)
		writeMap(&b, &ct.Unassured)
		var ts []string
		for _, name := range conntrack.TimeoutNames() {
			ts = append(ts, fmt.Sprintf("%s %s", name, ct.Timeouts.Named(name)))
		}
		fmt.Fprintf(&b, "conntrack timeouts %s\n", strings.Join(ts, ", "))
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		kind := r.Kind()
		if r.Terminal && r.Verdict == artifact.ActionRedirect {
			kind = fmt.Sprintf("redirect to %q key %d", r.To, r.Target)
		}
		fmt.Fprintf(&b, "rule %d %q %s @ %s\n", r.Slot, r.Name, kind, r.Pos)
		for j := range r.Tests {
			fmt.Fprintf(&b, "  %s\n", r.Tests[j].String())
		}
	}
	fmt.Fprintf(&b, "default %s slot %d\n", p.Default, p.DefaultSlot)
	fmt.Fprintf(&b, "malformed %s slot %d\n", p.Malformed, p.MalformedSlot)
	if n := p.NAT; n != nil {
		for _, m := range []*artifact.Map{&n.Alias, &n.Fragments, &n.Settings, &n.Reserved} {
			writeMap(&b, m)
		}
		fmt.Fprintf(&b, "nat %q %s, nat-exhausted slot %d, nat-fragment slot %d\n", n.Block.Name, n.Role, n.ExhaustedSlot, n.FragmentSlot)
	}
	return b.String()
}

func writeMap(b *strings.Builder, m *artifact.Map) {
	fmt.Fprintf(b, "map %s %s key %d value %d max %d", m.Name, mapTypeName(m.Type), m.KeySize, m.ValueSize, m.MaxEntries)
	if m.Flags != 0 {
		fmt.Fprintf(b, " flags %#x", m.Flags)
	}
	b.WriteString("\n")
}

func mapTypeName(t ebpf.MapType) string {
	switch t {
	case ebpf.Hash:
		return "hash"
	case ebpf.Array:
		return "array"
	case ebpf.PerCPUArray:
		return "percpu_array"
	case ebpf.LPMTrie:
		return "lpm_trie"
	case ebpf.DevMapHash:
		return "devmap_hash"
	case ebpf.LRUHash:
		return "lru_hash"
	}
	return fmt.Sprintf("type%d", uint32(t))
}

// String renders t as "field op values", e.g. "dst_port in 22, 80-90".
func (t *Test) String() string {
	neg := ""
	if t.Negate {
		neg = "not "
	}
	var vals []string
	switch t.Op {
	case OpEq, OpRange:
		for _, r := range t.Values {
			vals = append(vals, r.String())
		}
	case OpPrefix:
		for _, p := range t.Prefixes {
			vals = append(vals, p.String())
		}
	case OpMAC:
		for _, m := range t.MACs {
			vals = append(vals, m.String())
		}
	case OpFlags:
		vals = []string{t.Flags.String()}
	case OpFragment:
		for _, f := range []policy.Fragment{policy.FragNone, policy.FragFirst, policy.FragLater} {
			if t.Fragments.Has(f) {
				vals = append(vals, f.String())
			}
		}
	case OpCTState:
		for _, s := range t.CTStates.Statuses() {
			vals = append(vals, s.String())
		}
	case OpSetLookup:
		var maps []string
		for _, m := range []*artifact.Map{t.Set.V4, t.Set.V6, t.Set.Map} {
			if m != nil {
				maps = append(maps, m.Name)
			}
		}
		what := "set." + t.Set.Set.Name
		if t.Set.Implicit {
			what = fmt.Sprintf("implicit set %s of %d values", t.Set.Set.Name, len(t.Set.Set.Prefixes)+len(t.Set.Set.Ports))
		}
		vals = []string{fmt.Sprintf("%s (%s)", what, strings.Join(maps, ", "))}
	}
	return fmt.Sprintf("%s %s%s %s", t.Field, neg, t.Op, strings.Join(vals, ", "))
}
