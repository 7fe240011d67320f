package eval

import (
	"fmt"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/policy"
)

// Host is one network namespace with xdpc on several of its interfaces,
// each deciding by its policy and, on a nat block's interfaces,
// translating as its part (docs/nat.md). The interfaces share the
// namespace's one connection table and its one NAT state: aliases,
// fragment records, reserved ports and the seed. It predicts, frame by
// frame and byte by byte, what the datapath does.
//
// The clock is the frames' timestamps, as a Session's: it never goes back.
// A Host is not safe for concurrent use.
type Host struct {
	ifaces map[string]*hostInterface
	table  *conntrack.Table
	nat    *nat.Table
	now    uint64
}

// hostInterface is an interface of the file and the part it plays.
type hostInterface struct {
	policy *policy.Policy
	tracks bool
	// nat is the interface's nat block, nil when it plays no part.
	nat  *policy.NAT
	role policy.NATRole
}

// HostOptions are the NAT state a Host starts with.
type HostOptions struct {
	// Seed is the NAT table's seed (nat.Hash), as the datapath's
	// settings map holds it.
	Seed uint32
	// Reserved are the ports masquerade never allocates (the host's
	// listening sockets), as apply fills the reserved-ports map.
	Reserved []nat.Reserved
}

// NewHost returns a host of the interfaces cfg binds to policies, with an
// empty connection table of cfg's conntrack settings and an empty NAT
// state.
func NewHost(cfg *policy.Config, opts HostOptions) *Host {
	h := &Host{
		ifaces: map[string]*hostInterface{},
		table:  conntrack.NewTable(cfg.Conntrack.Timeouts),
		nat:    nat.NewTable(opts.Seed, opts.Reserved),
	}
	for _, i := range cfg.Interfaces {
		hi := &hostInterface{policy: i.Policy, tracks: i.Policy.TracksConnections()}
		if b, ok := cfg.NATOf(i.Name); ok {
			hi.nat, hi.role = b.NAT, b.Role
		}
		h.ifaces[i.Name] = hi
	}
	return h
}

// iface returns interface ifname; it panics when the file binds none.
func (h *Host) iface(ifname string) *hostInterface {
	i, ok := h.ifaces[ifname]
	if !ok {
		panic(fmt.Sprintf("eval: host has no interface %q", ifname))
	}
	return i
}

// Now returns the host's clock.
func (h *Host) Now() uint64 { return h.now }

func (h *Host) advance(now uint64) uint64 {
	h.now = max(h.now, now)
	return h.now
}

// HostResult is what an interface of a Host did with an arriving frame.
type HostResult struct {
	// Result is the decision: the policy's, with its packet's ct_state
	// read from the table (and on a NAT interface the NAT map); or, when
	// NAT dropped the packet the policy passed, RuleNATExhausted or
	// RuleNATFragment on its counter slot (count rules that matched stay
	// in Counted).
	Result
	// Frame is the frame as NAT leaves it: a rewritten copy when NAT
	// translated it, else the frame given. Forwarding is not modelled:
	// a frame the datapath redirects after a FIB lookup also gets the
	// next hop's MAC addresses and a TTL one lower.
	Frame []byte
	// NAT says what translated the frame; nil when nothing did.
	NAT *Translated
}

// Names of NAT's decisions (docs/nat.md): the packet was dropped after
// the policy passed it, on the policy's nat-exhausted or nat-fragment
// counter.
const (
	RuleNATExhausted = "nat-exhausted"
	RuleNATFragment  = "nat-fragment"
)

// Ingress decides what interface ifname does with frame, arriving at
// time now: its policy's decision on the packet as it arrived, then, on a
// NAT interface, its translation. A packet passed or redirected (and not
// dropped by NAT) is recorded in the connection table, on its flow's one
// entry, which it refreshes with its alias. It panics when the file binds
// no policy to ifname.
func (h *Host) Ingress(ifname string, frame []byte, now uint64) HostResult {
	return h.ingress(h.iface(ifname), frame, h.advance(now), nil)
}

// HostExplanation is Host.Ingress with its reasons: the policy's decision
// explained (Explanation, whose Result is the policy's, before NAT), and
// what the interface finally did (Outcome).
type HostExplanation struct {
	Explanation
	Outcome HostResult
	// NAT says the interface plays a part in NAT.
	NAT bool
}

// Explain is Ingress with its reasons; it records the frame as Ingress
// does.
func (h *Host) Explain(ifname string, frame []byte, now uint64) HostExplanation {
	i := h.iface(ifname)
	x := HostExplanation{NAT: i.nat != nil}
	x.Outcome = h.ingress(i, frame, h.advance(now), &x)
	return x
}

// String renders the explanation as Explanation.String does, then a line
// for NAT on a NAT interface.
func (x HostExplanation) String() string {
	s := x.Explanation.String()
	switch {
	case x.Outcome.NAT != nil:
		return s + "nat: " + x.Outcome.NAT.String() + "\n"
	case x.Outcome.Rule == RuleNATExhausted:
		return s + "nat: drop: no free port, or the translated tuple is taken (nat-exhausted)\n"
	case x.Outcome.Rule == RuleNATFragment:
		return s + "nat: drop: a later fragment of a flow that needs translation, its first fragment not seen (nat-fragment)\n"
	case x.NAT && x.Malformed == nil && x.Outcome.Verdict != policy.ActionDrop:
		return s + "nat: not translated\n"
	}
	return s
}

func (h *Host) ingress(i *hostInterface, frame []byte, now uint64, x *HostExplanation) HostResult {
	var pkt Packet
	if reason, off := parse(frame, &pkt); reason != "" {
		res := HostResult{Result: malformedResult(i.policy, reason), Frame: frame}
		if x != nil {
			x.Malformed, x.Result = &Malformed{Reason: reason, Offset: off}, res.Result
		}
		return res
	}
	var fl flowRef
	var trace *CTTrace
	if i.tracks {
		fl = h.lookup(i, trackedPacket(&pkt), now)
		pkt.CTState = fl.status
		if x != nil {
			trace = h.trace(&pkt, &fl, now)
		}
	}
	var steps *[]Step
	if x != nil {
		steps = &x.Steps
		defer func() {
			explained := pkt
			x.Packet, x.CT = &explained, trace
		}()
	}
	res := HostResult{Result: decide(i.policy, &pkt, steps), Frame: frame}
	res.CTState = pkt.CTState
	if x != nil {
		x.Result = res.Result
	}
	if res.Verdict != policy.ActionPass && res.Verdict != policy.ActionRedirect {
		return res
	}
	if i.nat == nil || pkt.Family != 4 {
		h.record(i, &fl, now, nil, &res, trace)
		return res
	}
	pl := h.plan(i, &pkt, frame, &fl, now)
	if pl.drop != "" {
		return natDrop(res, i.policy, pl.drop)
	}
	h.record(i, &fl, now, pl.record, &res, trace)
	if x != nil {
		x.Result.CTCommit = res.CTCommit
	}
	if pl.rewrite != nil {
		res.Frame, res.NAT = pl.rewrite.apply(frame), pl.rewrite.describe()
	}
	if pkt.Fragment == policy.FragFirst {
		if f, ok := pl.rewrite.fragRecord(i, &pkt); ok {
			h.nat.RememberFragment(fragKey(frame), f)
		}
	}
	return res
}

// trace is how the tables read pkt, for its explanation: the flow it
// belongs to, found by its tuple or by an alias.
func (h *Host) trace(pkt *Packet, fl *flowRef, now uint64) *CTTrace {
	tr := newTrace(h.table, pkt, &fl.packet, now, false)
	if fl.found {
		tr.Key, tr.Entry, tr.Held = fl.key, fl.entry, true
	}
	return tr
}

// record commits the passed packet of flow fl to the table when
// interface i tracks, with the translation tr its new entry records, and
// notes it in trace when there is one.
func (h *Host) record(i *hostInterface, fl *flowRef, now uint64, tr *nat.Translation, res *HostResult, trace *CTTrace) {
	if !i.tracks {
		return
	}
	res.CTCommit = commitOf(&fl.packet, fl.status, false)
	h.commit(&fl.packet, fl.status, now, false, tr)
	if trace != nil {
		trace.record(h.table, res.CTCommit)
	}
}

// natDrop is res dropped by NAT as rule, on its counter slot of p.
func natDrop(res HostResult, p *policy.Policy, rule string) HostResult {
	slot := p.NATExhaustedSlot()
	if rule == RuleNATFragment {
		slot = p.NATFragmentSlot()
	}
	res.Verdict, res.Target, res.Rule, res.Slot, res.CTCommit = policy.ActionDrop, "", rule, slot, CommitNone
	return res
}

// Egress records frame, sent by the host out of interface ifname at time
// now, as the datapath's TC egress program does (Session.Egress): its
// ct_state from the table (and on a NAT interface the NAT map), and its
// commit on its flow's entry. It translates nothing, and commits nothing
// for a packet of a translated flow (found through the NAT map, or whose
// entry has a translation): the XDP program it came through committed it.
func (h *Host) Egress(ifname string, frame []byte, now uint64) EgressResult {
	i := h.iface(ifname)
	now = h.advance(now)
	var pkt Packet
	if reason, _ := parse(frame, &pkt); reason != "" {
		return EgressResult{Malformed: reason}
	}
	if !i.tracks {
		return EgressResult{}
	}
	fl := h.lookup(i, trackedPacket(&pkt), now)
	res := EgressResult{CTState: fl.status}
	if fl.viaAlias || h.translated(&fl) {
		return res
	}
	res.Commit = commitOf(&fl.packet, fl.status, true)
	h.commit(&fl.packet, fl.status, now, true, nil)
	return res
}

// translated reports whether fl is a live entry with a translation.
func (h *Host) translated(fl *flowRef) bool {
	if !fl.found {
		return false
	}
	_, ok := h.nat.Translation(fl.key)
	return ok
}

// Flows returns the connection table's live entries at time now, sorted
// by key, with the translations they record.
func (h *Host) Flows(now uint64) []conntrack.Flow {
	flows := h.table.Flows(max(now, h.now))
	for j := range flows {
		if tr, ok := h.nat.Translation(flows[j].Key); ok {
			tr.Record(&flows[j].Entry)
		}
	}
	return flows
}

// Aliases returns the NAT map's live aliases at time now, sorted by key.
func (h *Host) Aliases(now uint64) []nat.AliasEntry { return h.nat.Aliases(max(now, h.now)) }

// Fragments returns the fragment map's records, sorted by key.
func (h *Host) Fragments() []nat.FragEntry { return h.nat.Fragments() }

// flowRef is what the tables say about a tracked packet.
type flowRef struct {
	status conntrack.Status
	// packet is the packet as its flow's entry knows it: mapped back
	// through the alias it was found by, else as it arrived.
	packet conntrack.Packet
	// key is the flow's key, and entry its live entry when found; for an
	// ICMP error, the flow of the packet it carries.
	key   conntrack.Key
	entry conntrack.Entry
	found bool
	// aliases says the NAT map is looked up (a NAT interface); viaAlias
	// that the flow was found by the alias of translated tuple aliasKey.
	aliases  bool
	viaAlias bool
	// stale says a live alias was found whose entry is gone: the packet
	// is invalid.
	stale    bool
	aliasKey conntrack.Key
	alias    nat.Alias
}

// lookup reads p's ct_state on interface i: the connection table looked
// up with its tuple and, on a NAT interface, when that finds no live
// entry, the NAT map, whose live alias leads to its flow's entry
// (docs/nat.md). An ICMP error is looked up by the packet it carries.
func (h *Host) lookup(i *hostInterface, p conntrack.Packet, now uint64) flowRef {
	fl := flowRef{packet: p, aliases: i.nat != nil}
	switch p.Kind {
	case conntrack.KindUntracked:
		return fl
	case conntrack.KindICMPError:
		fl.status = conntrack.StatusInvalid
		if p.HasInner {
			k, _ := conntrack.NewKey(p.Family, p.Inner.Proto, p.Inner.Src, p.Inner.Dst)
			if h.find(&fl, k, now) {
				fl.status = conntrack.StatusRelated
			}
		}
		return fl
	}
	k, _ := conntrack.NewKey(p.Family, p.Proto, p.Src, p.Dst)
	if !h.find(&fl, k, now) && fl.stale {
		fl.status = conntrack.StatusInvalid
		return fl
	}
	if fl.viaAlias {
		fl.packet.Src, fl.packet.Dst = mapBack(p.Src, p.Dst, k, fl.alias)
	}
	fl.status = h.table.Status(&fl.packet, now)
	return fl
}

// find looks up flow k in the table, then through the NAT map, filling fl.
func (h *Host) find(fl *flowRef, k conntrack.Key, now uint64) bool {
	fl.key = k
	if e, ok := h.table.Lookup(k); ok && e.Live(now) {
		fl.entry, fl.found = e, true
		return true
	}
	if !fl.aliases {
		return false
	}
	a, ok := h.nat.Alias(k, now)
	if !ok {
		return false
	}
	fk := nat.FlowKey(k, a)
	e, ok := h.table.Lookup(fk)
	if !ok || !e.Live(now) {
		fl.stale = true
		return false
	}
	fl.key, fl.entry, fl.found = fk, e, true
	fl.viaAlias, fl.aliasKey, fl.alias = true, k, a
	return true
}

// mapBack returns the endpoints src and dst of a packet whose tuple is
// the translated tuple ak of alias a, as its flow knows them: the
// translated end replaced by the original (for an echo, both ports).
func mapBack(src, dst conntrack.Endpoint, ak conntrack.Key, a nat.Alias) (conntrack.Endpoint, conntrack.Endpoint) {
	orig := conntrack.Endpoint{Addr: a.OrigAddr, Port: a.OrigPort}
	translated := ak.Hi
	if a.Lo {
		translated = ak.Lo
	}
	if src == translated {
		src = orig
	} else {
		dst = orig
	}
	if ak.Proto == protoICMP {
		src.Port, dst.Port = orig.Port, orig.Port
	}
	return src, dst
}

// commit records p of status st in the table (conntrack.Table.Commit) and
// keeps the NAT state with it: an entry a packet creates records the
// translation tr (nil: none, and any translation of the entry it
// replaces is forgotten); an entry a packet refreshes refreshes its alias.
func (h *Host) commit(p *conntrack.Packet, st conntrack.Status, now uint64, egress bool, tr *nat.Translation) {
	c := commitOf(p, st, egress)
	if c == CommitNone {
		return
	}
	k, _ := conntrack.NewKey(p.Family, p.Proto, p.Src, p.Dst)
	h.table.Commit(p, st, now, egress)
	e, _ := h.table.Lookup(k)
	switch {
	case c == CommitUpdate:
		h.nat.Refresh(k, e.Expires)
	case tr != nil:
		h.nat.Translate(k, *tr, e.Expires)
	default:
		h.nat.Forget(k)
	}
}
