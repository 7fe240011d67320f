package eval

import (
	"fmt"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
)

// Session evaluates a policy frame after frame, keeping the connection
// table the datapath keeps (docs/conntrack.md): each arriving frame gets
// its ct_state from the table before the rules run, and the frames the
// policy passes or redirects, and every frame the host sends, change it.
//
// The clock is the frames' timestamps, in nanoseconds (a capture's), and
// it never goes back: a frame stamped earlier than one before it is taken
// at the later time, as the datapath's monotonic clock would see it.
//
// A Session of a policy that does not track connections keeps no table:
// its frames are decided as Evaluate decides them and Egress records
// nothing, as the datapath attaches no egress program for it.
//
// A Session is not safe for concurrent use.
type Session struct {
	policy *policy.Policy
	table  *conntrack.Table // nil when the policy does not track
	now    uint64
}

// NewSession returns a session of policy p with an empty connection table
// of the file's conntrack settings ct (its Config's Conntrack; zero
// timeouts are the defaults).
//
// The table is unbounded: unlike the datapath's, it never evicts an
// unassured entry when full, so a capture with more flows than
// ct.MaxEntries allows may be decided differently by the datapath.
func NewSession(p *policy.Policy, ct policy.Conntrack) *Session {
	s := &Session{policy: p}
	if p.TracksConnections() {
		s.table = conntrack.NewTable(ct.Timeouts)
	}
	return s
}

// Policy returns the session's policy.
func (s *Session) Policy() *policy.Policy { return s.policy }

// Tracks reports whether the session keeps a connection table: whether its
// policy tracks connections.
func (s *Session) Tracks() bool { return s.table != nil }

// Now returns the session's clock: the latest timestamp of a frame it was
// given (0 before the first).
func (s *Session) Now() uint64 { return s.now }

// advance moves the clock to now unless it is already later, and returns
// the time a frame stamped now is taken at.
func (s *Session) advance(now uint64) uint64 {
	if now > s.now {
		s.now = now
	}
	return s.now
}

// Ingress decides what the policy does with frame, arriving at time now:
// Evaluate's decision with the packet's ct_state from the table. A ct_state
// match never matches a packet that is not tracked, negated or not. When
// the decision is pass or redirect, the packet is recorded in the table
// (conntrack.Table.Commit); a dropped packet changes nothing.
func (s *Session) Ingress(frame []byte, now uint64) Result {
	return ingress(s.policy, s.table, frame, s.advance(now), true, nil)
}

// Explain is Ingress with its reasons: the rules tried, and the ct_state
// with the entry it came from. It records the frame as Ingress does, so
// explaining a conversation frame by frame decides it as Ingress would.
func (s *Session) Explain(frame []byte, now uint64) Explanation {
	var x Explanation
	ingress(s.policy, s.table, frame, s.advance(now), true, &x)
	return x
}

// EgressResult is what the connection table made of a frame the host
// sent. The frame is never filtered.
type EgressResult struct {
	// CTState is the frame's ct_state as the egress program computes it
	// (StatusNone when it is not tracked, is malformed, or the session does
	// not track).
	CTState conntrack.Status
	// Commit is what recording the frame did to the table.
	Commit Commit
	// Malformed is why the frame is malformed, "" when it is not. A
	// malformed frame changes nothing.
	Malformed string
}

// Egress records frame, sent by the host itself at time now (an `out`
// frame of a packet list, or of a capture's outbound direction), as the
// datapath's TC egress program does: its ct_state from the table, then
// conntrack.Table.Commit with egress, whatever its ct_state. A malformed or
// untracked frame changes nothing.
func (s *Session) Egress(frame []byte, now uint64) EgressResult {
	return s.egress(frame, s.advance(now), nil)
}

// EgressExplanation is Egress with its reasons.
type EgressExplanation struct {
	Packet    *Packet
	Malformed *Malformed
	// CT is how the table read the frame; nil when the frame is
	// malformed or the session does not track.
	CT     *CTTrace
	Result EgressResult
}

// ExplainEgress is Egress with its reasons; it records the frame as Egress
// does.
func (s *Session) ExplainEgress(frame []byte, now uint64) EgressExplanation {
	var x EgressExplanation
	x.Result = s.egress(frame, s.advance(now), &x)
	return x
}

func (s *Session) egress(frame []byte, now uint64, x *EgressExplanation) EgressResult {
	var pkt Packet
	if reason, off := parse(frame, &pkt); reason != "" {
		if x != nil {
			x.Malformed = &Malformed{Reason: reason, Offset: off}
		}
		return EgressResult{Malformed: reason}
	}
	if s.table == nil {
		if x != nil {
			explained := pkt
			x.Packet = &explained
		}
		return EgressResult{}
	}
	cp := trackedPacket(&pkt)
	st := s.table.Status(&cp, now)
	pkt.CTState = st
	var trace *CTTrace
	if x != nil {
		explained := pkt
		x.Packet = &explained
		trace = newTrace(s.table, &pkt, &cp, now, true)
	}
	res := EgressResult{CTState: st, Commit: commitOf(&cp, st, true)}
	s.table.Commit(&cp, st, now, true)
	if x != nil {
		trace.record(s.table, res.Commit)
		x.CT = trace
	}
	return res
}

// Flows returns the table's live entries at time now, sorted by key (as
// conntrack.Table.Flows), for comparing with the datapath's table. A time
// before the session's clock is taken as the clock: the table already holds
// what the later frames did. A session that does not track has none.
func (s *Session) Flows(now uint64) []conntrack.Flow {
	if s.table == nil {
		return nil
	}
	return s.table.Flows(max(now, s.now))
}

// Commit is what recording a frame did to the connection table
// (conntrack.Table.Commit).
type Commit uint8

const (
	// CommitNone: the table is as it was. The frame was dropped, is not
	// tracked, or is related or invalid (and not picked up).
	CommitNone Commit = iota
	// CommitCreate: a new packet created its flow's entry, replacing a
	// dead one or, for a reopened TCP connection, one in TIME_WAIT or
	// CLOSE.
	CommitCreate
	// CommitUpdate: an established packet moved its entry's state (or
	// kept it, for a transition netfilter ignores) and refreshed its
	// timeout.
	CommitUpdate
	// CommitPickup: the host's own TCP ACK of a connection the table did
	// not know created an ESTABLISHED entry (conntrack.Pickup).
	CommitPickup
)

var commitNames = [...]string{"none", "create", "update", "pickup"}

func (c Commit) String() string {
	if int(c) < len(commitNames) {
		return commitNames[c]
	}
	return fmt.Sprintf("Commit(%d)", uint8(c))
}

// commitOf is what conntrack.Table.Commit does with packet p of status st:
// a new packet creates an entry, an established one updates its entry,
// and an invalid one on egress creates an entry when it is picked up.
func commitOf(p *conntrack.Packet, st conntrack.Status, egress bool) Commit {
	switch {
	case st == conntrack.StatusNew:
		return CommitCreate
	case st == conntrack.StatusEstablished:
		return CommitUpdate
	case st == conntrack.StatusInvalid && egress && conntrack.Pickup(p):
		return CommitPickup
	}
	return CommitNone
}
