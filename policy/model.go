package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/wire"
)

// Config is the checked model of one policy file: every reference resolved,
// every value parsed and validated. It is what the compiler and the reference
// evaluator consume; both may rely on the invariants documented on each type.
type Config struct {
	// Filename is the name the source was loaded under (as given, not absolute).
	Filename string
	// Source is the file's bytes, kept for diagnostics and hashing.
	Source []byte

	Variables  []*Variable
	Sets       []*Set
	Interfaces []*Interface
	Policies   []*Policy
	// Conntrack is the connection table's settings: the conntrack
	// block's, or the defaults when the file has none.
	Conntrack Conntrack
	// NATs are the nat blocks, in file order.
	NATs []*NAT
	// Tests are the test blocks, in file order.
	Tests []*Test
}

// Conntrack is the top-level conntrack block: the connection table's
// capacity and timeouts (docs/conntrack.md). They apply to every policy
// of the file that tracks connections.
type Conntrack struct {
	// MaxEntries is the capacity for assured connections; new and
	// unreplied flows get a quarter of it besides (at least 1,024).
	MaxEntries int
	// Timeouts are by state; every field is set (defaults filled in).
	Timeouts conntrack.Timeouts
	// DeclRange is the block's header; zero when the file has none.
	DeclRange hcl.Range
}

// Connection table capacity: the default, and the bounds a conntrack
// block's max_entries must lie in.
const (
	DefaultConntrackEntries = 65536
	MinConntrackEntries     = 64
	MaxConntrackEntries     = 1 << 22
)

// TracksConnections reports whether policy p needs connection tracking:
// one of its rules matches ct_state, or it is bound to an interface of a
// nat block (translated flows are tracked).
func (p *Policy) TracksConnections() bool {
	if p.NAT {
		return true
	}
	for _, r := range p.Rules {
		if r.Match(FieldCTState) != nil {
			return true
		}
	}
	return false
}

// Policy returns the policy named name, or nil.
func (c *Config) Policy(name string) *Policy {
	for _, p := range c.Policies {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Set returns the set named name, or nil.
func (c *Config) Set(name string) *Set {
	for _, s := range c.Sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Variable is a `variable` block after -var overrides are applied.
type Variable struct {
	Name  string
	Value cty.Value
	// Overridden is true when the value came from -var rather than the default.
	Overridden bool
	DeclRange  hcl.Range
}

// SetType is the element type of a named set, as the datapath contract
// defines it (artifact.SetType).
type SetType = artifact.SetType

// Set types.
const (
	// SetCIDR holds IPv4 and IPv6 prefixes; compiled to one LPM trie per family.
	SetCIDR = artifact.SetCIDR
	// SetPort holds port numbers and ranges; compiled to a hash map.
	SetPort = artifact.SetPort
	// SetMAC holds MAC addresses; compiled to a hash map.
	SetMAC = artifact.SetMAC
)

// Set is a named `set` block. Exactly one of Prefixes, Ports, MACs is used,
// according to Type. Prefixes are masked (no host bits) and sorted;
// Ports are sorted, merged inclusive ranges.
type Set struct {
	Name     string
	Type     SetType
	Dynamic  bool
	Prefixes []netip.Prefix
	Ports    []Range
	MACs     []MAC
	// MaxElements is the capacity of the compiled map (>= the element count).
	MaxElements int
	DeclRange   hcl.Range
}

// Mode is how an interface's XDP program is attached.
type Mode uint8

const (
	// ModeAuto tries native XDP and falls back to generic with a warning.
	ModeAuto Mode = iota
	// ModeNative attaches in the driver; fails where the driver lacks XDP.
	ModeNative
	// ModeGeneric attaches in the stack (skb mode); works everywhere.
	ModeGeneric
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Interface is an `interface` block: where a policy is attached.
type Interface struct {
	Name      string
	Policy    *Policy
	Mode      Mode
	DeclRange hcl.Range
}

// Action is what a rule does when it matches, and the verdict of the
// default and malformed cases (which are only ever ActionPass or ActionDrop).
type Action uint8

const (
	// ActionDrop ends evaluation with XDP_DROP.
	ActionDrop Action = iota + 1
	// ActionPass ends evaluation with XDP_PASS.
	ActionPass
	// ActionCount counts the packet and goes on to the next rule.
	ActionCount
	// ActionRedirect ends evaluation by sending the frame out of the rule's
	// To interface (XDP_REDIRECT through a device map).
	ActionRedirect
)

func (a Action) String() string {
	switch a {
	case ActionDrop:
		return "drop"
	case ActionPass:
		return "pass"
	case ActionCount:
		return "count"
	case ActionRedirect:
		return "redirect"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Terminal reports whether a matching rule with this action decides the verdict.
func (a Action) Terminal() bool { return a != ActionCount }

// XDP is the XDP action a program returns for a decision a: drop, pass or
// redirect. Count decides nothing and has none.
func (a Action) XDP() (artifact.Action, bool) {
	switch a {
	case ActionDrop:
		return artifact.ActionDrop, true
	case ActionPass:
		return artifact.ActionPass, true
	case ActionRedirect:
		return artifact.ActionRedirect, true
	}
	return 0, false
}

// Policy is a `policy` block: ordered rules and the two fallback verdicts.
type Policy struct {
	Name string
	// Default is the verdict when no terminal rule matches (pass or drop).
	Default Action
	// Malformed is the verdict for frames that fail parsing (pass or drop).
	Malformed Action
	Rules     []*Rule
	// NAT is set when an interface bound to the policy is a nat block's
	// outside or inside (Config.NATBindings says which).
	NAT       bool
	DeclRange hcl.Range
}

// Rule is one `rule` block. Matches holds at most one Match per Field, sorted
// by Field; all of them must match (AND). A rule without matches matches
// every well-formed packet.
type Rule struct {
	Name string
	// Index is the rule's position in its policy, from 0.
	Index  int
	Action Action
	// To is the interface a redirect rule sends frames out of ("" for
	// other actions).
	To      string
	Matches []Match
	// DeclRange covers the `rule "name"` header; Range the whole block.
	DeclRange hcl.Range
	Range     hcl.Range
}

// Match returns the rule's match on field f, or nil.
func (r *Rule) Match(f Field) *Match {
	for i := range r.Matches {
		if r.Matches[i].Field == f {
			return &r.Matches[i]
		}
	}
	return nil
}

// Field is a packet field a rule can match on.
type Field uint8

// Fields, in the canonical order rules keep their matches in.
const (
	FieldEtherType Field = iota + 1 // ether_type: after any VLAN tags
	FieldVLAN                       // vlan: id of the outer tag
	FieldInnerVLAN                  // inner_vlan: id of the second tag
	FieldSrcMAC                     // src_mac
	FieldDstMAC                     // dst_mac
	FieldSrc                        // src: IPv4/IPv6 source address
	FieldDst                        // dst: IPv4/IPv6 destination address
	FieldProto                      // proto: IPv4 protocol / IPv6 upper-layer next header
	FieldSrcPort                    // src_port: TCP/UDP
	FieldDstPort                    // dst_port: TCP/UDP
	FieldTCPFlags                   // tcp_flags
	FieldICMPType                   // icmp_type: ICMP (IPv4) or ICMPv6 type
	FieldICMPCode                   // icmp_code
	FieldTTL                        // ttl: IPv4 TTL or IPv6 hop limit
	FieldLength                     // length: IPv4 total length, IPv6 40 + payload length
	FieldFragment                   // fragment: none, first, later
	FieldCTState                    // ct_state: new, established, related, invalid
	fieldEnd
)

var fieldNames = [...]string{
	FieldEtherType: "ether_type",
	FieldVLAN:      "vlan",
	FieldInnerVLAN: "inner_vlan",
	FieldSrcMAC:    "src_mac",
	FieldDstMAC:    "dst_mac",
	FieldSrc:       "src",
	FieldDst:       "dst",
	FieldProto:     "proto",
	FieldSrcPort:   "src_port",
	FieldDstPort:   "dst_port",
	FieldTCPFlags:  "tcp_flags",
	FieldICMPType:  "icmp_type",
	FieldICMPCode:  "icmp_code",
	FieldTTL:       "ttl",
	FieldLength:    "length",
	FieldFragment:  "fragment",
	FieldCTState:   "ct_state",
}

// String returns the field's attribute name in the policy language.
func (f Field) String() string {
	if f > 0 && f < fieldEnd {
		return fieldNames[f]
	}
	return fmt.Sprintf("Field(%d)", uint8(f))
}

// Fields lists every match field in canonical order.
func Fields() []Field {
	fs := make([]Field, 0, fieldEnd-1)
	for f := FieldEtherType; f < fieldEnd; f++ {
		fs = append(fs, f)
	}
	return fs
}

// FieldByName returns the field with attribute name n.
func FieldByName(n string) (Field, bool) {
	for f := FieldEtherType; f < fieldEnd; f++ {
		if fieldNames[f] == n {
			return f, true
		}
	}
	return 0, false
}

// Kind says which part of a Match holds its values.
func (f Field) Kind() MatchKind {
	switch f {
	case FieldSrcMAC, FieldDstMAC:
		return KindMAC
	case FieldSrc, FieldDst:
		return KindPrefix
	case FieldTCPFlags:
		return KindFlags
	case FieldFragment:
		return KindFragment
	case FieldCTState:
		return KindCTState
	}
	return KindRange
}

// MatchKind is the shape of a field's values.
type MatchKind uint8

const (
	KindRange    MatchKind = iota + 1 // Match.Values (and Set for ports)
	KindPrefix                        // Match.Prefixes or Match.Set
	KindMAC                           // Match.MACs or Match.Set
	KindFlags                         // Match.Flags
	KindFragment                      // Match.Fragments
	KindCTState                       // Match.CTStates
)

// Match is one field condition of a rule. Which member holds the values
// depends on Field.Kind(); when Set is non-nil the values are the set's.
//
// Invariants established by the checker: Values are sorted, merged,
// inclusive ranges within the field's width; Prefixes are masked and sorted
// (IPv4 before IPv6); MACs sorted and unique; lists are never empty.
type Match struct {
	Field Field
	// Negate matches packets that have the field and whose value is not
	// among the values. A packet without the field never matches, negated or not.
	Negate    bool
	Values    []Range
	Prefixes  []netip.Prefix
	MACs      []MAC
	Set       *Set
	Flags     TCPFlags
	Fragments FragmentMask
	CTStates  CTStateMask
	// Range is the source range of the value expression.
	Range hcl.Range
}

// Range is an inclusive range of unsigned field values.
type Range struct{ Lo, Hi uint32 }

// Contains reports whether v lies in r.
func (r Range) Contains(v uint32) bool { return r.Lo <= v && v <= r.Hi }

func (r Range) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// MAC is an Ethernet address (artifact.MAC).
type MAC = artifact.MAC

// TCPFlags matches when flags&(Set|Clear) == Set. Set and Clear never overlap.
type TCPFlags struct{ Set, Clear uint8 }

// Matches reports whether the TCP flags byte b satisfies f.
func (f TCPFlags) Matches(b uint8) bool { return b&(f.Set|f.Clear) == f.Set }

// String renders f in the language's syntax, e.g. "syn,!ack".
func (f TCPFlags) String() string {
	var parts []string
	for _, n := range wire.TCPFlagNames.All() {
		if f.Set&uint8(n.Number) != 0 {
			parts = append(parts, n.Name)
		}
	}
	for _, n := range wire.TCPFlagNames.All() {
		if f.Clear&uint8(n.Number) != 0 {
			parts = append(parts, "!"+n.Name)
		}
	}
	return strings.Join(parts, ",")
}

// Fragment is the fragmentation class of an IP packet.
type Fragment uint8

const (
	// FragNone: not a fragment (IPv4 MF=0 and offset 0; IPv6 without a
	// fragment header, or with an atomic one: offset 0, M=0).
	FragNone Fragment = 1 << iota
	// FragFirst: offset 0 with more fragments to follow; it carries the L4 header.
	FragFirst
	// FragLater: a non-first fragment (offset > 0); it has no L4 header.
	FragLater
)

func (f Fragment) String() string {
	switch f {
	case FragNone:
		return "none"
	case FragFirst:
		return "first"
	case FragLater:
		return "later"
	}
	return fmt.Sprintf("Fragment(%d)", uint8(f))
}

// FragmentMask is a set of Fragment classes; "any" is FragFirst|FragLater.
type FragmentMask uint8

// Has reports whether f is in the mask.
func (m FragmentMask) Has(f Fragment) bool { return uint8(m)&uint8(f) != 0 }

// CTStateMask is a set of ct_state values: bit 1<<s for each
// conntrack.Status s it holds. A negated ct_state match is stored as the
// complement among the four statuses: an untracked packet matches neither.
type CTStateMask uint8

// CTStates is the mask of every ct_state value.
const CTStates = CTStateMask(1<<conntrack.StatusNew | 1<<conntrack.StatusEstablished |
	1<<conntrack.StatusRelated | 1<<conntrack.StatusInvalid)

// Has reports whether status s is in the mask.
func (m CTStateMask) Has(s conntrack.Status) bool { return s != conntrack.StatusNone && m&(1<<s) != 0 }

// Statuses lists the statuses of the mask in numeric order.
func (m CTStateMask) Statuses() []conntrack.Status {
	var out []conntrack.Status
	for s := conntrack.StatusNew; s <= conntrack.StatusInvalid; s++ {
		if m.Has(s) {
			out = append(out, s)
		}
	}
	return out
}

// MaxIPv6ExtHdrs is the most IPv6 extension headers a packet may carry
// before its upper layer: a longer chain is malformed (docs/datapath.md).
const MaxIPv6ExtHdrs = 8

// Counter slots: every rule has the slot of its Index; the default verdict and
// the malformed verdict follow the rules. The compiler's counter map and the
// reference evaluator use the same numbering.

// DefaultSlot is the counter slot of the policy's default verdict.
func (p *Policy) DefaultSlot() int { return len(p.Rules) }

// MalformedSlot is the counter slot of the policy's malformed verdict.
func (p *Policy) MalformedSlot() int { return len(p.Rules) + 1 }

// NATExhaustedSlot and NATFragmentSlot are the counter slots of what NAT
// drops (docs/nat.md), after the malformed slot; only a policy bound to a
// NAT interface (p.NAT) has them.
func (p *Policy) NATExhaustedSlot() int { return len(p.Rules) + 2 }

// NATFragmentSlot: see NATExhaustedSlot.
func (p *Policy) NATFragmentSlot() int { return len(p.Rules) + 3 }

// Slots is the number of counter slots the policy needs.
func (p *Policy) Slots() int {
	if p.NAT {
		return len(p.Rules) + 4
	}
	return len(p.Rules) + 2
}
