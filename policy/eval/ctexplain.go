package eval

import (
	"fmt"
	"time"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// CTTrace is how the connection table read one frame and what recording
// it did: the flow looked up, the entry found there, the ct_state that
// follows, and the entry afterwards.
type CTTrace struct {
	// Packet is what the tracker read of the frame (Track).
	Packet conntrack.Packet
	// Now is the time the frame was taken at; Egress says the host sent it.
	Now    uint64
	Egress bool
	// Untracked says why the packet is not tracked ("" when it is).
	Untracked string
	// Key is the flow looked up: the packet's own, or for an ICMP error
	// the embedded packet's. Searched is false when none was: the packet
	// is not tracked, or is an error carrying too little of its packet.
	Key      conntrack.Key
	Searched bool
	// Entry is what the table held for Key before the frame, live or
	// dead; Held says it held one.
	Entry conntrack.Entry
	Held  bool
	// Status is the packet's ct_state.
	Status conntrack.Status
	// Recorded says the frame was committed to the table: passed or
	// redirected on ingress, or sent by the host. Commit is what that did,
	// and After the packet's entry afterwards (when Commit is not
	// CommitNone).
	Recorded bool
	Commit   Commit
	After    conntrack.Entry
}

// newTrace reads how table t sees the tracked packet cp of pkt at now,
// before it is recorded.
func newTrace(t *conntrack.Table, pkt *Packet, cp *conntrack.Packet, now uint64, egress bool) *CTTrace {
	tr := &CTTrace{Packet: *cp, Now: now, Egress: egress, Status: pkt.CTState}
	switch {
	case cp.Kind == conntrack.KindUntracked:
		tr.Untracked = untrackedReason(pkt)
		return tr
	case cp.Kind == conntrack.KindICMPError && !cp.HasInner:
		return tr
	case cp.Kind == conntrack.KindICMPError:
		tr.Key, _ = conntrack.NewKey(cp.Family, cp.Inner.Proto, cp.Inner.Src, cp.Inner.Dst)
	default:
		tr.Key, _ = conntrack.NewKey(cp.Family, cp.Proto, cp.Src, cp.Dst)
	}
	tr.Searched = true
	tr.Entry, tr.Held = t.Lookup(tr.Key)
	return tr
}

// record notes that the frame was committed to t with the effect c.
func (tr *CTTrace) record(t *conntrack.Table, c Commit) {
	tr.Recorded, tr.Commit = true, c
	if c != CommitNone {
		k, _ := conntrack.NewKey(tr.Packet.Family, tr.Packet.Proto, tr.Packet.Src, tr.Packet.Dst)
		tr.After, _ = t.Lookup(k)
	}
}

// untrackedReason says why the well-formed packet pkt is not tracked.
func untrackedReason(pkt *Packet) string {
	switch {
	case pkt.Family == 0:
		return fmt.Sprintf("not IP (ether_type 0x%04x)", pkt.EtherType)
	case pkt.Fragment == policy.FragLater:
		return "a non-first fragment"
	case pkt.HasICMP:
		return fmt.Sprintf("%s %s is neither an echo nor an error", protoName(pkt.Proto), icmpTypeText(pkt.Family, pkt.ICMPType))
	}
	return "not tracked"
}

// String renders the trace as two lines: the ct_state and why
// (StateLine), and what recording the frame did (EffectLine).
func (tr *CTTrace) String() string { return tr.StateLine() + tr.EffectLine() }

// StateLine is "ct_state: STATUS (why)" and a newline.
func (tr *CTTrace) StateLine() string {
	return fmt.Sprintf("ct_state: %s (%s)\n", tr.Status, tr.why())
}

// EffectLine is "conntrack: what recording the frame did" and a newline.
func (tr *CTTrace) EffectLine() string { return fmt.Sprintf("conntrack: %s\n", tr.effect()) }

// why says where the packet's ct_state came from.
func (tr *CTTrace) why() string {
	p := &tr.Packet
	live := tr.Held && tr.Entry.Live(tr.Now)
	switch {
	case tr.Untracked != "":
		return tr.Untracked
	case p.Kind == conntrack.KindICMPError && !p.HasInner:
		return fmt.Sprintf("an %s error that carries too little of its packet to know its flow", protoName(p.Proto))
	case p.Kind == conntrack.KindICMPError:
		about := fmt.Sprintf("an %s error about %s", protoName(p.Proto), flowText(p.Family, p.Inner.Proto, p.Inner.Src, p.Inner.Dst))
		if live {
			return fmt.Sprintf("%s, whose entry is %s", about, tr.Entry.State)
		}
		return fmt.Sprintf("%s, %s", about, tr.noEntry())
	case live && tr.Status == conntrack.StatusNew:
		return fmt.Sprintf("entry %s in %s: a SYN from its originator reopens the connection", tr.entryFlow(), tr.Entry.State)
	case live:
		_, srcIsLo := conntrack.NewKey(p.Family, p.Proto, p.Src, p.Dst)
		d := conntrack.Original
		if srcIsLo != (tr.Entry.Flags&conntrack.FlagOrigLo != 0) {
			d = conntrack.Reply
		}
		return fmt.Sprintf("entry %s in %s, this packet the %s way", tr.entryFlow(), tr.Entry.State, d)
	case tr.Status == conntrack.StatusNew:
		return fmt.Sprintf("%s, and %s starts one", tr.noEntry(), packetText(p))
	}
	return fmt.Sprintf("%s, and %s cannot start one", tr.noEntry(), packetText(p))
}

// noEntry says that Key has no live entry, and when its entry died.
func (tr *CTTrace) noEntry() string {
	if tr.Held {
		return fmt.Sprintf("its entry (%s) expired %s ago", tr.Entry.State, time.Duration(tr.Now-tr.Entry.Expires))
	}
	return "no entry"
}

// entryFlow is the flow of the entry found, in its original direction.
func (tr *CTTrace) entryFlow() string {
	from, to := tr.Key.Original(tr.Entry.Flags&conntrack.FlagOrigLo != 0)
	return flowText(tr.Key.Family, tr.Key.Proto, from, to)
}

// effect says what recording the frame did to the table.
func (tr *CTTrace) effect() string {
	p := &tr.Packet
	switch {
	case !tr.Recorded:
		return "nothing recorded (the packet is dropped)"
	case tr.Commit == CommitCreate && tr.Held:
		return fmt.Sprintf("creates entry %s in %s for %s, replacing the one in %s",
			flowText(p.Family, p.Proto, p.Src, p.Dst), tr.After.State, tr.lifetime(), tr.Entry.State)
	case tr.Commit == CommitCreate:
		return fmt.Sprintf("creates entry %s in %s for %s", flowText(p.Family, p.Proto, p.Src, p.Dst), tr.After.State, tr.lifetime())
	case tr.Commit == CommitUpdate && tr.After.State != tr.Entry.State:
		return fmt.Sprintf("moves the entry from %s to %s, for %s", tr.Entry.State, tr.After.State, tr.lifetime())
	case tr.Commit == CommitUpdate:
		return fmt.Sprintf("keeps the entry in %s, for %s", tr.After.State, tr.lifetime())
	case tr.Commit == CommitPickup:
		return fmt.Sprintf("picks up the connection the host is in: entry %s in %s for %s",
			flowText(p.Family, p.Proto, p.Src, p.Dst), tr.After.State, tr.lifetime())
	case tr.Untracked != "":
		return "no change (not tracked)"
	}
	if tr.Status == conntrack.StatusInvalid {
		return "no change (an invalid packet changes nothing)"
	}
	return fmt.Sprintf("no change (a %s packet changes nothing)", tr.Status)
}

// lifetime is how long the entry after the frame lives without packets.
func (tr *CTTrace) lifetime() string {
	return time.Duration(tr.After.Expires - tr.Now).String()
}

// flowText renders a flow from src to dst: "tcp 10.0.0.9:40000 >
// 10.0.0.2:22", "icmp 10.0.0.1 > 10.0.0.2 id 7", "gre 10.0.0.1 > 10.0.0.2".
func flowText(family, proto uint8, src, dst conntrack.Endpoint) string {
	switch {
	case proto == wire.ProtoTCP || proto == wire.ProtoUDP:
		return fmt.Sprintf("%s %s > %s", protoName(proto), src, dst)
	case family == 4 && proto == wire.ProtoICMP, family == 6 && proto == wire.ProtoICMPv6:
		return fmt.Sprintf("%s %s > %s id %d", protoName(proto), src.Addr, dst.Addr, src.Port)
	}
	return fmt.Sprintf("%s %s > %s", protoName(proto), src.Addr, dst.Addr)
}

var tcpClassText = map[conntrack.TCPClass]string{
	conntrack.ClassSyn: "SYN", conntrack.ClassSynAck: "SYN+ACK", conntrack.ClassFin: "FIN",
	conntrack.ClassAck: "ACK", conntrack.ClassRst: "RST", conntrack.ClassNone: "segment without SYN, FIN, ACK or RST",
}

// packetText names what kind of packet p is, for "... starts one".
func packetText(p *conntrack.Packet) string {
	switch p.Kind {
	case conntrack.KindTCP:
		return "a tcp " + tcpClassText[conntrack.ClassifyTCP(p.TCPFlags)]
	case conntrack.KindUDP:
		return "a udp packet"
	case conntrack.KindEchoRequest:
		return "an echo request"
	case conntrack.KindEchoReply:
		return "an echo reply"
	}
	return "a packet of proto " + protoName(p.Proto)
}
