package eval

import (
	"net/netip"
	"slices"
	"strconv"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// This file decides what NAT does with a packet an interface's policy
// passed (docs/nat.md, "Which packets are translated").

const protoICMP = wire.ProtoICMP

// NATStep is what translated a packet.
type NATStep uint8

const (
	// NATNone: nothing did.
	NATNone NATStep = iota
	// NATMasquerade: a masquerade block, for a new flow.
	NATMasquerade
	// NATForward: a forward block, for a new flow.
	NATForward
	// NATStatic: a static block, for a new flow (recorded in its entry).
	NATStatic
	// NATFlow: the entry of the translated flow a later packet in its
	// original direction belongs to.
	NATFlow
	// NATReply: the entry of the translated flow a reply belongs to.
	NATReply
	// NATError: the entry of the translated flow an ICMP error is about.
	NATError
	// NATFragment: the record of a later fragment's first fragment.
	NATFragment
)

var natStepNames = [...]string{"none", "masquerade", "forward", "static", "established", "reply", "icmp-error", "fragment"}

func (s NATStep) String() string {
	if int(s) < len(natStepNames) {
		return natStepNames[s]
	}
	return "NATStep(" + strconv.Itoa(int(s)) + ")"
}

// Translated is a packet's translation: which end of it (of the packet an
// ICMP error carries, for NATError) was rewritten, from what to what.
type Translated struct {
	Step NATStep
	// Name is the forward block's, for NATForward.
	Name string
	// Source says the source was rewritten, else the destination.
	Source   bool
	From, To conntrack.Endpoint
}

// String says it as an explanation does: "masquerade 10.0.0.5:40000 ->
// 203.0.113.1:20001", "forward web 203.0.113.1:8080 -> 10.0.0.5:80";
// a later fragment's ends are addresses only.
func (t *Translated) String() string {
	s := t.Step.String()
	if t.Name != "" {
		s += " " + t.Name
	}
	if t.Step == NATFragment {
		return s + " " + t.From.Addr.String() + " -> " + t.To.Addr.String()
	}
	return s + " " + t.From.String() + " -> " + t.To.String()
}

// natPlan is what NAT does with a passed packet: drop it (RuleNATExhausted,
// RuleNATFragment), rewrite it, and for a new flow the translation its
// entry records.
type natPlan struct {
	drop    string
	rewrite *natRewrite
	record  *nat.Translation
}

// natRewrite rewrites one end of a packet, or of the packet an ICMP error
// carries.
type natRewrite struct {
	Translated
	icmpError bool
	// frag is what the later fragments of this packet get, when it is a
	// first fragment.
	frag nat.Frag
}

// newRewrite returns the rewrite of the end holding from to to, nil when
// it already holds it.
func newRewrite(step NATStep, name string, source bool, from, to conntrack.Endpoint) *natRewrite {
	if from == to {
		return nil
	}
	return &natRewrite{Translated: Translated{Step: step, Name: name, Source: source, From: from, To: to}, frag: fragOf(source, to.Addr)}
}

func fragOf(source bool, a netip.Addr) nat.Frag {
	if source {
		return nat.Frag{Addr: a, Which: nat.FragSource}
	}
	return nat.Frag{Addr: a, Which: nat.FragDestination}
}

// apply returns a rewritten copy of frame.
func (r *natRewrite) apply(frame []byte) []byte {
	out := slices.Clone(frame)
	if r.icmpError {
		rewriteError(out, l3Offset(out), r.Source, r.To)
	} else {
		rewritePacket(out, l3Offset(out), r.Source, r.To)
	}
	return out
}

func (r *natRewrite) describe() *Translated {
	t := r.Translated
	return &t
}

// fragRecord is what the later fragments of first fragment pkt get, and
// whether it is recorded: a translated packet's address rewrite (an ICMP
// error's is not recorded); an untranslated one on an address that needs
// translation (needsTranslation) is recorded as untranslated, so its later
// fragments pass; others are not recorded.
func (r *natRewrite) fragRecord(i *hostInterface, pkt *Packet) (nat.Frag, bool) {
	switch {
	case r != nil:
		return r.frag, !r.icmpError
	case needsTranslation(i, pkt):
		return nat.Frag{Addr: netip.AddrFrom4([4]byte{}), Which: nat.FragUntranslated}, true
	}
	return nat.Frag{}, false
}

// fragKey is the fragment map's key of a well-formed IPv4 frame as it
// arrived.
func fragKey(frame []byte) nat.FragKey {
	l3 := l3Offset(frame)
	return nat.FragKey{
		Src:   netip.AddrFrom4([4]byte(frame[l3+ipv4SrcOffset:])),
		Dst:   netip.AddrFrom4([4]byte(frame[l3+ipv4DstOffset:])),
		ID:    be16(frame, l3+4),
		Proto: frame[l3+9],
	}
}

// plan decides what the NAT part of interface i does with the IPv4
// packet pkt its policy passed, fl being what the tables say of it. A
// flow's translation is decided by the packet that creates its entry and
// kept in the entry (a TCP segment reopening a translated entry keeps
// it); untracked and invalid packets are never translated.
func (h *Host) plan(i *hostInterface, pkt *Packet, frame []byte, fl *flowRef, now uint64) natPlan {
	arrived := trackedPacket(pkt)
	switch {
	case pkt.Fragment == policy.FragLater:
		return h.planLaterFragment(i, pkt, frame)
	case arrived.Kind == conntrack.KindICMPError:
		return h.planError(i, pkt, fl)
	case arrived.Kind == conntrack.KindUntracked, fl.status == conntrack.StatusInvalid:
		return natPlan{}
	}
	if tr, ok := h.nat.Translation(fl.key); ok && fl.found {
		p := planFlow(i, &arrived, fl, tr)
		if fl.status == conntrack.StatusNew {
			p.record = &tr
		}
		return p
	}
	if fl.status == conntrack.StatusNew {
		return h.planNew(i, &arrived, fl, now)
	}
	return natPlan{}
}

// inbound is the direction, relative to a flow translated as kind, of its
// packets that arrive on the side role and are translated there: on the
// outside the replies of source NAT and the originals of destination NAT,
// on the inside the others.
func inbound(role policy.NATRole, kind conntrack.NATKind) conntrack.Dir {
	if (role == policy.NATOutside) == (kind == conntrack.NATSource) {
		return conntrack.Reply
	}
	return conntrack.Original
}

// otherSide is what the rewritten end of flow k translated by tr is on the
// side opposite role: a packet arriving on role leaves with it. Source
// NAT's end is the original on the inside and To on the outside;
// destination NAT's the original on the outside and To on the inside.
func otherSide(role policy.NATRole, tr nat.Translation, k conntrack.Key) conntrack.Endpoint {
	if (role == policy.NATOutside) == (tr.Kind == conntrack.NATSource) {
		return tr.Rewritten(k)
	}
	return tr.To
}

// flowDirection is the direction of the flow's packet from src to dst
// relative to its entry e, and whether src is the rewritten end of tr.
func flowDirection(e conntrack.Entry, tr nat.Translation, src, dst conntrack.Endpoint) (conntrack.Dir, bool) {
	_, srcIsLo := conntrack.NewKey(4, 0, src, dst)
	d := conntrack.Reply
	if srcIsLo == (e.Flags&conntrack.FlagOrigLo != 0) {
		d = conntrack.Original
	}
	return d, srcIsLo == tr.Lo
}

// planFlow translates a packet of a translated flow by its entry, when it
// goes the way the interface translates.
func planFlow(i *hostInterface, arrived *conntrack.Packet, fl *flowRef, tr nat.Translation) natPlan {
	d, source := flowDirection(fl.entry, tr, fl.packet.Src, fl.packet.Dst)
	if d != inbound(i.role, tr.Kind) {
		return natPlan{}
	}
	from := arrived.Dst
	if source {
		from = arrived.Src
	}
	step := NATFlow
	if d == conntrack.Reply {
		step = NATReply
	}
	return natPlan{rewrite: newRewrite(step, "", source, from, otherSide(i.role, tr, fl.key))}
}

// planNew translates the first packet of a flow by the steps of the
// interface's side, in order, and says what its entry records.
func (h *Host) planNew(i *hostInterface, p *conntrack.Packet, fl *flowRef, now uint64) natPlan {
	n := i.nat
	if i.role == policy.NATOutside {
		for _, f := range n.Forwards {
			if p.Proto == f.Proto && p.Dst.Addr == f.Dst && inRange(f.DstPorts, p.Dst.Port) {
				to := conntrack.Endpoint{Addr: f.To, Port: f.ToPort}
				if to.Port == 0 {
					to.Port = p.Dst.Port
				}
				return h.fixed(NATForward, f.Name, p, fl.key, false, to, now)
			}
		}
		for _, s := range n.Statics {
			if p.Dst.Addr == s.Outside {
				return h.fixed(NATStatic, "", p, fl.key, false, conntrack.Endpoint{Addr: s.Inside, Port: p.Dst.Port}, now)
			}
		}
		return natPlan{}
	}
	for _, s := range n.Statics {
		if p.Src.Addr == s.Inside {
			return h.fixed(NATStatic, "", p, fl.key, true, conntrack.Endpoint{Addr: s.Outside, Port: p.Src.Port}, now)
		}
	}
	for _, m := range n.Masquerades {
		if inPrefix(m.Src, p.Src.Addr) {
			return h.masquerade(m, p, fl.key, now)
		}
	}
	return natPlan{}
}

func inRange(r policy.Range, port uint16) bool { return r.Lo <= uint32(port) && uint32(port) <= r.Hi }

func inPrefix(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// translation is the translation of flow k, whose first packet p has its
// source (or destination) rewritten to to.
func translation(p *conntrack.Packet, k conntrack.Key, source bool, to conntrack.Endpoint) nat.Translation {
	from, kind := p.Dst, conntrack.NATDestination
	if source {
		from, kind = p.Src, conntrack.NATSource
	}
	return nat.Translation{Kind: kind, Lo: k.Lo == from, To: to}
}

// fixed translates the first packet p of flow k by a forward or static
// block: its translated tuple is fixed, and when it has a live alias the
// packet is dropped as exhausted.
func (h *Host) fixed(step NATStep, name string, p *conntrack.Packet, k conntrack.Key, source bool, to conntrack.Endpoint, now uint64) natPlan {
	tr := translation(p, k, source, to)
	if h.nat.Taken(tr.AliasKey(k), k, now) {
		return natPlan{drop: RuleNATExhausted}
	}
	from := p.Dst
	if source {
		from = p.Src
	}
	return natPlan{rewrite: newRewrite(step, name, source, from, to), record: &tr}
}

// masquerade translates the first packet p of flow k by masquerade block
// m: a port allocated from its range (port 0, without a search, for a
// protocol without ports), or a drop when none is free.
func (h *Host) masquerade(m policy.Masquerade, p *conntrack.Packet, k conntrack.Key, now uint64) natPlan {
	if p.Kind == conntrack.KindOther {
		return h.fixed(NATMasquerade, "", p, k, true, conntrack.Endpoint{Addr: m.To}, now)
	}
	port, ok := h.nat.Allocate(nat.Ports{Lo: uint16(m.Ports.Lo), Hi: uint16(m.Ports.Hi)}, m.To, k, p.Src, p.Dst, now)
	if !ok {
		return natPlan{drop: RuleNATExhausted}
	}
	to := conntrack.Endpoint{Addr: m.To, Port: port}
	tr := translation(p, k, true, to)
	return natPlan{rewrite: newRewrite(NATMasquerade, "", true, p.Src, to), record: &tr}
}

// endpoint is pkt's source (or destination) address with its port or echo
// identifier, 0 when it has neither.
func endpoint(pkt *Packet, source bool) conntrack.Endpoint {
	e := conntrack.Endpoint{Addr: pkt.Dst, Port: pkt.DstPort}
	if source {
		e = conntrack.Endpoint{Addr: pkt.Src, Port: pkt.SrcPort}
	}
	if pkt.HasICMP {
		e.Port = pkt.EchoID
	}
	return e
}

// planError translates an ICMP error about a translated flow when the
// packet it carries went out through the interface's side: that packet's
// rewritten end gets what it is on the other side.
func (h *Host) planError(i *hostInterface, pkt *Packet, fl *flowRef) natPlan {
	if fl.status != conntrack.StatusRelated {
		return natPlan{}
	}
	tr, ok := h.nat.Translation(fl.key)
	if !ok {
		return natPlan{}
	}
	src, dst := pkt.Carried.Src, pkt.Carried.Dst
	if fl.viaAlias {
		src, dst = mapBack(src, dst, fl.aliasKey, fl.alias)
	}
	d, source := flowDirection(fl.entry, tr, src, dst)
	if d == inbound(i.role, tr.Kind) {
		return natPlan{}
	}
	from := pkt.Carried.Dst
	if source {
		from = pkt.Carried.Src
	}
	r := newRewrite(NATError, "", source, from, otherSide(i.role, tr, fl.key))
	if r == nil {
		return natPlan{}
	}
	r.icmpError = true
	return natPlan{rewrite: r}
}

// planLaterFragment gives a later fragment its first fragment's address
// rewrite; without a record, a later fragment of a flow that needs
// translation is dropped.
func (h *Host) planLaterFragment(i *hostInterface, pkt *Packet, frame []byte) natPlan {
	f, ok := h.nat.Fragment(fragKey(frame))
	switch {
	case !ok && needsTranslation(i, pkt):
		return natPlan{drop: RuleNATFragment}
	case !ok || f.Which == nat.FragUntranslated:
		return natPlan{}
	}
	source := f.Which == nat.FragSource
	from := conntrack.Endpoint{Addr: pkt.Dst}
	if source {
		from.Addr = pkt.Src
	}
	return natPlan{rewrite: newRewrite(NATFragment, "", source, from, conntrack.Endpoint{Addr: f.Addr})}
}

// needsTranslation reports whether a packet with pkt's addresses may
// belong to a flow the interface translates: on the outside, to a
// masquerade's to, a forward's dst or a static outside address; on the
// inside, from a masquerade's src, a static inside address or a
// forward's to.
func needsTranslation(i *hostInterface, pkt *Packet) bool {
	n := i.nat
	if i.role == policy.NATOutside {
		for _, m := range n.Masquerades {
			if pkt.Dst == m.To {
				return true
			}
		}
		for _, f := range n.Forwards {
			if pkt.Dst == f.Dst {
				return true
			}
		}
		for _, s := range n.Statics {
			if pkt.Dst == s.Outside {
				return true
			}
		}
		return false
	}
	for _, m := range n.Masquerades {
		if inPrefix(m.Src, pkt.Src) {
			return true
		}
	}
	for _, f := range n.Forwards {
		if pkt.Src == f.To {
			return true
		}
	}
	for _, s := range n.Statics {
		if pkt.Src == s.Inside {
			return true
		}
	}
	return false
}
