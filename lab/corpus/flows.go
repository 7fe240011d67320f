package corpus

import (
	"math/rand"
	"net/netip"
	"slices"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/wire"
)

// A flow is a conversation for the stateful differential: frames in both
// directions (the host's own, Out, and arriving ones) with their times, of
// one to four connections interleaved. Connections are TCP (handshakes,
// retransmits, data, FIN teardowns either side first, resets, reopening
// over TIME_WAIT, mid-stream pick-up, SYN+ACK without SYN, simultaneous
// open), UDP, ICMP echo and other protocols (GRE, ESP, AH, SCTP, ICMP of
// the other family), over IPv4 and IPv6, tagged or not, with the ICMP
// errors routers send about them (related, about no flow, carrying too
// little), frames tracking leaves alone (neighbour discovery, later
// fragments, ARP) and frames of the stateless corpus, malformed ones
// included. Waits between frames cross the policy's timeouts.

// FlowFrame is one frame of a flow.
type FlowFrame struct {
	// Class says what the frame is, for reports: "tcp SA", "udp",
	// "icmp-error", "noise ipv4-frag-later", ...
	Class Class
	Data  []byte
	// Time is since the flow's first frame.
	Time time.Duration
	// Out marks a frame the host sends (egress).
	Out bool
}

// Flow is one generated conversation.
type Flow struct {
	Frames []FlowFrame
}

// TimingMargin is how far Flows keeps every frame from every time an
// entry could die: from every earlier frame's time plus every timeout.
// The kernel's clock runs on in real time while a replay works, so the
// kernel's entries are that much older than the reference's; a frame
// that close to a timeout could be decided either way.
const TimingMargin = time.Second

// maxFlowFrames bounds a flow's frames.
const maxFlowFrames = 48

// Flows returns n flows derived from seed for a connection table with
// timeouts t (its zero fields are the defaults): waits are drawn near
// those timeouts, on either side, and every frame is kept TimingMargin
// from every time an entry could die (TimingSafe).
func Flows(seed int64, n int, t conntrack.Timeouts) []Flow {
	r := rand.New(rand.NewSource(seed))
	timeouts := timeoutValues(t)
	flows := make([]Flow, n)
	for i := range flows {
		g := &flowGen{r: r, timeouts: timeouts}
		flows[i] = g.flow()
	}
	return flows
}

// timeoutValues lists t's timeouts (defaults for zero fields), each once,
// ascending.
func timeoutValues(t conntrack.Timeouts) []time.Duration {
	t = t.WithDefaults()
	var out []time.Duration
	for _, name := range conntrack.TimeoutNames() {
		out = append(out, t.Named(name))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TimingSafe reports whether every frame of frames lies TimingMargin or
// more from every time an entry of the table could die (an earlier
// frame's time plus one of the timeouts of t), so the kernel's clock,
// running on in real time, cannot decide a frame otherwise than the
// reference's.
func TimingSafe(frames []FlowFrame, t conntrack.Timeouts) bool {
	timeouts := timeoutValues(t)
	for j, f := range frames {
		if nearExpiry(f.Time, frames[:j], timeouts) >= 0 {
			return false
		}
	}
	return true
}

// nearExpiry returns a time an entry could die that lies within
// TimingMargin of at, given the earlier frames; -1 when there is none.
func nearExpiry(at time.Duration, earlier []FlowFrame, timeouts []time.Duration) time.Duration {
	for _, e := range earlier {
		for _, d := range timeouts {
			if x := e.Time + d; at > x-TimingMargin && at < x+TimingMargin {
				return x
			}
		}
	}
	return -1
}

// flowGen draws one flow.
type flowGen struct {
	r        *rand.Rand
	timeouts []time.Duration
	frames   []FlowFrame
	convs    []*conv
}

// endpoint is an address and a port (or echo identifier).
type endpoint struct {
	addr netip.Addr
	port uint16
}

// Kinds of connections.
const (
	convTCP = iota
	convUDP
	convEcho
	convOther
)

// conv is one connection of a flow: the host's endpoint and the peer's,
// and the steps left to send.
type conv struct {
	kind   int
	family int
	proto  uint8 // convOther's protocol
	host   endpoint
	peer   endpoint
	// allIn: both directions arrive (a flow crossing the host), none is
	// the host's own.
	allIn bool
	steps []step
	// sent are the specs of the packets sent so far, for the errors about
	// them.
	sent []sentPacket
}

// step is one packet of a connection: who sends it and what.
type step struct {
	fromHost bool
	flags    uint8 // TCP
	icmpType uint8 // echo
	echoID   uint16
	payload  int
}

// sentPacket is a packet of a connection as it was sent.
type sentPacket struct {
	spec     frameSpec
	fromHost bool
}

// Hosts the flows are of: the DUT's addresses, which generated rules'
// prefixes often hold.
var (
	flowHosts4 = []string{"10.0.0.2", "10.0.0.1", "192.168.1.1", "198.51.100.7"}
	flowHosts6 = []string{"2001:db8::2", "2001:db8::1", "fe80::1", "2001:db8:bad::9"}
	// flowRouters send the ICMP errors.
	flowRouters4 = []string{"192.0.2.9", "203.0.113.1", "10.255.255.255"}
	flowRouters6 = []string{"2001:db8:ffff::ffff", "fe80::2:3", "2001:db8:1::5"}
)

func (g *flowGen) flow() Flow {
	r := g.r
	n := 1 + r.Intn(4)
	family := 4
	if chance(r, 0.45) {
		family = 6
	}
	for range n {
		if chance(r, 0.2) {
			family = 10 - family
		}
		g.convs = append(g.convs, g.newConv(family))
	}
	for len(g.frames) < maxFlowFrames {
		var live []*conv
		for _, c := range g.convs {
			if len(c.steps) > 0 {
				live = append(live, c)
			}
		}
		if len(live) == 0 {
			break
		}
		switch x := r.Float64(); {
		case x < 0.08:
			g.icmpError()
		case x < 0.12:
			g.noise()
		default:
			c := pick(r, live)
			st := c.steps[0]
			c.steps = c.steps[1:]
			g.send(c, st)
		}
	}
	return Flow{Frames: g.frames}
}

// newConv draws a connection and its steps.
func (g *flowGen) newConv(family int) *conv {
	r := g.r
	c := &conv{family: family, allIn: chance(r, 0.12)}
	if family == 4 {
		c.host.addr, c.peer.addr = netip.MustParseAddr(pick(r, flowHosts4)), poolV4(r)
	} else {
		c.host.addr, c.peer.addr = netip.MustParseAddr(pick(r, flowHosts6)), poolV6(r)
	}
	c.host.port, c.peer.port = poolPort(r), poolPort(r)
	if chance(r, 0.5) {
		c.host.port = uint16(32768 + r.Intn(28000))
	}
	hostOpens := chance(r, 0.5)
	switch x := r.Intn(10); {
	case x < 5:
		c.kind = convTCP
		c.steps = tcpSteps(r, hostOpens)
	case x < 7:
		c.kind = convUDP
		c.steps = datagramSteps(r, hostOpens)
	case x < 9:
		c.kind = convEcho
		c.steps = echoSteps(r, hostOpens)
	default:
		c.kind = convOther
		c.proto = pick(r, []uint8{wire.ProtoGRE, wire.ProtoESP, wire.ProtoAH, wire.ProtoSCTP, 255})
		if chance(r, 0.2) {
			c.proto = wire.ProtoICMPv6 // ICMP of the other family
			if family == 6 {
				c.proto = wire.ProtoICMP
			}
		}
		c.steps = datagramSteps(r, hostOpens)
	}
	return c
}

// TCP flags.
const (
	fFin = wire.TCPFin
	fSyn = wire.TCPSyn
	fRst = wire.TCPRst
	fPsh = wire.TCPPsh
	fAck = wire.TCPAck
)

// tcpSteps draws a TCP connection's segments; the initiator is the host
// when hostOpens.
func tcpSteps(r *rand.Rand, hostOpens bool) []step {
	var s []step
	init := func(flags uint8) { s = append(s, step{fromHost: hostOpens, flags: flags}) }
	resp := func(flags uint8) { s = append(s, step{fromHost: !hostOpens, flags: flags}) }
	either := func(flags uint8) { s = append(s, step{fromHost: chance(r, 0.5), flags: flags}) }
	switch x := r.Intn(20); {
	case x < 14: // a handshake
		init(fSyn)
		if chance(r, 0.2) {
			init(fSyn)
		}
		if chance(r, 0.85) {
			resp(fSyn | fAck)
			if chance(r, 0.15) {
				resp(fSyn | fAck)
			}
			init(fAck)
		}
	case x < 16: // joined mid-stream: the first packet is an ACK
		either(pick(r, []uint8{fAck, fAck | fPsh}))
	case x < 17: // SYN+ACK without a SYN
		resp(fSyn | fAck)
		init(fAck)
	case x < 18: // simultaneous open
		init(fSyn)
		resp(fSyn)
		init(fSyn | fAck)
		resp(fSyn | fAck)
	case x < 19: // a lone reset or FIN
		either(pick(r, []uint8{fRst, fRst | fAck, fFin | fAck, fFin}))
	default: // odd flags
		either(pick(r, tcpFlagCombos))
	}
	for range r.Intn(5) {
		st := step{fromHost: chance(r, 0.5), flags: pick(r, []uint8{fAck, fAck | fPsh, fAck | fPsh})}
		if st.flags&fPsh != 0 {
			st.payload = 1 + r.Intn(100)
		}
		s = append(s, st)
	}
	switch x := r.Intn(10); {
	case x < 3: // the initiator closes first
		init(fFin | fAck)
		resp(fAck)
		resp(fFin | fAck)
		init(fAck)
	case x < 5: // the responder closes first
		resp(fFin | fAck)
		init(fFin | fAck)
		resp(fAck)
	case x < 6: // both at once
		init(fFin | fAck)
		resp(fFin | fAck)
		init(fAck)
		resp(fAck)
	case x < 8: // a reset
		either(pick(r, []uint8{fRst, fRst | fAck}))
	}
	if chance(r, 0.25) { // a retransmit after the end
		either(pick(r, []uint8{fFin | fAck, fAck}))
	}
	if chance(r, 0.2) { // reopened with the same ports
		init(fSyn)
		resp(fSyn | fAck)
		init(fAck)
	}
	if chance(r, 0.1) {
		either(pick(r, tcpFlagCombos))
	}
	return s
}

// datagramSteps draws UDP or another protocol's packets, the first from
// the initiator.
func datagramSteps(r *rand.Rand, hostOpens bool) []step {
	s := []step{{fromHost: hostOpens, payload: r.Intn(40)}}
	for range r.Intn(6) {
		s = append(s, step{fromHost: chance(r, 0.5), payload: r.Intn(40)})
	}
	return s
}

// echoSteps draws echo requests and replies with their identifiers; now
// and then a reply of another identifier, or one without its request.
func echoSteps(r *rand.Rand, hostOpens bool) []step {
	id := uint16(r.Intn(65536))
	if chance(r, 0.1) {
		id = 0
	}
	var s []step
	if chance(r, 0.15) {
		return []step{{fromHost: !hostOpens, icmpType: echoReply, echoID: id}}
	}
	for range 1 + r.Intn(3) {
		s = append(s, step{fromHost: hostOpens, icmpType: echoRequest, echoID: id, payload: r.Intn(56)})
		if chance(r, 0.8) {
			rid := id
			if chance(r, 0.1) {
				rid = id + 1
			}
			s = append(s, step{fromHost: !hostOpens, icmpType: echoReply, echoID: rid, payload: r.Intn(56)})
		}
	}
	return s
}

// Echo message kinds of a step (the family picks the type numbers).
const (
	echoRequest = 1
	echoReply   = 2
)

// spec returns the frame spec of packet st of connection c.
func (c *conv) spec(r *rand.Rand, st step) frameSpec {
	s := baseSpec(r)
	from, to := c.peer, c.host
	if st.fromHost {
		from, to = c.host, c.peer
	}
	s.src, s.dst = from.addr, to.addr
	if c.family == 4 {
		s.etherType = wire.EtherTypeIPv4
		if chance(r, 0.1) {
			s.v4Opts = randomV4Options(r)
		}
		if chance(r, 0.3) {
			s.v4Flags = layers.IPv4DontFragment
		}
	} else {
		s.etherType = wire.EtherTypeIPv6
		if chance(r, 0.1) {
			s.exts = randomExts(r, 1+r.Intn(2))
		}
	}
	s.pad = chance(r, 0.5)
	switch c.kind {
	case convTCP:
		s.proto = wire.ProtoTCP
		s.l4 = l4Header{srcPort: from.port, dstPort: to.port, tcpFlags: st.flags}
		if chance(r, 0.2) {
			s.l4.tcpOptions = randomTCPOptions(r)
		}
	case convUDP:
		s.proto = wire.ProtoUDP
		s.l4 = l4Header{srcPort: from.port, dstPort: to.port}
	case convEcho:
		s.proto = wire.ProtoICMP
		typ := uint8(wire.ICMPEchoRequest)
		if st.icmpType == echoReply {
			typ = 0
		}
		if c.family == 6 {
			s.proto = wire.ProtoICMPv6
			typ = wire.ICMPv6EchoRequest
			if st.icmpType == echoReply {
				typ = 129
			}
		}
		s.l4 = l4Header{icmpType: typ, echoID: st.echoID, setEchoID: true}
	default:
		s.proto = c.proto
		s.l4 = l4Header{raw: rawUpper(r, c.proto)}
	}
	b := make([]byte, st.payload)
	r.Read(b)
	s.payload = b
	// A first fragment is tracked like the whole packet.
	if chance(r, 0.05) {
		if c.family == 4 {
			s.v4Flags = layers.IPv4MoreFragments
		} else {
			s.exts = append(s.exts, extHeader{kind: wire.IPv6ExtFragment, more: true})
		}
	}
	return s
}

// send emits packet st of c after a gap.
func (g *flowGen) send(c *conv, st step) {
	s := c.spec(g.r, st)
	c.sent = append(c.sent, sentPacket{spec: s, fromHost: st.fromHost})
	g.emit(convClass(c, st), build(s).b, st.fromHost && !c.allIn)
}

// convClass names packet st of c for reports.
func convClass(c *conv, st step) Class {
	switch c.kind {
	case convTCP:
		return Class("tcp " + flagText(st.flags))
	case convUDP:
		return "udp"
	case convEcho:
		if st.icmpType == echoReply {
			return "echo-reply"
		}
		return "echo-request"
	}
	return "other"
}

func flagText(f uint8) string {
	if f == 0 {
		return "."
	}
	var b []byte
	for i := range 8 {
		if f&(1<<i) != 0 {
			b = append(b, wire.TCPFlagLetters[i])
		}
	}
	return string(b)
}

// icmpError emits an ICMP error about a packet one of the flow's
// connections sent (or one like it, of no flow), as a router on the path
// sends it to the packet's sender: arriving when the host sent the
// packet, else the host's own.
func (g *flowGen) icmpError() {
	r := g.r
	var started []*conv
	for _, c := range g.convs {
		if len(c.sent) > 0 {
			started = append(started, c)
		}
	}
	if len(started) == 0 {
		return
	}
	c := pick(r, started)
	about := pick(r, c.sent)
	inner := about.spec
	inner.tags, inner.pad = nil, false
	class := Class("icmp-error")
	switch x := r.Intn(20); {
	case x < 3: // about no flow: other ports or addresses
		class = "icmp-error no-flow"
		if inner.proto == wire.ProtoTCP || inner.proto == wire.ProtoUDP {
			inner.l4.dstPort ^= 1
		} else if inner.src.Is4() {
			inner.src = poolV4(r)
		} else {
			inner.src = poolV6(r)
		}
	case x < 4: // about a later fragment
		class = "icmp-error fragment"
		if inner.src.Is4() {
			inner.fragOff = 185
		} else {
			inner.exts = append(inner.exts, extHeader{kind: wire.IPv6ExtFragment, fragOff: 185})
		}
		inner.l4.raw = fakeL4(r, inner.proto)
	}
	in := build(inner)
	carry := in.lay.hl + 8
	switch x := r.Intn(10); {
	case x < 1:
		class += " short"
		carry = in.lay.hl + r.Intn(8)
	case x < 3:
		carry = len(in.b) - in.lay.l3
	}
	whole := in.b[in.lay.l3:]
	embedded := append([]byte(nil), whole[:min(carry, len(whole))]...)
	if chance(r, 0.05) {
		// A carried header no flow can be read from: another version, or
		// an IPv4 IHL under 5.
		class += " bad-inner"
		embedded[0] = pick(r, []byte{0x00, 0x45 ^ 0x60, 0x44, 0x65})
	}
	family := c.family
	if chance(r, 0.03) {
		// An error of the other family: it carries no packet of its own.
		class += " other-family"
		family = 10 - family
	}
	s := baseSpec(r)
	if family == 4 {
		s.etherType, s.proto = wire.EtherTypeIPv4, wire.ProtoICMP
		s.src, s.dst = netip.MustParseAddr(pick(r, flowRouters4)), poolV4(r)
		s.l4.icmpType = pick(r, []uint8{3, 3, 11, 12})
		if chance(r, 0.1) {
			s.v4Opts = randomV4Options(r)
		}
	} else {
		s.etherType, s.proto = wire.EtherTypeIPv6, wire.ProtoICMPv6
		s.src, s.dst = netip.MustParseAddr(pick(r, flowRouters6)), poolV6(r)
		s.l4.icmpType = pick(r, []uint8{1, 2, 3, 4})
		if chance(r, 0.1) {
			s.exts = randomExts(r, 1)
		}
	}
	if family == c.family {
		s.dst = inner.src
	}
	if chance(r, 0.05) {
		if family == 4 {
			s.v4Flags = layers.IPv4MoreFragments
		} else {
			s.exts = append(s.exts, extHeader{kind: wire.IPv6ExtFragment, more: true})
		}
	}
	s.l4.icmpCode = pick(r, poolICMPCodes)
	s.payload = embedded
	s.pad = chance(r, 0.5)
	frame := build(s)
	if len(embedded) < len(whole) && chance(r, 0.3) {
		// The rest of the packet after the error's end, as an Ethernet
		// trailer: not carried, and never read as carried.
		class += " trailer"
		frame.b = append(frame.b[:frame.lay.end], whole[len(embedded):]...)
	}
	// The error goes to the packet's sender: to the host when the host
	// sent it; from the host (its own error) when the peer did.
	out := !about.fromHost && !c.allIn
	if chance(r, 0.15) {
		out = !out
	}
	g.emit(class, frame.b, out)
}

// noise emits a frame tracking leaves alone (neighbour discovery, a later
// fragment, ARP, an ICMP message neither echo nor error) or one of the
// stateless corpus, malformed ones included, either way.
func (g *flowGen) noise() {
	r := g.r
	out := chance(r, 0.4)
	switch x := r.Intn(5); {
	case x < 1:
		s := withProto(r, randomV6(r), wire.ProtoICMPv6)
		s.l4.icmpType = pick(r, []uint8{133, 134, 135, 136, 137})
		g.emit("noise nd", build(s).b, out)
	case x < 2:
		s := withProto(r, randomV4(r), wire.ProtoICMP)
		s.l4.icmpType = pick(r, []uint8{4, 5, 9, 13, 14})
		g.emit("noise icmp", build(s).b, out)
	default:
		for {
			cg := pick(r, classGens)
			f := cg.gen(r)
			if len(f) < 14 || len(f) > 1514 {
				continue
			}
			g.emit(Class("noise "+cg.class), f, out)
			return
		}
	}
}

// emit appends a frame after a gap drawn from the flow's timeouts, kept
// TimingMargin from every time an entry could die.
func (g *flowGen) emit(class Class, frame []byte, out bool) {
	if len(g.frames) >= maxFlowFrames {
		return
	}
	at := time.Duration(0)
	if n := len(g.frames); n > 0 {
		at = g.frames[n-1].Time + g.gap()
		for {
			x := nearExpiry(at, g.frames, g.timeouts)
			if x < 0 {
				break
			}
			at = x + TimingMargin
		}
	}
	g.frames = append(g.frames, FlowFrame{Class: class, Data: frame, Time: at, Out: out})
}

// gap draws the time between two frames: mostly a few milliseconds (or
// none), sometimes up to two seconds, sometimes a timeout and a few
// seconds more or less, rarely hours or days.
func (g *flowGen) gap() time.Duration {
	r := g.r
	switch x := r.Float64(); {
	case x < 0.55:
		return time.Duration(r.Intn(3)) * time.Millisecond
	case x < 0.8:
		return time.Duration(r.Intn(2000)) * time.Millisecond
	case x < 0.97:
		d := pick(r, g.timeouts)
		off := time.Duration(1500+r.Intn(4500)) * time.Millisecond
		if chance(r, 0.5) {
			return d + off
		}
		return max(d-off, 0)
	}
	return time.Duration(3+r.Intn(120)) * time.Minute * time.Duration(1+r.Intn(60))
}
