package eval

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

func ctState(sts ...conntrack.Status) policy.Match {
	m := policy.Match{Field: policy.FieldCTState}
	for _, s := range sts {
		m.CTStates |= 1 << s
	}
	return m
}

const (
	stNew         = conntrack.StatusNew
	stEstablished = conntrack.StatusEstablished
	stRelated     = conntrack.StatusRelated
	stInvalid     = conntrack.StatusInvalid
	stNone        = conntrack.StatusNone

	fin    = wire.TCPFin
	ack    = wire.TCPAck
	rst    = wire.TCPRst
	finAck = wire.TCPFin | wire.TCPAck
	pshAck = wire.TCPPsh | wire.TCPAck
)

// hostPolicy is a host's policy: invalid packets dropped, replies and
// related errors passed, SSH and pings served, the rest dropped.
func hostPolicy() *policy.Policy {
	return newPolicy(policy.ActionDrop, policy.ActionDrop,
		newRule("invalid", policy.ActionDrop, ctState(stInvalid)),
		newRule("replies", policy.ActionPass, ctState(stEstablished, stRelated)),
		newRule("ssh", policy.ActionPass, is(policy.FieldProto, wire.ProtoTCP), is(policy.FieldDstPort, 22)),
		newRule("ping", policy.ActionPass, is(policy.FieldICMPType, wire.ICMPEchoRequest)),
	)
}

// loosePolicy passes everything, so that every packet is recorded.
func loosePolicy() *policy.Policy {
	return newPolicy(policy.ActionPass, policy.ActionDrop,
		newRule("tracked", policy.ActionCount, ctState(stNew, stEstablished, stRelated, stInvalid)))
}

// The conversations are between the host (10.0.0.1, 2001:db8::1) and peers.
const (
	host4, peer4, router4 = "10.0.0.1", "10.0.0.2", "192.0.2.254"
	host6, peer6, router6 = "2001:db8::1", "2001:db8::2", "2001:db8:ff::1"
)

func tcp4(src, dst string, sport, dport uint16, flags uint8) []byte {
	return ether(0x0800, v4{src: src, dst: dst, proto: wire.ProtoTCP}.build(tcp(sport, dport, flags, 0)))
}

func udp4(src, dst string, sport, dport uint16) []byte {
	return ether(0x0800, v4{src: src, dst: dst, proto: wire.ProtoUDP}.build(udp(sport, dport), zeros(20)))
}

func echo4(src, dst string, typ uint8, id uint16) []byte {
	return ether(0x0800, v4{src: src, dst: dst, proto: wire.ProtoICMP}.build(echo(typ, id, 1)))
}

func tcp6(src, dst string, sport, dport uint16, flags uint8) []byte {
	return ether(0x86dd, v6{src: src, dst: dst, nh: wire.ProtoTCP}.build(tcp(sport, dport, flags, 0)))
}

// Inbound and outbound segments of a TCP connection from the peer
// (port 40000) to the host's SSH server, and of one the host opens
// (port 50000) to the peer's web server.
func sshIn(flags uint8) []byte  { return tcp4(peer4, host4, 40000, 22, flags) }
func sshOut(flags uint8) []byte { return tcp4(host4, peer4, 22, 40000, flags) }
func webOut(flags uint8) []byte { return tcp4(host4, peer4, 50000, 443, flags) }
func webIn(flags uint8) []byte  { return tcp4(peer4, host4, 443, 50000, flags) }

// ctStep is one frame of a conversation and what the session must make of
// it.
type ctStep struct {
	at    time.Duration // since the conversation began
	out   bool          // the host sends it (Egress); else it arrives (Ingress)
	frame []byte
	// status is the frame's ct_state; rule the deciding rule (ingress).
	status conntrack.Status
	rule   string
	commit Commit
	// state is the state of the frame's flow afterwards (an ICMP error's:
	// the embedded packet's flow), StateNone when it has no live entry.
	state conntrack.State
}

const ms, sec, day = time.Millisecond, time.Second, 24 * time.Hour

// conversationStart is when a conversation's first frame is stamped.
const conversationStart = uint64(1000 * sec)

// runConversation feeds steps to a session of p with settings ct, and to
// a twin session through Explain and ExplainEgress: both must decide every
// frame as the step says and keep the same table.
func runConversation(t *testing.T, p *policy.Policy, ct policy.Conntrack, steps []ctStep) *Session {
	t.Helper()
	s, twin := NewSession(p, ct), NewSession(p, ct)
	for i, st := range steps {
		now := conversationStart + uint64(st.at)
		what := fmt.Sprintf("step %d (%s at %v)", i+1, direction(st.out), st.at)
		var status conntrack.Status
		var commit Commit
		if st.out {
			res := s.Egress(st.frame, now)
			x := twin.ExplainEgress(st.frame, now)
			if diff := cmp.Diff(res, x.Result); diff != "" {
				t.Fatalf("%s: ExplainEgress differs from Egress (-egress +explain):\n%s", what, diff)
			}
			status, commit = res.CTState, res.Commit
		} else {
			res := s.Ingress(st.frame, now)
			x := twin.Explain(st.frame, now)
			if diff := cmp.Diff(res, x.Result); diff != "" {
				t.Fatalf("%s: Explain differs from Ingress (-ingress +explain):\n%s", what, diff)
			}
			if res.Rule != st.rule {
				t.Errorf("%s: decided by %q, want %q\n%s", what, res.Rule, st.rule, x)
			}
			status, commit = res.CTState, res.CTCommit
		}
		if status != st.status || commit != st.commit {
			t.Errorf("%s: ct_state %s, commit %s; want %s, %s", what, status, commit, st.status, st.commit)
		}
		if got := flowState(s, st.frame, now); got != st.state {
			t.Errorf("%s: entry afterwards %s, want %s", what, got, st.state)
		}
		if diff := cmp.Diff(s.Flows(now), twin.Flows(now), cmpAddr); diff != "" {
			t.Fatalf("%s: tables differ (-ingress/egress +explain):\n%s", what, diff)
		}
	}
	return s
}

func direction(out bool) string {
	if out {
		return "out"
	}
	return "in"
}

// flowState is the state of frame's flow in s at now (an ICMP error's:
// its embedded packet's flow), StateNone when it has no live entry.
func flowState(s *Session, frame []byte, now uint64) conntrack.State {
	p := Track(frame)
	k, _ := conntrack.NewKey(p.Family, p.Proto, p.Src, p.Dst)
	if p.Kind == conntrack.KindICMPError {
		k, _ = conntrack.NewKey(p.Family, p.Inner.Proto, p.Inner.Src, p.Inner.Dst)
	}
	for _, f := range s.Flows(now) {
		if f.Key == k {
			return f.Entry.State
		}
	}
	return conntrack.StateNone
}

// conversation is a policy, the file's conntrack settings and frames.
type conversation struct {
	name  string
	p     *policy.Policy
	ct    policy.Conntrack
	steps []ctStep
}

// TestConversations are PITFALLS.md's "Connection tracking" lines as
// conversations through a session: ingress frames decided by the policy,
// the host's own frames recorded by egress.
func TestConversations(t *testing.T) {
	for _, tc := range conversations() {
		t.Run(tc.name, func(t *testing.T) { runConversation(t, tc.p, tc.ct, tc.steps) })
	}
}

func conversations() []conversation {
	var (
		none        = conntrack.StateNone
		synSent     = conntrack.TCPSynSent
		synRecv     = conntrack.TCPSynRecv
		established = conntrack.TCPEstablished
	)
	host, loose := hostPolicy(), loosePolicy()
	defaults := policy.Conntrack{}
	shortEstablished := policy.Conntrack{Timeouts: conntrack.Timeouts{TCPEstablished: time.Hour}}
	udpQuery := udp4(host4, peer4, 5353, 53)
	udpReply := udp4(peer4, host4, 53, 5353)
	return []conversation{
		{"tcp handshake and teardown, the host serving", host, defaults, []ctStep{
			{at: 0, frame: sshIn(syn), status: stNew, rule: "ssh", commit: CommitCreate, state: synSent},
			{at: 1 * ms, out: true, frame: sshOut(synAck), status: stEstablished, commit: CommitUpdate, state: synRecv},
			{at: 2 * ms, frame: sshIn(ack), status: stEstablished, rule: "replies", commit: CommitUpdate, state: established},
			{at: 3 * ms, frame: sshIn(pshAck), status: stEstablished, rule: "replies", commit: CommitUpdate, state: established},
			{at: 4 * ms, out: true, frame: sshOut(pshAck), status: stEstablished, commit: CommitUpdate, state: established},
			{at: 5 * ms, frame: sshIn(finAck), status: stEstablished, rule: "replies", commit: CommitUpdate, state: conntrack.TCPFinWait},
			{at: 6 * ms, out: true, frame: sshOut(ack), status: stEstablished, commit: CommitUpdate, state: conntrack.TCPCloseWait},
			{at: 7 * ms, out: true, frame: sshOut(finAck), status: stEstablished, commit: CommitUpdate, state: conntrack.TCPLastAck},
			{at: 8 * ms, frame: sshIn(ack), status: stEstablished, rule: "replies", commit: CommitUpdate, state: conntrack.TCPTimeWait},
			// TIME_WAIT lasts 2 minutes, not the 5 days of ESTABLISHED.
			{at: 8*ms + 2*time.Minute - 1, frame: sshIn(ack), status: stEstablished, rule: "replies", commit: CommitUpdate, state: conntrack.TCPTimeWait},
			{at: 8*ms + 4*time.Minute, frame: sshIn(ack), status: stInvalid, rule: "invalid", state: none},
		}},
		{"tcp connection the host opens: replies need its own frames recorded", host, defaults, []ctStep{
			{at: 0, out: true, frame: webOut(syn), status: stNew, commit: CommitCreate, state: synSent},
			{at: 10 * ms, frame: webIn(synAck), status: stEstablished, rule: "replies", commit: CommitUpdate, state: synRecv},
			{at: 11 * ms, out: true, frame: webOut(ack), status: stEstablished, commit: CommitUpdate, state: established},
			{at: 20 * ms, frame: webIn(pshAck), status: stEstablished, rule: "replies", commit: CommitUpdate, state: established},
			// A RST of a tracked connection is established and closes it...
			{at: 30 * ms, frame: webIn(rst), status: stEstablished, rule: "replies", commit: CommitUpdate, state: conntrack.TCPClose},
			{at: 30*ms + 10*sec - 1, frame: webIn(ack), status: stEstablished, rule: "replies", commit: CommitUpdate, state: conntrack.TCPClose},
			// ...and CLOSE lives 10 s.
			{at: 30*ms + 20*sec, frame: webIn(ack), status: stInvalid, rule: "invalid", state: none},
		}},
		{"replies to a connection whose syn was not recorded are invalid", host, defaults, []ctStep{
			{frame: webIn(synAck), status: stInvalid, rule: "invalid", state: none},
			{frame: webIn(pshAck), status: stInvalid, rule: "invalid", state: none},
		}},
		{"mid-stream ack without an entry is invalid, never new", host, defaults, []ctStep{
			{frame: sshIn(ack), status: stInvalid, rule: "invalid", state: none},
			{frame: sshIn(pshAck), status: stInvalid, rule: "invalid", state: none},
		}},
		{"mid-stream ack the policy passes still creates nothing", loose, defaults, []ctStep{
			{frame: sshIn(ack), status: stInvalid, rule: RuleDefault, state: none},
			{at: ms, frame: sshIn(ack), status: stInvalid, rule: RuleDefault, state: none},
		}},
		{"syn+ack without syn is invalid, arriving or sent", loose, defaults, []ctStep{
			{frame: webIn(synAck), status: stInvalid, rule: RuleDefault, state: none},
			// The host's own SYN+ACK is not picked up: only an ACK is.
			{at: ms, out: true, frame: sshOut(synAck), status: stInvalid, state: none},
			{at: 2 * ms, frame: sshIn(ack), status: stInvalid, rule: RuleDefault, state: none},
		}},
		{"rst, fin and flagless segments without an entry are invalid", loose, defaults, []ctStep{
			{frame: sshIn(rst), status: stInvalid, rule: RuleDefault, state: none},
			{frame: sshIn(rst | ack), status: stInvalid, rule: RuleDefault, state: none},
			{frame: sshIn(fin), status: stInvalid, rule: RuleDefault, state: none},
			{frame: sshIn(0), status: stInvalid, rule: RuleDefault, state: none},
			{out: true, frame: sshOut(rst), status: stInvalid, state: none},
			{out: true, frame: sshOut(finAck), status: stInvalid, state: none},
		}},
		{"a dropped syn creates nothing, so its syn+ack is invalid", host, defaults, []ctStep{
			{frame: tcp4(peer4, host4, 40000, 80, syn), status: stNew, rule: RuleDefault, state: none},
			{at: ms, out: true, frame: tcp4(host4, peer4, 80, 40000, synAck), status: stInvalid, state: none},
			{at: 2 * ms, frame: tcp4(peer4, host4, 40000, 80, ack), status: stInvalid, rule: "invalid", state: none},
		}},
		{"the host's own ack picks up a connection open before tracking", host, defaults, []ctStep{
			// The SSH session that applied the policy: the peer's segment
			// arrives first, is invalid and dropped, and picks nothing up.
			{frame: sshIn(pshAck), status: stInvalid, rule: "invalid", state: none},
			{at: 200 * ms, out: true, frame: sshOut(pshAck), status: stInvalid, commit: CommitPickup, state: established},
			{at: 210 * ms, frame: sshIn(pshAck), status: stEstablished, rule: "replies", commit: CommitUpdate, state: established},
			{at: 220 * ms, frame: sshIn(finAck), status: stEstablished, rule: "replies", commit: CommitUpdate, state: conntrack.TCPFinWait},
		}},
		{"a syn from the originator reopens a connection in time_wait", host, defaults, []ctStep{
			{frame: sshIn(syn), status: stNew, rule: "ssh", commit: CommitCreate, state: synSent},
			{out: true, frame: sshOut(synAck), status: stEstablished, commit: CommitUpdate, state: synRecv},
			{frame: sshIn(ack), status: stEstablished, rule: "replies", commit: CommitUpdate, state: established},
			{frame: sshIn(finAck), status: stEstablished, rule: "replies", commit: CommitUpdate, state: conntrack.TCPFinWait},
			{out: true, frame: sshOut(finAck), status: stEstablished, commit: CommitUpdate, state: conntrack.TCPLastAck},
			{frame: sshIn(ack), status: stEstablished, rule: "replies", commit: CommitUpdate, state: conntrack.TCPTimeWait},
			{at: sec, frame: sshIn(syn), status: stNew, rule: "ssh", commit: CommitCreate, state: synSent},
		}},
		{"timeouts: established lives 5 days from its last packet", host, defaults, []ctStep{
			{frame: sshIn(syn), status: stNew, rule: "ssh", commit: CommitCreate, state: synSent},
			{out: true, frame: sshOut(synAck), status: stEstablished, commit: CommitUpdate, state: synRecv},
			{frame: sshIn(ack), status: stEstablished, rule: "replies", commit: CommitUpdate, state: established},
			{at: 5*day - 1, frame: sshIn(pshAck), status: stEstablished, rule: "replies", commit: CommitUpdate, state: established},
			{at: 10*day - 1, frame: sshIn(pshAck), status: stInvalid, rule: "invalid", state: none},
		}},
		{"timeouts: the file's tcp_established", host, shortEstablished, []ctStep{
			{frame: sshIn(syn), status: stNew, rule: "ssh", commit: CommitCreate, state: synSent},
			{out: true, frame: sshOut(synAck), status: stEstablished, commit: CommitUpdate, state: synRecv},
			{frame: sshIn(ack), status: stEstablished, rule: "replies", commit: CommitUpdate, state: established},
			{at: time.Hour - 1, out: true, frame: sshOut(pshAck), status: stEstablished, commit: CommitUpdate, state: established},
			{at: 2*time.Hour - 1, frame: sshIn(pshAck), status: stInvalid, rule: "invalid", state: none},
		}},
		{"timeouts: syn_sent lives 2 minutes, syn_recv 60 s", host, defaults, []ctStep{
			{out: true, frame: webOut(syn), status: stNew, commit: CommitCreate, state: synSent},
			{at: 2 * time.Minute, frame: webIn(synAck), status: stInvalid, rule: "invalid", state: none},
			{at: 3 * time.Minute, out: true, frame: webOut(syn), status: stNew, commit: CommitCreate, state: synSent},
			{at: 3*time.Minute + ms, frame: webIn(synAck), status: stEstablished, rule: "replies", commit: CommitUpdate, state: synRecv},
			{at: 4*time.Minute + ms, out: true, frame: webOut(ack), status: stInvalid, commit: CommitPickup, state: established},
		}},
		{"udp both directions: 30 s unreplied, then 120 s", host, defaults, []ctStep{
			{out: true, frame: udpQuery, status: stNew, commit: CommitCreate, state: conntrack.UDPUnreplied},
			{at: 30*sec - 1, out: true, frame: udpQuery, status: stEstablished, commit: CommitUpdate, state: conntrack.UDPUnreplied},
			{at: 31 * sec, frame: udpReply, status: stEstablished, rule: "replies", commit: CommitUpdate, state: conntrack.UDPReplied},
			{at: 31*sec + 2*time.Minute - 1, frame: udpReply, status: stEstablished, rule: "replies", commit: CommitUpdate, state: conntrack.UDPReplied},
			// Expired: new again, and nothing passes new udp to the host.
			{at: 31*sec + 4*time.Minute, frame: udpReply, status: stNew, rule: RuleDefault, state: none},
			{at: 31*sec + 4*time.Minute, out: true, frame: udpQuery, status: stNew, commit: CommitCreate, state: conntrack.UDPUnreplied},
			{at: 31*sec + 4*time.Minute + 30*sec, frame: udpReply, status: stNew, rule: RuleDefault, state: none},
		}},
		{"udp from the peer is new in either direction", loose, defaults, []ctStep{
			{frame: udpReply, status: stNew, rule: RuleDefault, commit: CommitCreate, state: conntrack.UDPUnreplied},
			{at: sec, out: true, frame: udpQuery, status: stEstablished, commit: CommitUpdate, state: conntrack.UDPReplied},
		}},
		{"icmp errors: related with an entry, invalid without", host, defaults, []ctStep{
			{out: true, frame: udpQuery, status: stNew, commit: CommitCreate, state: conntrack.UDPUnreplied},
			{at: ms, frame: err4(3, 3, v4{src: host4, dst: peer4, proto: wire.ProtoUDP}.build(udp(5353, 53), zeros(20))),
				status: stRelated, rule: "replies", state: conntrack.UDPUnreplied},
			{at: ms, frame: err4(3, 3, v4{src: host4, dst: peer4, proto: wire.ProtoUDP}.build(udp(5354, 53))),
				status: stInvalid, rule: "invalid", state: none},
			{at: ms, frame: err4(3, 3, v4{src: host4, dst: peer4, proto: wire.ProtoUDP}.build(udp(5353, 53))[:24]),
				status: stInvalid, rule: "invalid", state: none},
			// A related error does not keep the entry alive.
			{at: 29 * sec, frame: err4(11, 0, v4{src: host4, dst: peer4, proto: wire.ProtoUDP}.build(udp(5353, 53))),
				status: stRelated, rule: "replies", state: conntrack.UDPUnreplied},
			{at: 30*sec + 1, frame: err4(11, 0, v4{src: host4, dst: peer4, proto: wire.ProtoUDP}.build(udp(5353, 53))),
				status: stInvalid, rule: "invalid", state: none},
		}},
		{"icmpv6 errors about tcp", host, defaults, []ctStep{
			{out: true, frame: tcp6(host6, peer6, 50000, 443, syn), status: stNew, commit: CommitCreate, state: synSent},
			{at: ms, frame: err6(2, 0, v6{src: host6, dst: peer6, nh: wire.ProtoTCP}.build(tcp(50000, 443, syn, 0))),
				status: stRelated, rule: "replies", state: synSent},
			// Behind an extension header the embedded flow is not found:
			// its extension headers are not walked.
			{at: ms, frame: err6(1, 4, v6{src: host6, dst: peer6, nh: wire.IPv6ExtDestOpts}.build(ext(wire.ProtoTCP, 0), tcp(50000, 443, syn, 0))),
				status: stInvalid, rule: "invalid", state: none},
			{at: ms, frame: err6(1, 4, v6{src: host6, dst: peer6, nh: wire.ProtoTCP}.build(tcp(50001, 443, syn, 0))),
				status: stInvalid, rule: "invalid", state: none},
		}},
		{"icmp echo", host, defaults, []ctStep{
			{frame: echo4(peer4, host4, 0, 7), status: stInvalid, rule: "invalid", state: none},
			{out: true, frame: echo4(host4, peer4, 8, 7), status: stNew, commit: CommitCreate, state: conntrack.ICMPRequested},
			{at: ms, frame: echo4(peer4, host4, 0, 7), status: stEstablished, rule: "replies", commit: CommitUpdate, state: conntrack.ICMPReplied},
			{at: ms, frame: echo4(peer4, host4, 0, 8), status: stInvalid, rule: "invalid", state: none},
			{at: 31 * sec, frame: echo4(peer4, host4, 0, 7), status: stInvalid, rule: "invalid", state: none},
			// The peer's ping is new and served; the host's reply is established.
			{at: 40 * sec, frame: echo4(peer4, host4, 8, 9), status: stNew, rule: "ping", commit: CommitCreate, state: conntrack.ICMPRequested},
			{at: 40 * sec, out: true, frame: echo4(host4, peer4, 0, 9), status: stEstablished, commit: CommitUpdate, state: conntrack.ICMPReplied},
		}},
		{"icmpv6 echo and neighbour discovery", host, defaults, []ctStep{
			{out: true, frame: ether(0x86dd, v6{src: host6, dst: peer6, nh: wire.ProtoICMPv6}.build(echo(128, 3, 1))),
				status: stNew, commit: CommitCreate, state: conntrack.ICMPRequested},
			{frame: ether(0x86dd, v6{src: peer6, dst: host6, nh: wire.ProtoICMPv6}.build(echo(129, 3, 1))),
				status: stEstablished, rule: "replies", commit: CommitUpdate, state: conntrack.ICMPReplied},
			// Not tracked: no ct_state rule matches, negated or not.
			{frame: ether(0x86dd, v6{src: peer6, dst: host6, nh: wire.ProtoICMPv6}.build(icmp(135, 0), zeros(16))),
				status: stNone, rule: RuleDefault, state: none},
			{out: true, frame: ether(0x86dd, v6{src: host6, dst: peer6, nh: wire.ProtoICMPv6}.build(icmp(136, 0), zeros(16))),
				status: stNone, state: none},
		}},
		{"ipv6 tcp", host, defaults, []ctStep{
			{frame: tcp6(peer6, host6, 40000, 22, syn), status: stNew, rule: "ssh", commit: CommitCreate, state: synSent},
			{out: true, frame: tcp6(host6, peer6, 22, 40000, synAck), status: stEstablished, commit: CommitUpdate, state: synRecv},
			{frame: tcp6(peer6, host6, 40000, 22, ack), status: stEstablished, rule: "replies", commit: CommitUpdate, state: established},
			// The same ports over IPv4 are another flow.
			{frame: sshIn(ack), status: stInvalid, rule: "invalid", state: none},
		}},
		{"vlan tags take no part in the flow", host, defaults, []ctStep{
			{frame: ether(0x8100, tag(0, 10, 0x0800), v4{src: peer4, dst: host4, proto: wire.ProtoTCP}.build(tcp(40000, 22, syn, 0))),
				status: stNew, rule: "ssh", commit: CommitCreate, state: synSent},
			{out: true, frame: sshOut(synAck), status: stEstablished, commit: CommitUpdate, state: synRecv},
			{frame: ether(0x88a8, tag(0, 20, 0x8100), tag(0, 30, 0x0800), v4{src: peer4, dst: host4, proto: wire.ProtoTCP}.build(tcp(40000, 22, ack, 0))),
				status: stEstablished, rule: "replies", commit: CommitUpdate, state: established},
		}},
		{"fragments: the first is tracked, later ones are not", loose, defaults, []ctStep{
			{frame: ether(0x0800, v4{src: peer4, dst: host4, proto: wire.ProtoUDP, fo: mf}.build(udp(53, 5353), zeros(64))),
				status: stNew, rule: RuleDefault, commit: CommitCreate, state: conntrack.UDPUnreplied},
			{frame: ether(0x0800, v4{src: peer4, dst: host4, proto: wire.ProtoUDP, fo: 8}.build(zeros(64))),
				status: stNone, rule: RuleDefault, state: none},
		}},
		{"other protocols: ports 0, replied both ways", loose, defaults, []ctStep{
			{out: true, frame: ether(0x0800, v4{src: host4, dst: peer4, proto: wire.ProtoGRE}.build(zeros(8))),
				status: stNew, commit: CommitCreate, state: conntrack.OtherUnreplied},
			{at: 9 * time.Minute, frame: ether(0x0800, v4{src: peer4, dst: host4, proto: wire.ProtoGRE}.build(zeros(8))),
				status: stEstablished, rule: RuleDefault, commit: CommitUpdate, state: conntrack.OtherReplied},
			{at: 20 * time.Minute, frame: ether(0x0800, v4{src: peer4, dst: host4, proto: wire.ProtoGRE}.build(zeros(8))),
				status: stNew, rule: RuleDefault, commit: CommitCreate, state: conntrack.OtherUnreplied},
		}},
		{"egress frames that are malformed or untracked change nothing", loose, defaults, []ctStep{
			{out: true, frame: badFrame, status: stNone, state: none},
			{out: true, frame: arpFrame, status: stNone, state: none},
			{out: true, frame: ether(0x0800, v4{src: host4, dst: peer4, proto: wire.ProtoUDP, fo: 8}.build(zeros(64))), status: stNone, state: none},
			{frame: udpReply, status: stNew, rule: RuleDefault, commit: CommitCreate, state: conntrack.UDPUnreplied},
		}},
	}
}

// TestRedirectIsRecorded checks that a redirected packet changes the
// table as a passed one does, and a dropped one does not.
func TestRedirectIsRecorded(t *testing.T) {
	scrub := newRule("scrub", policy.ActionRedirect, is(policy.FieldProto, wire.ProtoUDP), is(policy.FieldDstPort, 53))
	scrub.To = "eth1"
	p := newPolicy(policy.ActionDrop, policy.ActionDrop,
		newRule("replies", policy.ActionPass, ctState(stEstablished)), scrub)
	runConversation(t, p, policy.Conntrack{}, []ctStep{
		{frame: udp4(peer4, host4, 5353, 53), status: stNew, rule: "scrub", commit: CommitCreate, state: conntrack.UDPUnreplied},
		{frame: udp4(peer4, host4, 5353, 54), status: stNew, rule: RuleDefault, state: conntrack.StateNone},
		{out: true, frame: udp4(host4, peer4, 53, 5353), status: stEstablished, commit: CommitUpdate, state: conntrack.UDPReplied},
	})
}

// TestSessionWithoutTracking checks that a policy without ct_state keeps
// no table: nothing is tracked, Egress records nothing.
func TestSessionWithoutTracking(t *testing.T) {
	p := newPolicy(policy.ActionPass, policy.ActionDrop, newRule("ssh", policy.ActionPass, is(policy.FieldDstPort, 22)))
	s := runConversation(t, p, policy.Conntrack{}, []ctStep{
		{frame: sshIn(syn), status: stNone, rule: "ssh", state: conntrack.StateNone},
		{out: true, frame: sshOut(synAck), status: stNone, state: conntrack.StateNone},
		{out: true, frame: webOut(syn), status: stNone, state: conntrack.StateNone},
	})
	if s.Tracks() || s.Flows(conversationStart) != nil {
		t.Errorf("a session of a policy without ct_state tracks: %v", s.Flows(conversationStart))
	}
	if got := s.Egress(badFrame, 0); got.Malformed != reasonIPv4TotShort {
		t.Errorf("Egress of a malformed frame: %+v", got)
	}
}

// TestSessionClock checks the session's time: the latest frame's
// timestamp, never going back.
func TestSessionClock(t *testing.T) {
	s := NewSession(hostPolicy(), policy.Conntrack{})
	if s.Now() != 0 {
		t.Fatalf("clock of a fresh session: %d", s.Now())
	}
	s.Ingress(sshIn(syn), uint64(10*sec))
	// Stamped earlier: taken at 10 s.
	if res := s.Egress(sshOut(synAck), uint64(5*sec)); res.CTState != stEstablished {
		t.Fatalf("SYN+ACK stamped before its SYN: %+v", res)
	}
	if s.Now() != uint64(10*sec) {
		t.Errorf("clock %v after a frame stamped earlier, want 10s", time.Duration(s.Now()))
	}
	flows := s.Flows(0)
	if len(flows) != 1 || flows[0].Entry.Created != uint64(10*sec) || flows[0].Entry.State != conntrack.TCPSynRecv ||
		flows[0].Entry.Expires != uint64(10*sec+60*sec) {
		t.Fatalf("flows: %+v", flows)
	}
	if diff := cmp.Diff(flows, s.Flows(uint64(10*sec)), cmpAddr); diff != "" {
		t.Errorf("Flows before the clock differs from Flows at the clock:\n%s", diff)
	}
	if got := s.Flows(uint64(70 * sec)); len(got) != 0 {
		t.Errorf("flows after SYN_RECV's 60 s: %+v", got)
	}
	if s.Now() != uint64(10*sec) {
		t.Errorf("Flows moved the clock to %v", time.Duration(s.Now()))
	}
	// Once the clock is past the entry's end, it is gone at any time.
	s.Ingress(arpFrame, uint64(100*sec))
	if got := s.Flows(uint64(20 * sec)); len(got) != 0 {
		t.Errorf("flows at 20 s with the clock at 100 s: %+v", got)
	}
}

// TestEvaluateIsAFreshSession checks that the stateless Evaluate and
// Explain decide a tracking policy's frames as a fresh session does.
func TestEvaluateIsAFreshSession(t *testing.T) {
	frames := [][]byte{sshIn(syn), sshIn(ack), webIn(synAck), udpQuery4(), echo4(peer4, host4, 8, 1), echo4(peer4, host4, 0, 1),
		err4(3, 3, v4{proto: wire.ProtoUDP}.build(udp(1, 2))), later4, arpFrame, badFrame, icmp6NS}
	for _, p := range []*policy.Policy{hostPolicy(), loosePolicy()} {
		for _, f := range frames {
			want := NewSession(p, policy.Conntrack{}).Ingress(f, 12345)
			if diff := cmp.Diff(want, Evaluate(p, f)); diff != "" {
				t.Errorf("Evaluate of %x (-session +evaluate):\n%s", f, diff)
			}
			if diff := cmp.Diff(want, Explain(p, f).Result); diff != "" {
				t.Errorf("Explain of %x (-session +explain):\n%s", f, diff)
			}
		}
	}
	if got := Evaluate(hostPolicy(), sshIn(syn)); got.CTState != stNew || got.Rule != "ssh" || got.CTCommit != CommitCreate {
		t.Errorf("a SYN to the ssh rule: %+v", got)
	}
	if got := Evaluate(hostPolicy(), sshIn(ack)); got.CTState != stInvalid || got.Rule != "invalid" || got.CTCommit != CommitNone {
		t.Errorf("a lone ACK: %+v", got)
	}
}

func udpQuery4() []byte { return udp4(host4, peer4, 5353, 53) }
