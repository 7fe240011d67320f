package eval

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/policy"
)

const natFile = `
interface "eth0" { policy = "outside" }
interface "eth1" { policy = "inside" }
interface "eth2" { policy = "plain" }

policy "outside" {
  default = "pass"
  rule "no-telnet" {
    proto    = "tcp"
    dst_port = 23
    action   = "drop"
  }
}

policy "inside" {
  default = "pass"
  rule "seen" {
    proto  = "udp"
    action = "count"
  }
}

policy "plain" {
  default = "pass"
  rule "replies" {
    ct_state = ["invalid"]
    action   = "drop"
  }
}

nat "edge" {
  outside = "eth0"
  inside  = "eth1"

  masquerade {
    src   = "10.0.0.0/24"
    to    = "203.0.113.1"
    ports = "%s"
  }

  forward "web" {
    proto    = "tcp"
    dst      = "203.0.113.1"
    dst_port = 8080
    to       = "10.0.0.5:80"
  }

  forward "alt" {
    proto    = "tcp"
    dst      = "203.0.113.1"
    dst_port = 8081
    to       = "10.0.0.5:80"
  }

  forward "ssh7" {
    proto    = "tcp"
    dst      = "203.0.113.1"
    dst_port = 2222
    to       = "10.0.0.7:22"
  }

  forward "range" {
    proto    = "udp"
    dst      = "203.0.113.1"
    dst_port = "5000-5099"
    to       = "10.0.0.6"
  }

  static {
    inside  = "10.0.0.7"
    outside = "203.0.113.7"
  }
}
`

const (
	natSeed  = 0x5eed
	outside  = "eth0"
	inside   = "eth1"
	public   = "203.0.113.1"
	resolver = "8.8.8.8"
	client   = "198.51.100.9"
)

func loadNAT(t *testing.T, ports string) *policy.Config {
	t.Helper()
	src := []byte(replacePorts(natFile, ports))
	cfg, diags := policy.Load("nat.hcl", src, policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

func replacePorts(s, ports string) string {
	return string(bytes.Replace([]byte(s), []byte("%s"), []byte(ports), 1))
}

func newNATHost(t *testing.T, ports string, reserved ...nat.Reserved) *Host {
	return NewHost(loadNAT(t, ports), HostOptions{Seed: natSeed, Reserved: reserved})
}

// hashPort is the port the allocation starts from for a source port
// outside the range [lo, hi].
func hashPort(lo, hi uint16, src, dst string, sp, dp uint16, proto uint8) uint16 {
	h := nat.Hash(natSeed, netip.MustParseAddr(src), netip.MustParseAddr(dst), sp, dp, proto)
	return lo + uint16(h%uint32(hi-lo+1))
}

// through passes frame into ifname and wants it out as want, with every
// checksum verifying, translated by step (NATNone: untranslated).
func through(t *testing.T, h *Host, ifname string, frame []byte, now uint64, want []byte, step NATStep) HostResult {
	t.Helper()
	r := h.Ingress(ifname, frame, now)
	if r.Verdict != policy.ActionPass {
		t.Fatalf("%s: verdict %v (%s), want pass", ifname, r.Verdict, r.Rule)
	}
	if !bytes.Equal(r.Frame, want) {
		t.Errorf("%s: frame leaves as\n% x\nwant\n% x", ifname, r.Frame, want)
	}
	checkChecksums(t, r.Frame)
	got := NATNone
	if r.NAT != nil {
		got = r.NAT.Step
	}
	if got != step {
		t.Errorf("%s: translated by %v (%v), want %v", ifname, got, r.NAT, step)
	}
	return r
}

func TestMasqueradeUDP(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	p := hashPort(20000, 59999, "10.0.0.5", resolver, 60000, 53, 17)
	r := through(t, h, inside, udpFrame(t, "10.0.0.5", 60000, resolver, 53), 1, udpFrame(t, public, p, resolver, 53), NATMasquerade)
	if r.CTState != conntrack.StatusNew || r.CTCommit != CommitCreate || len(r.Counted) != 1 {
		t.Errorf("query: ct_state %v, commit %v, counted %v", r.CTState, r.CTCommit, r.Counted)
	}
	want := "masquerade 10.0.0.5:60000 -> 203.0.113.1:" + itoa(p)
	if r.NAT.String() != want {
		t.Errorf("explained as %q, want %q", r.NAT, want)
	}
	r = through(t, h, outside, udpFrame(t, resolver, 53, public, p), 2, udpFrame(t, resolver, 53, "10.0.0.5", 60000), NATReply)
	if r.CTState != conntrack.StatusEstablished {
		t.Errorf("reply: ct_state %v, want established", r.CTState)
	}
	through(t, h, inside, udpFrame(t, "10.0.0.5", 60000, resolver, 53), 3, udpFrame(t, public, p, resolver, 53), NATFlow)

	flows := h.Flows(3)
	if len(flows) != 1 {
		t.Fatalf("flows: %v", flows)
	}
	if got, want := nat.Describe(flows[0]), "10.0.0.5:60000 -> 8.8.8.8:53 via 203.0.113.1:"+itoa(p); got != want {
		t.Errorf("flow %q, want %q", got, want)
	}
	aliases := h.Aliases(3)
	if len(aliases) != 1 || aliases[0].Alias.Expires != flows[0].Entry.Expires || flows[0].Entry.State != conntrack.UDPReplied {
		t.Errorf("aliases %+v of flow %+v: the alias must expire with its entry", aliases, flows[0])
	}
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}

func TestMasqueradeKeepsAPortInRange(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	through(t, h, inside, tcpFrame(t, "10.0.0.5", 40000, resolver, 443, 0x02), 1, tcpFrame(t, public, 40000, resolver, 443, 0x02), NATMasquerade)
	through(t, h, outside, tcpFrame(t, resolver, 443, public, 40000, 0x12), 2, tcpFrame(t, resolver, 443, "10.0.0.5", 40000, 0x12), NATReply)
	through(t, h, inside, tcpFrame(t, "10.0.0.5", 40000, resolver, 443, 0x10), 3, tcpFrame(t, public, 40000, resolver, 443, 0x10), NATFlow)
	if f := h.Flows(3); len(f) != 1 || f[0].Entry.State != conntrack.TCPEstablished || f[0].Entry.NAT != conntrack.NATSource {
		t.Errorf("flows %+v, want one established source-NAT entry", f)
	}
}

func TestMasqueradeEcho(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	p := hashPort(20000, 59999, "10.0.0.5", resolver, 7, 7, 1)
	through(t, h, inside, echoFrame(t, "10.0.0.5", resolver, 8, 7), 1, echoFrame(t, public, resolver, 8, p), NATMasquerade)
	r := through(t, h, outside, echoFrame(t, resolver, public, 0, p), 2, echoFrame(t, resolver, "10.0.0.5", 0, 7), NATReply)
	if r.CTState != conntrack.StatusEstablished {
		t.Errorf("echo reply: ct_state %v", r.CTState)
	}
}

func TestMasqueradeOtherProtocol(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	through(t, h, inside, greFrame(t, "10.0.0.5", resolver), 1, greFrame(t, public, resolver), NATMasquerade)
	through(t, h, outside, greFrame(t, resolver, public), 2, greFrame(t, resolver, "10.0.0.5"), NATReply)
	// A second inside host to the same peer would share the tuple.
	if r := h.Ingress(inside, greFrame(t, "10.0.0.6", resolver), 3); r.Rule != RuleNATExhausted {
		t.Errorf("second gre flow to one peer: %s, want %s", r.Rule, RuleNATExhausted)
	}
}

func TestForward(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	through(t, h, outside, tcpFrame(t, client, 5555, public, 8080, 0x02), 1, tcpFrame(t, client, 5555, "10.0.0.5", 80, 0x02), NATForward)
	r := through(t, h, inside, tcpFrame(t, "10.0.0.5", 80, client, 5555, 0x12), 2, tcpFrame(t, public, 8080, client, 5555, 0x12), NATReply)
	if r.CTState != conntrack.StatusEstablished {
		t.Errorf("reply of a forwarded flow: ct_state %v", r.CTState)
	}
	through(t, h, outside, tcpFrame(t, client, 5555, public, 8080, 0x10), 3, tcpFrame(t, client, 5555, "10.0.0.5", 80, 0x10), NATFlow)
	f := h.Flows(3)
	if len(f) != 1 || nat.Describe(f[0]) != "198.51.100.9:5555 -> 203.0.113.1:8080 to 10.0.0.5:80" {
		t.Errorf("flows %+v", f)
	}

	// The port range keeps the port.
	through(t, h, outside, udpFrame(t, client, 7777, public, 5050), 4, udpFrame(t, client, 7777, "10.0.0.6", 5050), NATForward)
	through(t, h, inside, udpFrame(t, "10.0.0.6", 5050, client, 7777), 5, udpFrame(t, public, 5050, client, 7777), NATReply)

	// The same client port through another forward to the same inside
	// endpoint has a live translated tuple: dropped and counted.
	r2 := h.Ingress(outside, tcpFrame(t, client, 5555, public, 8081, 0x02), 6)
	if r2.Verdict != policy.ActionDrop || r2.Rule != RuleNATExhausted || r2.Slot != h.iface(outside).policy.NATExhaustedSlot() || r2.CTCommit != CommitNone {
		t.Errorf("colliding forward: %+v", r2.Result)
	}
	if len(h.Flows(6)) != 2 {
		t.Errorf("a dropped packet must not create an entry: %v", h.Flows(6))
	}
}

func TestStatic(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	// 10.0.0.7 lies within the masquerade's src: static wins, ports kept.
	through(t, h, inside, udpFrame(t, "10.0.0.7", 3333, resolver, 53), 1, udpFrame(t, "203.0.113.7", 3333, resolver, 53), NATStatic)
	through(t, h, outside, udpFrame(t, resolver, 53, "203.0.113.7", 3333), 2, udpFrame(t, resolver, 53, "10.0.0.7", 3333), NATReply)
	through(t, h, outside, tcpFrame(t, client, 1234, "203.0.113.7", 22, 0x02), 3, tcpFrame(t, client, 1234, "10.0.0.7", 22, 0x02), NATStatic)
	through(t, h, inside, tcpFrame(t, "10.0.0.7", 22, client, 1234, 0x12), 4, tcpFrame(t, "203.0.113.7", 22, client, 1234, 0x12), NATReply)
	through(t, h, outside, echoFrame(t, client, "203.0.113.7", 8, 99), 5, echoFrame(t, client, "10.0.0.7", 8, 99), NATStatic)
	// An invalid packet (an ACK of no connection) is not translated.
	stray := tcpFrame(t, "10.0.0.7", 2222, client, 80, 0x10)
	r := h.Ingress(inside, stray, 6)
	if r.CTState != conntrack.StatusInvalid || r.CTCommit != CommitNone || r.NAT != nil || !bytes.Equal(r.Frame, stray) {
		t.Errorf("stray ack: %v, %v, %v", r.CTState, r.CTCommit, r.NAT)
	}
}

func TestAllocationCollisionsAndExhaustion(t *testing.T) {
	h := newNATHost(t, "20000-20002")
	for i, host := range []string{"10.0.0.5", "10.0.0.6", "10.0.0.8"} {
		p := uint16(20000 + i)
		through(t, h, inside, udpFrame(t, host, 20000, resolver, 53), 1, udpFrame(t, public, p, resolver, 53), NATMasquerade)
	}
	r := h.Ingress(inside, udpFrame(t, "10.0.0.9", 20000, resolver, 53), 2)
	p := h.iface(inside).policy
	if r.Verdict != policy.ActionDrop || r.Rule != RuleNATExhausted || r.Slot != p.NATExhaustedSlot() || len(r.Counted) != 1 {
		t.Errorf("exhausted: %+v", r.Result)
	}
	// Another peer has every port free.
	through(t, h, inside, udpFrame(t, "10.0.0.9", 20000, "9.9.9.9", 53), 3, udpFrame(t, public, 20000, "9.9.9.9", 53), NATMasquerade)

	// The aliases die with their entries: the range is free again.
	later := uint64(3 + 31*time.Second)
	through(t, h, inside, udpFrame(t, "10.0.0.9", 20000, resolver, 53), later, udpFrame(t, public, 20000, resolver, 53), NATMasquerade)
	// A reply to a dead translation is not translated.
	r = through(t, h, outside, udpFrame(t, resolver, 53, public, 20001), later+1, udpFrame(t, resolver, 53, public, 20001), NATNone)
	if r.CTState != conntrack.StatusNew {
		t.Errorf("reply to an expired alias: %v", r.CTState)
	}
}

func TestReservedPorts(t *testing.T) {
	h := newNATHost(t, "20000-20002", nat.Reserved{Proto: 17, Port: 20000}, nat.Reserved{Proto: 6, Port: 20001})
	through(t, h, inside, udpFrame(t, "10.0.0.5", 20000, resolver, 53), 1, udpFrame(t, public, 20001, resolver, 53), NATMasquerade)
	through(t, h, inside, tcpFrame(t, "10.0.0.5", 20001, resolver, 53, 0x02), 1, tcpFrame(t, public, 20002, resolver, 53, 0x02), NATMasquerade)
}

func TestHashedStartWraps(t *testing.T) {
	h := newNATHost(t, "20000-20002")
	start := hashPort(20000, 20002, "10.0.0.5", resolver, 40000, 53, 17)
	through(t, h, inside, udpFrame(t, "10.0.0.5", 40000, resolver, 53), 1, udpFrame(t, public, start, resolver, 53), NATMasquerade)
	next := 20000 + (start-20000+1)%3
	through(t, h, inside, udpFrame(t, "10.0.0.6", start, resolver, 53), 1, udpFrame(t, public, next, resolver, 53), NATMasquerade)
}

func TestUDPChecksumZero(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	in, want := udpFrame(t, "10.0.0.5", 40000, resolver, 53), udpFrame(t, public, 40000, resolver, 53)
	zeroUDPChecksum(in)
	zeroUDPChecksum(want)
	through(t, h, inside, in, 1, want, NATMasquerade)
}

func zeroUDPChecksum(f []byte) { f[14+20+6], f[14+20+7] = 0, 0 }

// TestUDPChecksumComputedZero takes a datagram whose translated checksum
// computes to 0: it is written 0xffff.
func TestUDPChecksumComputedZero(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	payload := []byte{0, 0, 1, 2}
	ip := ipOf(udpFrame(t, public, 40000, resolver, 53, payload...))
	ip[20+6], ip[20+7] = 0, 0
	w := ^uint16(sum(ip[20:], pseudoSum(ip)))
	payload[0], payload[1] = byte(w>>8), byte(w)
	want := udpFrame(t, public, 40000, resolver, 53, payload...)
	if want[14+20+6] != 0xff || want[14+20+7] != 0xff {
		t.Fatalf("probe checksum % x, want ff ff", want[14+26:14+28])
	}
	through(t, h, inside, udpFrame(t, "10.0.0.5", 40000, resolver, 53, payload...), 1, want, NATMasquerade)
}

// partial returns frame with its TCP or UDP checksum partial: the folded
// pseudo-header sum, as a sender with checksum offload leaves it.
func partial(frame []byte, csum int) []byte {
	ip := ipOf(frame)
	s := uint16(pseudoSum(ip))
	ip[20+csum], ip[20+csum+1] = byte(s>>8), byte(s)
	return frame
}

func TestPartialChecksums(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	for _, c := range []struct {
		in, want []byte
		csum     int
	}{
		{tcpFrame(t, "10.0.0.5", 40000, resolver, 443, 0x02), tcpFrame(t, public, 40000, resolver, 443, 0x02), 16},
		{udpFrame(t, "10.0.0.5", 40001, resolver, 53), udpFrame(t, public, 40001, resolver, 53), 6},
	} {
		in, want := partial(c.in, c.csum), partial(c.want, c.csum)
		if r := h.Ingress(inside, in, 1); !bytes.Equal(r.Frame, want) {
			t.Errorf("partial checksum:\n% x\nwant\n% x", r.Frame, want)
		}
	}
	// A port change is the device's to sum: the field stays the
	// pseudo-header's sum.
	p := hashPort(20000, 59999, "10.0.0.6", resolver, 2000, 53, 17)
	in := partial(udpFrame(t, "10.0.0.6", 2000, resolver, 53), 6)
	want := partial(udpFrame(t, public, p, resolver, 53), 6)
	r := h.Ingress(inside, in, 2)
	if !bytes.Equal(r.Frame, want) {
		t.Errorf("partial udp with a new port:\n% x\nwant\n% x", r.Frame, want)
	}
}

func TestICMPErrorsOutside(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	p := hashPort(20000, 59999, "10.0.0.5", resolver, 60000, 53, 17)
	query := udpFrame(t, "10.0.0.5", 60000, resolver, 53)
	sent := through(t, h, inside, query, 1, udpFrame(t, public, p, resolver, 53), NATMasquerade).Frame
	expires := h.Flows(1)[0].Entry.Expires

	// Port unreachable from the resolver, time exceeded from a router.
	for _, c := range []struct {
		from      string
		typ, code uint8
	}{{resolver, 3, 3}, {"192.0.2.254", 11, 0}} {
		in := icmpErrorFrame(t, c.from, public, c.typ, c.code, sent)
		want := icmpErrorFrame(t, c.from, "10.0.0.5", c.typ, c.code, query)
		r := through(t, h, outside, in, 2, want, NATError)
		if r.CTState != conntrack.StatusRelated {
			t.Errorf("error: ct_state %v", r.CTState)
		}
	}
	if e := h.Flows(2)[0].Entry.Expires; e != expires {
		t.Errorf("an error refreshed the entry: %d, was %d", e, expires)
	}

	// Fragmentation needed about a masqueraded TCP segment: its ports, not
	// its checksum (beyond the 8 bytes carried).
	syn := tcpFrame(t, "10.0.0.5", 40000, resolver, 443, 0x02)
	out := through(t, h, inside, syn, 3, tcpFrame(t, public, 40000, resolver, 443, 0x02), NATMasquerade).Frame
	in := icmpErrorFrame(t, "192.0.2.254", public, 3, 4, out)
	want := icmpErrorFrame(t, "192.0.2.254", "10.0.0.5", 3, 4, syn)
	through(t, h, outside, in, 4, want, NATError)

	// An echo's error: identifier and the embedded echo's checksum.
	ping := echoFrame(t, "10.0.0.5", resolver, 8, 7)
	q := hashPort(20000, 59999, "10.0.0.5", resolver, 7, 7, 1)
	out = through(t, h, inside, ping, 5, echoFrame(t, public, resolver, 8, q), NATMasquerade).Frame
	through(t, h, outside, icmpErrorFrame(t, "192.0.2.254", public, 11, 0, out), 6, icmpErrorFrame(t, "192.0.2.254", "10.0.0.5", 11, 0, ping), NATError)

	// An error about a flow that is not translated passes as it is.
	other := udpFrame(t, public, 1111, resolver, 53)
	h.Egress(outside, other, 7)
	in = icmpErrorFrame(t, resolver, public, 3, 3, other)
	through(t, h, outside, in, 8, in, NATNone)
}

func TestICMPErrorsInside(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	// About a forwarded datagram, from the inside host itself: the outer
	// source is the forward's public address too.
	query := udpFrame(t, client, 7777, public, 5050)
	fwd := through(t, h, outside, query, 1, udpFrame(t, client, 7777, "10.0.0.6", 5050), NATForward).Frame
	through(t, h, inside, icmpErrorFrame(t, "10.0.0.6", client, 3, 3, fwd), 2, icmpErrorFrame(t, public, client, 3, 3, query), NATError)

	// About a forwarded segment, from a router inside: its own address
	// stays.
	syn := tcpFrame(t, client, 5555, public, 8080, 0x02)
	fwd = through(t, h, outside, syn, 3, tcpFrame(t, client, 5555, "10.0.0.5", 80, 0x02), NATForward).Frame
	through(t, h, inside, icmpErrorFrame(t, "10.0.0.254", client, 11, 0, fwd), 4, icmpErrorFrame(t, "10.0.0.254", client, 11, 0, syn), NATError)
	through(t, h, inside, icmpErrorFrame(t, "10.0.0.254", client, 3, 4, fwd), 4, icmpErrorFrame(t, "10.0.0.254", client, 3, 4, syn), NATError)

	// About a reply of a masqueraded flow, from the inside host.
	p := hashPort(20000, 59999, "10.0.0.5", resolver, 60000, 53, 17)
	through(t, h, inside, udpFrame(t, "10.0.0.5", 60000, resolver, 53), 5, udpFrame(t, public, p, resolver, 53), NATMasquerade)
	reply := udpFrame(t, resolver, 53, public, p)
	delivered := through(t, h, outside, reply, 6, udpFrame(t, resolver, 53, "10.0.0.5", 60000), NATReply).Frame
	through(t, h, inside, icmpErrorFrame(t, "10.0.0.5", resolver, 3, 3, delivered), 7, icmpErrorFrame(t, public, resolver, 3, 3, reply), NATError)
}

func TestFragments(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	big := append(bytes.Repeat([]byte{0xab}, 40), natPayload...)
	first, later := splitFragments(t, udpFrame(t, "10.0.0.5", 40000, resolver, 53, big...))
	wantFirst, wantLater := splitFragments(t, udpFrame(t, public, 40000, resolver, 53, big...))
	through(t, h, inside, first, 1, wantFirst, NATMasquerade)
	through(t, h, inside, later, 2, wantLater, NATFragment)
	if f := h.Fragments(); len(f) != 1 || f[0].Frag.Which != nat.FragSource || f[0].Frag.Addr != netip.MustParseAddr(public) {
		t.Errorf("fragment records %+v", f)
	}

	// The reply's fragments.
	first, later = splitFragments(t, udpFrame(t, resolver, 53, public, 40000, big...))
	wantFirst, wantLater = splitFragments(t, udpFrame(t, resolver, 53, "10.0.0.5", 40000, big...))
	through(t, h, outside, first, 3, wantFirst, NATReply)
	through(t, h, outside, later, 4, wantLater, NATFragment)

	// A later fragment whose first was not seen: dropped and counted.
	_, lost := splitFragments(t, udpFrame(t, "10.0.0.6", 40000, resolver, 53, big...))
	lost[14+5] = 0x99 // another IP id
	fixIPv4Checksum(lost)
	r := h.Ingress(inside, lost, 5)
	if r.Verdict != policy.ActionDrop || r.Rule != RuleNATFragment || r.Slot != h.iface(inside).policy.NATFragmentSlot() {
		t.Errorf("later fragment without its first: %+v", r.Result)
	}

	// Fragments of untranslated flows pass, first seen or not.
	for _, c := range []struct{ ifname, src, dst string }{{inside, "192.168.9.9", resolver}, {outside, resolver, "192.0.2.80"}} {
		first, later := splitFragments(t, udpFrame(t, c.src, 1, c.dst, 2, big...))
		through(t, h, c.ifname, later, 6, later, NATNone)
		through(t, h, c.ifname, first, 7, first, NATNone)
		through(t, h, c.ifname, later, 8, later, NATNone)
	}
}

func fixIPv4Checksum(f []byte) {
	ip := f[14:34]
	ip[10], ip[11] = 0, 0
	s := ^uint16(sum(ip, 0))
	ip[10], ip[11] = byte(s>>8), byte(s)
}

func TestDroppedPacketsAreNotTranslated(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	r := h.Ingress(outside, tcpFrame(t, client, 5555, "203.0.113.7", 23, 0x02), 1)
	if r.Verdict != policy.ActionDrop || r.NAT != nil || len(h.Flows(1)) != 0 {
		t.Errorf("dropped: %+v, %v", r.Result, r.NAT)
	}
}

func TestIPv6IsNotTranslated(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	f := tcp6("fd00::5", "2001:db8::1", 40000, 443, 0x02)
	r := h.Ingress(inside, f, 1)
	if r.NAT != nil || !bytes.Equal(r.Frame, f) {
		t.Errorf("ipv6 translated: %v", r.NAT)
	}
}

// TestHostWithoutNATDecidesAsASession runs a conversation through an
// interface of no nat block and through a Session of its policy.
func TestHostWithoutNATDecidesAsASession(t *testing.T) {
	cfg := loadNAT(t, "20000-59999")
	h := NewHost(cfg, HostOptions{})
	s := NewSession(h.iface("eth2").policy, cfg.Conntrack)
	frames := []struct {
		out   bool
		frame []byte
	}{
		{true, tcpFrame(t, "192.0.2.1", 40000, client, 22, 0x02)},
		{false, tcpFrame(t, client, 22, "192.0.2.1", 40000, 0x12)},
		{false, tcpFrame(t, client, 23, "192.0.2.1", 40000, 0x10)},
		{false, udpFrame(t, "10.0.0.5", 1, "203.0.113.1", 2)},
	}
	for i, f := range frames {
		now := uint64(i + 1)
		if f.out {
			if a, b := h.Egress("eth2", f.frame, now), s.Egress(f.frame, now); a != b {
				t.Errorf("frame %d: host %+v, session %+v", i, a, b)
			}
			continue
		}
		a, b := h.Ingress("eth2", f.frame, now), s.Ingress(f.frame, now)
		if a.Verdict != b.Verdict || a.Rule != b.Rule || a.Slot != b.Slot || a.CTState != b.CTState || a.CTCommit != b.CTCommit || a.NAT != nil || !bytes.Equal(a.Frame, f.frame) {
			t.Errorf("frame %d: host %+v %v, session %+v", i, a.Result, a.NAT, b)
		}
	}
}

// vlan puts an 802.1Q tag of id into frame.
func vlan(frame []byte, id uint16) []byte {
	return cat(frame[:12], []byte{0x81, 0x00, byte(id >> 8), byte(id)}, frame[12:])
}

func TestVLANTaggedFrame(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	in := vlan(tcpFrame(t, "10.0.0.5", 40000, resolver, 443, 0x02), 7)
	want := vlan(tcpFrame(t, public, 40000, resolver, 443, 0x02), 7)
	if r := h.Ingress(inside, in, 1); !bytes.Equal(r.Frame, want) {
		t.Errorf("tagged frame leaves as\n% x\nwant\n% x", r.Frame, want)
	}
}

// TestReopenKeepsItsPort reopens a masqueraded connection in TIME_WAIT:
// its own alias does not count as taken, so it keeps its port.
func TestReopenKeepsItsPort(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	steps := []struct {
		ifname string
		flags  uint8
	}{{inside, 0x02}, {outside, 0x12}, {inside, 0x10}, {inside, 0x11}, {outside, 0x11}, {inside, 0x10}}
	for i, s := range steps {
		var in, want []byte
		if s.ifname == inside {
			in, want = tcpFrame(t, "10.0.0.5", 40000, resolver, 443, s.flags), tcpFrame(t, public, 40000, resolver, 443, s.flags)
		} else {
			in, want = tcpFrame(t, resolver, 443, public, 40000, s.flags), tcpFrame(t, resolver, 443, "10.0.0.5", 40000, s.flags)
		}
		step := NATFlow
		switch {
		case i == 0:
			step = NATMasquerade
		case s.ifname == outside:
			step = NATReply
		}
		through(t, h, s.ifname, in, uint64(i+1), want, step)
	}
	if f := h.Flows(7); len(f) != 1 || f[0].Entry.State != conntrack.TCPTimeWait {
		t.Fatalf("flows %+v, want one in time_wait", f)
	}
	// The reopening SYN keeps the entry's translation.
	r := through(t, h, inside, tcpFrame(t, "10.0.0.5", 40000, resolver, 443, 0x02), 8, tcpFrame(t, public, 40000, resolver, 443, 0x02), NATFlow)
	if r.CTState != conntrack.StatusNew || r.CTCommit != CommitCreate || len(h.Aliases(8)) != 1 {
		t.Errorf("reopened: %v %v, aliases %+v", r.CTState, r.CTCommit, h.Aliases(8))
	}
}

// TestAliasesAreReadOnNATInterfacesOnly sends a reply to a masqueraded
// tuple into an interface without NAT: its table alone says it is new.
func TestAliasesAreReadOnNATInterfacesOnly(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	through(t, h, inside, udpFrame(t, "10.0.0.5", 40000, resolver, 53), 1, udpFrame(t, public, 40000, resolver, 53), NATMasquerade)
	reply := udpFrame(t, resolver, 53, public, 40000)
	if r := h.Ingress("eth2", reply, 2); r.CTState != conntrack.StatusNew || r.NAT != nil || !bytes.Equal(r.Frame, reply) {
		t.Errorf("reply on an interface without NAT: %v %v", r.CTState, r.NAT)
	}
}

// TestEgressCommitsNothingOfATranslatedFlow records the host's own
// packet of a masqueraded flow on the NAT interface: found by its alias,
// it is established and commits nothing (the XDP program that translated
// it committed it), and is not translated.
func TestEgressCommitsNothingOfATranslatedFlow(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	through(t, h, inside, udpFrame(t, "10.0.0.5", 40000, resolver, 53), 1, udpFrame(t, public, 40000, resolver, 53), NATMasquerade)
	before := h.Flows(1)
	e := h.Egress(outside, udpFrame(t, public, 40000, resolver, 53), 2)
	if e.CTState != conntrack.StatusEstablished || e.Commit != CommitNone {
		t.Errorf("egress: %+v", e)
	}
	if f := h.Flows(2); len(f) != 1 || f[0].Entry != before[0].Entry {
		t.Errorf("flows %+v, want %+v", f, before)
	}
	// Its untranslated tuple, through the entry's translation: the same.
	if e := h.Egress(inside, udpFrame(t, "10.0.0.5", 40000, resolver, 53), 3); e.Commit != CommitNone {
		t.Errorf("egress by the entry: %+v", e)
	}
}

func TestTranslatedExplains(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	r := h.Ingress(outside, tcpFrame(t, client, 5555, public, 8080, 0x02), 1)
	if got, want := r.NAT.String(), "forward web 203.0.113.1:8080 -> 10.0.0.5:80"; got != want {
		t.Errorf("explained as %q, want %q", got, want)
	}
	_, later := splitFragments(t, udpFrame(t, "10.0.0.5", 1, resolver, 2, bytes.Repeat([]byte{1}, 40)...))
	first, _ := splitFragments(t, udpFrame(t, "10.0.0.5", 1, resolver, 2, bytes.Repeat([]byte{1}, 40)...))
	h.Ingress(inside, first, 2)
	if got, want := h.Ingress(inside, later, 3).NAT.String(), "fragment 10.0.0.5 -> 203.0.113.1"; got != want {
		t.Errorf("explained as %q, want %q", got, want)
	}
}

func TestHostExplain(t *testing.T) {
	h := newNATHost(t, "20000-20000")
	x := h.Explain(inside, udpFrame(t, "10.0.0.5", 40000, resolver, 53), 1)
	for _, want := range []string{"ct_state: new", `rule "seen"`, "verdict: pass by default", "creates entry", "nat: masquerade 10.0.0.5:40000 -> 203.0.113.1:20000\n"} {
		if !strings.Contains(x.String(), want) {
			t.Errorf("explanation lacks %q:\n%s", want, x)
		}
	}
	x = h.Explain(outside, udpFrame(t, resolver, 53, public, 20000), 2)
	for _, want := range []string{"ct_state: established (entry udp 10.0.0.5:40000", "this packet the reply way", "nat: reply 203.0.113.1:20000 -> 10.0.0.5:40000\n"} {
		if !strings.Contains(x.String(), want) {
			t.Errorf("explanation lacks %q:\n%s", want, x)
		}
	}
	x = h.Explain(inside, udpFrame(t, "10.0.0.6", 40000, resolver, 53), 3)
	if s := x.String(); !strings.Contains(s, "verdict: pass by default") || !strings.Contains(s, "(nat-exhausted)") || x.Outcome.Rule != RuleNATExhausted {
		t.Errorf("exhausted explained as:\n%s", s)
	}
}

// TestExplainDecidesAsIngress runs one conversation through Ingress and
// through Explain on two hosts: the outcomes agree.
func TestExplainDecidesAsIngress(t *testing.T) {
	a, b := newNATHost(t, "20000-20001"), newNATHost(t, "20000-20001")
	frames := []struct {
		ifname string
		frame  []byte
	}{
		{inside, udpFrame(t, "10.0.0.5", 40000, resolver, 53)},
		{outside, udpFrame(t, resolver, 53, public, 20000)},
		{inside, udpFrame(t, "10.0.0.6", 40000, resolver, 53)},
		{inside, udpFrame(t, "10.0.0.8", 40000, resolver, 53)},
		{outside, tcpFrame(t, client, 5555, public, 8080, 0x02)},
		{outside, tcpFrame(t, client, 5555, public, 23, 0x02)},
		{inside, []byte{1, 2, 3}},
	}
	for i, f := range frames {
		r, x := a.Ingress(f.ifname, f.frame, uint64(i)), b.Explain(f.ifname, f.frame, uint64(i))
		o := x.Outcome
		if r.Verdict != o.Verdict || r.Rule != o.Rule || r.Slot != o.Slot || r.CTState != o.CTState || r.CTCommit != o.CTCommit ||
			!bytes.Equal(r.Frame, o.Frame) || (r.NAT == nil) != (o.NAT == nil) || r.NAT != nil && *r.NAT != *o.NAT {
			t.Errorf("frame %d: ingress %+v %v, explain %+v %v", i, r.Result, r.NAT, o.Result, o.NAT)
		}
	}
}

// TestProbesAreBounded fills the 64 ports a search from 20000 probes: a
// new flow starting there is dropped though the range has more.
func TestProbesAreBounded(t *testing.T) {
	h := newNATHost(t, "20000-20099")
	for i := range uint16(nat.MaxProbes) {
		through(t, h, inside, udpFrame(t, "10.0.0.5", 20000+i, resolver, 53), 1, udpFrame(t, public, 20000+i, resolver, 53), NATMasquerade)
	}
	if r := h.Ingress(inside, udpFrame(t, "10.0.0.6", 20000, resolver, 53), 2); r.Rule != RuleNATExhausted {
		t.Errorf("65th probe: %s, want %s", r.Rule, RuleNATExhausted)
	}
	through(t, h, inside, udpFrame(t, "10.0.0.6", 20001+nat.MaxProbes, resolver, 53), 3, udpFrame(t, public, 20001+nat.MaxProbes, resolver, 53), NATMasquerade)
}

// TestStaticCollision reaches one inside endpoint from one client port
// through a forward and through the static mapping: the second
// translated tuple is live, so that flow is dropped and counted.
func TestStaticCollision(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	through(t, h, outside, tcpFrame(t, client, 1234, public, 2222, 0x02), 1, tcpFrame(t, client, 1234, "10.0.0.7", 22, 0x02), NATForward)
	r := h.Ingress(outside, tcpFrame(t, client, 1234, "203.0.113.7", 22, 0x02), 2)
	if r.Verdict != policy.ActionDrop || r.Rule != RuleNATExhausted || r.Slot != h.iface(outside).policy.NATExhaustedSlot() {
		t.Errorf("colliding static flow: %+v", r.Result)
	}
}

// TestFirstFragmentsRecordedOnNATAddresses records a translated first
// fragment with its rewrite, an untranslated one on a NAT address as
// untranslated, and none of the others, as the datapath does.
func TestFirstFragmentsRecordedOnNATAddresses(t *testing.T) {
	h := newNATHost(t, "20000-59999")
	payload := bytes.Repeat([]byte{1}, 40)
	for i, c := range []struct {
		ifname string
		frame  []byte
	}{
		{inside, udpFrame(t, "10.0.0.5", 40000, resolver, 53, payload...)}, // masqueraded
		{outside, udpFrame(t, client, 5353, public, 53, payload...)},       // the router's own
		{outside, udpFrame(t, client, 5353, "192.0.2.1", 53, payload...)},  // no NAT address
	} {
		first, _ := splitFragments(t, c.frame)
		h.Ingress(c.ifname, first, uint64(i+1))
	}
	got := h.Fragments()
	if len(got) != 2 || got[0].Frag.Which == got[1].Frag.Which {
		t.Fatalf("fragment records %+v, want one translated, one untranslated", got)
	}
	for _, f := range got {
		switch f.Key.Src.String() {
		case "10.0.0.5":
			if f.Frag.Which != nat.FragSource || f.Frag.Addr.String() != public {
				t.Errorf("masqueraded first fragment recorded as %+v", f.Frag)
			}
		case client:
			if f.Frag.Which != nat.FragUntranslated || f.Key.Dst.String() != public {
				t.Errorf("the router's own first fragment recorded as %+v for %v", f.Frag, f.Key)
			}
		}
	}
}
