package conntrack

import (
	"fmt"
	"slices"
	"sort"
)

// Status is a packet's ct_state: what the table says about it before the
// rules run.
type Status uint8

const (
	// StatusNone: the packet is not tracked (not IP, a later fragment,
	// an ICMP message that is neither echo nor error, malformed): a
	// ct_state match never matches it, negated or not.
	StatusNone Status = 0
	// StatusNew: no entry, and the packet may start one.
	StatusNew Status = 1
	// StatusEstablished: the packet belongs to an entry, either way.
	StatusEstablished Status = 2
	// StatusRelated: an ICMP error about a flow that has an entry.
	StatusRelated Status = 3
	// StatusInvalid: no entry, and the packet cannot start one.
	StatusInvalid Status = 4
)

// StatusNames are the policy language's names of the statuses (ct_state
// values).
var StatusNames = map[string]Status{
	"new": StatusNew, "established": StatusEstablished, "related": StatusRelated, "invalid": StatusInvalid,
}

func (s Status) String() string {
	for n, v := range StatusNames {
		if v == s {
			return n
		}
	}
	if s == StatusNone {
		return "untracked"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Kind is what a packet is to the tracker.
type Kind uint8

const (
	// KindUntracked packets have no ct_state.
	KindUntracked Kind = iota
	// KindTCP is a TCP segment (first fragment or unfragmented).
	KindTCP
	// KindUDP is a UDP datagram.
	KindUDP
	// KindEchoRequest is an ICMP or ICMPv6 echo request; the identifier
	// is both ports.
	KindEchoRequest
	// KindEchoReply is an ICMP or ICMPv6 echo reply.
	KindEchoReply
	// KindICMPError is an ICMP or ICMPv6 error (destination unreachable,
	// packet too big, time exceeded, parameter problem); Inner is the flow
	// of the packet it is about.
	KindICMPError
	// KindOther is a packet of any other protocol; its ports are 0.
	KindOther
)

// Packet is what the tracker reads of a packet.
type Packet struct {
	Kind          Kind
	Family, Proto uint8
	Src, Dst      Endpoint
	// TCPFlags is the TCP header's flags byte.
	TCPFlags uint8
	// Inner is the embedded packet of an ICMP error as it was sent (its
	// source is the flow's endpoint the error answers); HasInner is false
	// when the error carries too little of it to know its flow.
	Inner    Endpoints
	HasInner bool
}

// Endpoints are a packet's protocol and endpoints, source first.
type Endpoints struct {
	Proto    uint8
	Src, Dst Endpoint
}

// Table is a connection table as the reference evaluator keeps it: the
// decisions the datapath makes, with unbounded room (the datapath's
// tables evict unassured entries under floods; see docs/conntrack.md).
type Table struct {
	Timeouts Timeouts
	entries  map[Key]Entry
}

// NewTable returns an empty table with timeouts t (zero fields: defaults).
func NewTable(t Timeouts) *Table {
	return &Table{Timeouts: t.WithDefaults(), entries: map[Key]Entry{}}
}

// lookup returns the live entry of k at time now.
func (t *Table) lookup(k Key, now uint64) (Entry, bool) {
	e, ok := t.entries[k]
	if !ok || !e.Live(now) {
		return Entry{}, false
	}
	return e, true
}

// Lookup returns the entry the table holds for flow k, live or dead, and
// whether it holds one: for explaining a packet's ct_state ("its entry
// expired 5 s ago"). Status and Commit see live entries only (Entry.Live).
// This table keeps a dead entry until a packet replaces it; the
// datapath's may have dropped it already (evicted, or removed by the
// runtime).
func (t *Table) Lookup(k Key) (Entry, bool) {
	e, ok := t.entries[k]
	return e, ok
}

// dir is the direction of a packet whose source is the key's Lo endpoint
// (srcIsLo) relative to entry e.
func dir(e Entry, srcIsLo bool) Dir {
	if srcIsLo == (e.Flags&FlagOrigLo != 0) {
		return Original
	}
	return Reply
}

// Status returns p's ct_state at time now.
func (t *Table) Status(p *Packet, now uint64) Status {
	switch p.Kind {
	case KindUntracked:
		return StatusNone
	case KindICMPError:
		if !p.HasInner {
			return StatusInvalid
		}
		k, _ := NewKey(p.Family, p.Inner.Proto, p.Inner.Src, p.Inner.Dst)
		if _, ok := t.lookup(k, now); ok {
			return StatusRelated
		}
		return StatusInvalid
	}
	k, srcIsLo := NewKey(p.Family, p.Proto, p.Src, p.Dst)
	if e, ok := t.lookup(k, now); ok {
		if p.Kind == KindTCP && Reopens(e.State, dir(e, srcIsLo), ClassifyTCP(p.TCPFlags)) {
			return StatusNew
		}
		return StatusEstablished
	}
	switch p.Kind {
	case KindTCP:
		if ClassifyTCP(p.TCPFlags) == ClassSyn {
			return StatusNew
		}
		return StatusInvalid
	case KindEchoReply:
		return StatusInvalid
	}
	return StatusNew
}

// firstState is the state a new entry starts in for a packet of kind k.
func firstState(k Kind) State {
	switch k {
	case KindTCP:
		return TCPSynSent
	case KindUDP:
		return UDPUnreplied
	case KindEchoRequest:
		return ICMPRequested
	}
	return OtherUnreplied
}

// next is the state an entry in state s moves to on packet p going d.
func next(s State, p *Packet, d Dir) State {
	switch p.Kind {
	case KindTCP:
		n, _ := NextTCP(s, d, ClassifyTCP(p.TCPFlags))
		return n
	case KindUDP:
		if d == Reply {
			return UDPReplied
		}
	case KindEchoRequest, KindEchoReply:
		if d == Reply {
			return ICMPReplied
		}
	case KindOther:
		if d == Reply {
			return OtherReplied
		}
	}
	return s
}

// Commit records packet p at time now, whose status was st: a packet the
// policy passed (or redirected) on ingress, or, with egress, one the host
// sent. A new packet creates an entry (replacing a dead or reopened one),
// an established one moves its entry's state and refreshes its timeout;
// related and invalid packets change nothing, except that the host's own
// TCP ACK of a connection the table does not know picks it up (Pickup).
func (t *Table) Commit(p *Packet, st Status, now uint64, egress bool) {
	k, srcIsLo := NewKey(p.Family, p.Proto, p.Src, p.Dst)
	switch st {
	case StatusNew:
		e := Entry{Created: now, State: firstState(p.Kind)}
		if srcIsLo {
			e.Flags |= FlagOrigLo
		}
		if egress {
			e.Flags |= FlagEgress
		}
		e.Expires = now + uint64(t.Timeouts.Of(e.State))
		t.entries[k] = e
	case StatusEstablished:
		e, _ := t.lookup(k, now)
		e.State = next(e.State, p, dir(e, srcIsLo))
		e.Expires = now + uint64(t.Timeouts.Of(e.State))
		t.entries[k] = e
	case StatusInvalid:
		if egress && Pickup(p) {
			e := Entry{Created: now, State: TCPEstablished, Flags: FlagEgress | FlagPickedUp}
			if srcIsLo {
				e.Flags |= FlagOrigLo
			}
			e.Expires = now + uint64(t.Timeouts.Of(e.State))
			t.entries[k] = e
		}
	}
}

// Pickup reports whether the host's own packet p, of a flow the table has
// no entry for, creates one in the middle of its connection: a TCP ACK
// (netfilter's loose pick-up, sNO -> sES), so connections that were open
// before tracking began keep working. Ingress packets never pick up.
func Pickup(p *Packet) bool {
	return p.Kind == KindTCP && ClassifyTCP(p.TCPFlags) == ClassAck
}

// Flow is one live entry of a table.
type Flow struct {
	Key   Key
	Entry Entry
}

// Flows returns the live entries at time now, sorted by key.
func (t *Table) Flows(now uint64) []Flow {
	var out []Flow
	for k, e := range t.entries {
		if e.Live(now) {
			out = append(out, Flow{k, e})
		}
	}
	sort.Slice(out, func(i, j int) bool { return lessKey(out[i].Key, out[j].Key) })
	return out
}

func lessKey(a, b Key) bool {
	ka, kb := a.Encode(), b.Encode()
	return slices.Compare(ka, kb) < 0
}
