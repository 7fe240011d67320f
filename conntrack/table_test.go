package conntrack

import (
	"net/netip"
	"testing"
	"time"
)

var (
	client = Endpoint{netip.MustParseAddr("10.0.0.9"), 40000}
	server = Endpoint{netip.MustParseAddr("10.0.0.2"), 22}
)

const (
	syn    = flagSyn
	synAck = flagSyn | flagAck
	ack    = flagAck
	finAck = flagFin | flagAck
	rst    = flagRst
)

func tcp(from, to Endpoint, flags uint8) *Packet {
	return &Packet{Kind: KindTCP, Family: 4, Proto: 6, Src: from, Dst: to, TCPFlags: flags}
}

func udp(from, to Endpoint) *Packet {
	return &Packet{Kind: KindUDP, Family: 4, Proto: 17, Src: from, Dst: to}
}

// step is one packet of a conversation: its status and, when it is
// committed, the state its entry is in afterwards.
type step struct {
	p      *Packet
	at     time.Duration // since the conversation began
	egress bool
	// pass: the policy lets the packet through (ingress).
	pass   bool
	status Status
	state  State // StateNone: no live entry afterwards
}

func run(t *testing.T, tbl *Table, steps []step) {
	t.Helper()
	const base = uint64(1e9)
	for i, s := range steps {
		now := base + uint64(s.at)
		st := tbl.Status(s.p, now)
		if st != s.status {
			t.Fatalf("step %d: status %s, want %s", i+1, st, s.status)
		}
		if s.egress || s.pass {
			tbl.Commit(s.p, st, now, s.egress)
		}
		k, _ := NewKey(s.p.Family, s.p.Proto, s.p.Src, s.p.Dst)
		e, ok := tbl.lookup(k, now)
		switch {
		case s.state == StateNone && ok:
			t.Fatalf("step %d: entry in state %s, want none", i+1, e.State)
		case s.state != StateNone && !ok:
			t.Fatalf("step %d: no entry, want state %s", i+1, s.state)
		case ok && e.State != s.state:
			t.Fatalf("step %d: state %s, want %s", i+1, e.State, s.state)
		}
	}
}

func TestTCPHandshakeAndTeardown(t *testing.T) {
	ms := time.Millisecond
	run(t, NewTable(Timeouts{}), []step{
		{p: tcp(client, server, syn), pass: true, status: StatusNew, state: TCPSynSent},
		{p: tcp(server, client, synAck), at: 1 * ms, egress: true, status: StatusEstablished, state: TCPSynRecv},
		{p: tcp(client, server, ack), at: 2 * ms, pass: true, status: StatusEstablished, state: TCPEstablished},
		{p: tcp(client, server, finAck), at: 3 * ms, pass: true, status: StatusEstablished, state: TCPFinWait},
		{p: tcp(server, client, ack), at: 4 * ms, egress: true, status: StatusEstablished, state: TCPCloseWait},
		{p: tcp(server, client, finAck), at: 5 * ms, egress: true, status: StatusEstablished, state: TCPLastAck},
		{p: tcp(client, server, ack), at: 6 * ms, pass: true, status: StatusEstablished, state: TCPTimeWait},
		// TIME_WAIT lasts 120 s; the same SYN reopens before that.
		{p: tcp(client, server, syn), at: 7 * ms, pass: true, status: StatusNew, state: TCPSynSent},
	})
}

func TestTCPInvalidWithoutEntry(t *testing.T) {
	for _, flags := range []uint8{ack, synAck, rst, finAck, 0} {
		run(t, NewTable(Timeouts{}), []step{
			{p: tcp(client, server, flags), pass: true, status: StatusInvalid, state: StateNone},
		})
	}
}

func TestTCPResetCloses(t *testing.T) {
	run(t, NewTable(Timeouts{}), []step{
		{p: tcp(client, server, syn), pass: true, status: StatusNew, state: TCPSynSent},
		{p: tcp(server, client, rst), egress: true, status: StatusEstablished, state: TCPClose},
		// CLOSE lasts 10 s.
		{p: tcp(server, client, ack), at: 9 * time.Second, egress: true, status: StatusEstablished, state: TCPClose},
		{p: tcp(server, client, ack), at: 20 * time.Second, status: StatusInvalid, state: StateNone},
	})
}

func TestTimeoutsByState(t *testing.T) {
	run(t, NewTable(Timeouts{}), []step{
		{p: tcp(client, server, syn), pass: true, status: StatusNew, state: TCPSynSent},
		{p: tcp(server, client, synAck), at: 119 * time.Second, egress: true, status: StatusEstablished, state: TCPSynRecv},
		// SYN_RECV lasts 60 s.
		{p: tcp(client, server, ack), at: 180 * time.Second, pass: true, status: StatusInvalid, state: StateNone},
	})
	short := NewTable(Timeouts{UDP: 5 * time.Second})
	run(t, short, []step{
		{p: udp(client, server), pass: true, status: StatusNew, state: UDPUnreplied},
		{p: udp(client, server), at: 6 * time.Second, pass: true, status: StatusNew, state: UDPUnreplied},
		{p: udp(server, client), at: 7 * time.Second, egress: true, status: StatusEstablished, state: UDPReplied},
		// A stream lasts 120 s.
		{p: udp(client, server), at: 100 * time.Second, pass: true, status: StatusEstablished, state: UDPReplied},
	})
}

func TestPickupFromEgressOnly(t *testing.T) {
	run(t, NewTable(Timeouts{}), []step{
		// A mid-stream ACK arriving is invalid and creates nothing...
		{p: tcp(client, server, ack), pass: true, status: StatusInvalid, state: StateNone},
		// ...the host's own picks the connection up...
		{p: tcp(server, client, ack), egress: true, status: StatusInvalid, state: TCPEstablished},
		// ...and the peer's next segment is established.
		{p: tcp(client, server, ack), pass: true, status: StatusEstablished, state: TCPEstablished},
	})
	run(t, NewTable(Timeouts{}), []step{
		{p: tcp(server, client, finAck), egress: true, status: StatusInvalid, state: StateNone},
		{p: tcp(server, client, rst), egress: true, status: StatusInvalid, state: StateNone},
	})
}

func TestEchoAndErrors(t *testing.T) {
	a := Endpoint{netip.MustParseAddr("2001:db8::1"), 7}
	b := Endpoint{netip.MustParseAddr("2001:db8::2"), 7}
	req := &Packet{Kind: KindEchoRequest, Family: 6, Proto: 58, Src: a, Dst: b}
	reply := &Packet{Kind: KindEchoReply, Family: 6, Proto: 58, Src: b, Dst: a}
	tbl := NewTable(Timeouts{})
	run(t, tbl, []step{
		{p: reply, egress: true, status: StatusInvalid, state: StateNone},
		{p: req, egress: true, status: StatusNew, state: ICMPRequested},
		{p: reply, pass: true, status: StatusEstablished, state: ICMPReplied},
	})
	udpFlow := Endpoints{Proto: 17, Src: Endpoint{a.Addr, 5353}, Dst: Endpoint{b.Addr, 53}}
	err := &Packet{Kind: KindICMPError, Family: 6, Proto: 58, Src: b, Dst: a, Inner: udpFlow, HasInner: true}
	if st := tbl.Status(err, 2e9); st != StatusInvalid {
		t.Errorf("error about an unknown flow: %s, want invalid", st)
	}
	tbl.Commit(&Packet{Kind: KindUDP, Family: 6, Proto: 17, Src: udpFlow.Src, Dst: udpFlow.Dst}, StatusNew, 2e9, true)
	if st := tbl.Status(err, 3e9); st != StatusRelated {
		t.Errorf("error about a tracked flow: %s, want related", st)
	}
	err.HasInner = false
	if st := tbl.Status(err, 3e9); st != StatusInvalid {
		t.Errorf("error without its flow: %s, want invalid", st)
	}
}

func TestKeyIsTheSameBothWays(t *testing.T) {
	k1, lo1 := NewKey(4, 6, client, server)
	k2, lo2 := NewKey(4, 6, server, client)
	if k1 != k2 || lo1 == lo2 {
		t.Errorf("keys %v (%v) and %v (%v)", k1, lo1, k2, lo2)
	}
	back, err := DecodeKey(k1.Encode())
	if err != nil || back != k1 {
		t.Errorf("decode(encode(%v)) = %v, %v", k1, back, err)
	}
	// Same address: the port decides.
	a, b := Endpoint{client.Addr, 2}, Endpoint{client.Addr, 1}
	if k, lo := NewKey(4, 17, a, b); lo || k.Lo != b {
		t.Errorf("key of %v > %v is %v (src lo %v)", a, b, k, lo)
	}
}

func TestTCPTableCoversEveryState(t *testing.T) {
	for _, d := range []Dir{Original, Reply} {
		for c := TCPClass(0); c < numTCPClasses; c++ {
			for _, s := range TCPStates {
				n, moved := NextTCP(s, d, c)
				if moved && !n.IsTCP() {
					t.Errorf("%s %s in %s -> %s, not a TCP state", d, c, s, n)
				}
				if s != StateNone && moved && n == StateNone {
					t.Errorf("%s %s in %s -> none", d, c, s)
				}
			}
		}
	}
}
