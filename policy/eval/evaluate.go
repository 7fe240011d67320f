package eval

import (
	"net/netip"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
)

// Result is the decision of a policy on one frame.
type Result struct {
	Verdict   policy.Action // ActionPass, ActionDrop or ActionRedirect
	Target    string        // the interface of a redirect
	Rule      string        // deciding rule name, "default" or "malformed"
	Slot      int           // counter slot of the decision
	Counted   []int         // slots of count rules that matched, in order
	Malformed string        // reason, when Rule == "malformed"
	// CTState is the packet's ct_state as the rules saw it: StatusNone
	// when the policy does not track connections, and for a packet that
	// is not tracked or malformed.
	CTState conntrack.Status
	// CTCommit is what recording the packet does to the connection table:
	// CommitNone unless the policy tracks connections and passes or
	// redirects the packet.
	CTCommit Commit
}

// Names of the two decisions that are not rules.
const (
	RuleDefault   = "default"
	RuleMalformed = "malformed"
)

// Evaluate decides what p does with frame, by docs/datapath.md: a malformed
// frame gets p.Malformed on the malformed slot; otherwise rules are tried in
// order, matching count rules are recorded and skipped over, and the first
// matching pass, drop or redirect rule decides, else p.Default on the default slot.
//
// Evaluate keeps no state. For a policy that tracks connections it decides
// as a fresh Session would, with an empty connection table: a TCP SYN, a
// UDP packet, an echo request or a packet of another protocol is new, any
// other TCP segment, an echo reply or an ICMP error invalid, and no packet
// established or related. Frames of a conversation need a Session.
//
// Evaluate does not allocate unless count rules match.
func Evaluate(p *policy.Policy, frame []byte) Result {
	var t *conntrack.Table
	if p.TracksConnections() {
		t = emptyTable
	}
	return ingress(p, t, frame, 0, false, nil)
}

// emptyTable is the connection table of a fresh session, for Evaluate. It
// is only ever read, so Evaluate stays safe to call concurrently.
var emptyTable = conntrack.NewTable(conntrack.Timeouts{})

// ingress decides what p does with frame arriving at time now, its
// ct_state from table t (nil when p does not track connections). With
// record, a packet the policy passes or redirects is committed to t. When
// x is not nil it receives the explanation: the packet, the rules tried
// and how the table read the packet.
func ingress(p *policy.Policy, t *conntrack.Table, frame []byte, now uint64, record bool, x *Explanation) Result {
	var pkt Packet
	if reason, off := parse(frame, &pkt); reason != "" {
		res := malformedResult(p, reason)
		if x != nil {
			x.Malformed, x.Result = &Malformed{Reason: reason, Offset: off}, res
		}
		return res
	}
	var cp conntrack.Packet
	var trace *CTTrace
	if t != nil {
		cp = trackedPacket(&pkt)
		pkt.CTState = t.Status(&cp, now)
		if x != nil {
			trace = newTrace(t, &pkt, &cp, now, false)
		}
	}
	var steps *[]Step
	if x != nil {
		steps = &x.Steps
	}
	res := decide(p, &pkt, steps)
	res.CTState = pkt.CTState
	if t != nil && (res.Verdict == policy.ActionPass || res.Verdict == policy.ActionRedirect) {
		res.CTCommit = commitOf(&cp, pkt.CTState, false)
		if record {
			t.Commit(&cp, pkt.CTState, now, false)
		}
		if trace != nil {
			trace.record(t, res.CTCommit)
		}
	}
	if x != nil {
		explained := pkt
		x.Packet, x.CT, x.Result = &explained, trace, res
	}
	return res
}

func malformedResult(p *policy.Policy, reason string) Result {
	return Result{Verdict: p.Malformed, Rule: RuleMalformed, Slot: p.MalformedSlot(), Malformed: reason}
}

// decide runs the rules of p on the well-formed packet pkt. When steps is not
// nil it records, for each rule tried, whether it matched and why not.
func decide(p *policy.Policy, pkt *Packet, steps *[]Step) Result {
	var counted []int
	for i, r := range p.Rules {
		field, out := matchRule(r, pkt)
		if steps != nil {
			*steps = append(*steps, newStep(r, field, out, pkt))
		}
		if out != outcomeMatch {
			continue
		}
		if !r.Action.Terminal() {
			counted = append(counted, slot(r, i))
			continue
		}
		return Result{Verdict: r.Action, Target: r.To, Rule: r.Name, Slot: slot(r, i), Counted: counted}
	}
	return Result{Verdict: p.Default, Rule: RuleDefault, Slot: p.DefaultSlot(), Counted: counted}
}

// slot is the counter slot of rule r at position i: its Index, which the
// checker keeps equal to its position.
func slot(r *policy.Rule, i int) int {
	if r.Index != i {
		panic("eval: rule index differs from its position in the policy")
	}
	return r.Index
}

// outcome is how one match fared against a packet.
type outcome uint8

const (
	// outcomeMatch: the packet has the field and its value satisfies the match.
	outcomeMatch outcome = iota
	// outcomeAbsent: the packet does not have the field.
	outcomeAbsent
	// outcomeFamily: the address is of a family the match lists no prefix of.
	outcomeFamily
	// outcomeValue: the value is not among the values (or is, when negated).
	outcomeValue
)

// matchRule returns the first field of r that pkt fails and how, or
// (0, outcomeMatch) when every field matches.
func matchRule(r *policy.Rule, pkt *Packet) (policy.Field, outcome) {
	for i := range r.Matches {
		m := &r.Matches[i]
		if out := matchField(m, pkt); out != outcomeMatch {
			return m.Field, out
		}
	}
	return 0, outcomeMatch
}

// matchField tests one match against pkt. A field the packet does not have
// never matches, negated or not; neither does an address when the match
// holds no prefix of its family.
func matchField(m *policy.Match, pkt *Packet) outcome {
	if !has(m.Field, pkt) {
		return outcomeAbsent
	}
	var in bool
	switch m.Field {
	case policy.FieldSrc, policy.FieldDst:
		var family bool
		in, family = inPrefixes(prefixes(m), address(m.Field, pkt))
		if !family {
			return outcomeFamily
		}
	case policy.FieldSrcMAC, policy.FieldDstMAC:
		in = inMACs(macs(m), mac(m.Field, pkt))
	case policy.FieldTCPFlags:
		in = m.Flags.Matches(pkt.TCPFlags)
	case policy.FieldFragment:
		in = m.Fragments.Has(pkt.Fragment)
	case policy.FieldCTState:
		in = m.CTStates.Has(pkt.CTState)
	default:
		in = inRanges(ranges(m), value(m.Field, pkt))
	}
	if in != m.Negate {
		return outcomeMatch
	}
	return outcomeValue
}

// has reports whether pkt has field f (docs/datapath.md, "Which packets have
// which field").
func has(f policy.Field, pkt *Packet) bool {
	switch f {
	case policy.FieldEtherType, policy.FieldSrcMAC, policy.FieldDstMAC:
		return true
	case policy.FieldVLAN:
		return pkt.Tags >= 1
	case policy.FieldInnerVLAN:
		return pkt.Tags == 2
	case policy.FieldSrc, policy.FieldDst, policy.FieldProto, policy.FieldTTL,
		policy.FieldLength, policy.FieldFragment:
		return pkt.Family != 0
	case policy.FieldSrcPort, policy.FieldDstPort:
		return pkt.HasPorts
	case policy.FieldTCPFlags:
		return pkt.HasTCPFlags
	case policy.FieldICMPType, policy.FieldICMPCode:
		return pkt.HasICMP
	case policy.FieldCTState:
		return pkt.CTState != conntrack.StatusNone
	}
	return false
}

// value is the numeric value of a range-kind field of pkt.
func value(f policy.Field, pkt *Packet) uint32 {
	switch f {
	case policy.FieldEtherType:
		return uint32(pkt.EtherType)
	case policy.FieldVLAN:
		return uint32(pkt.VLAN[0])
	case policy.FieldInnerVLAN:
		return uint32(pkt.VLAN[1])
	case policy.FieldProto:
		return uint32(pkt.Proto)
	case policy.FieldSrcPort:
		return uint32(pkt.SrcPort)
	case policy.FieldDstPort:
		return uint32(pkt.DstPort)
	case policy.FieldICMPType:
		return uint32(pkt.ICMPType)
	case policy.FieldICMPCode:
		return uint32(pkt.ICMPCode)
	case policy.FieldTTL:
		return uint32(pkt.TTL)
	case policy.FieldLength:
		return pkt.Length
	}
	return 0
}

func address(f policy.Field, pkt *Packet) netip.Addr {
	if f == policy.FieldSrc {
		return pkt.Src
	}
	return pkt.Dst
}

func mac(f policy.Field, pkt *Packet) policy.MAC {
	if f == policy.FieldSrcMAC {
		return pkt.SrcMAC
	}
	return pkt.DstMAC
}

// ranges, prefixes and macs are the values of m: its set's when it names one.
func ranges(m *policy.Match) []policy.Range {
	if m.Set != nil {
		return m.Set.Ports
	}
	return m.Values
}

func prefixes(m *policy.Match) []netip.Prefix {
	if m.Set != nil {
		return m.Set.Prefixes
	}
	return m.Prefixes
}

func macs(m *policy.Match) []policy.MAC {
	if m.Set != nil {
		return m.Set.MACs
	}
	return m.MACs
}

// inRanges reports whether v lies in one of rs, which are sorted and
// disjoint.
func inRanges(rs []policy.Range, v uint32) bool {
	lo, hi := 0, len(rs)
	for lo < hi { // first range with Hi >= v
		mid := int(uint(lo+hi) >> 1)
		if rs[mid].Hi < v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo < len(rs) && rs[lo].Lo <= v
}

// inPrefixes reports whether a lies in one of ps, and whether ps holds any
// prefix of a's family at all.
func inPrefixes(ps []netip.Prefix, a netip.Addr) (in, family bool) {
	for _, p := range ps {
		if p.Addr().Is4() != a.Is4() {
			continue
		}
		family = true
		if p.Contains(a) {
			return true, true
		}
	}
	return false, family
}

func inMACs(ms []policy.MAC, m policy.MAC) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}
