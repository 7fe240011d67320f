package compiler_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/runtime"
)

// trackingPolicy counts every packet under the rule of its ct_state, so
// the counters say which status the XDP program gave it, and drops TCP to
// port 9, whose packets must then change nothing. The timeouts are the
// conversations' own, so that they show the conntrack block reaching the
// code.
const trackingPolicy = `
conntrack {
  max_entries = %d
  timeouts = {
    tcp_syn_sent    = "30s"
    tcp_syn_recv    = "25s"
    tcp_established = "1h"
    tcp_fin_wait    = "35s"
    tcp_close_wait  = "40s"
    tcp_last_ack    = "45s"
    tcp_time_wait   = "20s"
    tcp_close       = "10s"
    udp             = "20s"
    udp_stream      = "60s"
    icmp            = "15s"
    other           = "50s"
  }
}

policy "ct" {
  default   = "pass"
  malformed = "drop"

  rule "new" {
    ct_state = "new"
    action   = "count"
  }
  rule "established" {
    ct_state = "established"
    action   = "count"
  }
  rule "related" {
    ct_state = "related"
    action   = "count"
  }
  rule "invalid" {
    ct_state = "invalid"
    action   = "count"
  }
  rule "closed" {
    proto    = "tcp"
    dst_port = 9
    action   = "drop"
  }
}
`

// statusRules are the count rules of trackingPolicy by the status they
// count, in slot order.
var statusRules = []conntrack.Status{conntrack.StatusNew, conntrack.StatusEstablished, conntrack.StatusRelated, conntrack.StatusInvalid}

// closedPort is the port trackingPolicy drops TCP to.
const closedPort = 9

// pkt is one packet of a conversation: what the test builds the frame
// from and feeds the reference table.
type pkt struct {
	// out: the host sends it (the TC egress program); else it arrives
	// (the XDP program).
	out bool
	// at is the time since the conversation began.
	at       time.Duration
	kind     conntrack.Kind
	src, dst netip.AddrPort
	flags    uint8  // TCP
	id       uint16 // echo identifier
	vlan     uint16 // 802.1Q tag, 0 for none
	proto    uint8  // KindOther's protocol
	// icmp is an error's or another ICMP message's type (0: unused for
	// echoes); for KindUntracked, a frame that is not tracked.
	icmpType uint8
	// inner is the packet an ICMP error carries; innerBytes how much of
	// its layer 4 (8 by default, -1 for none).
	inner      *pkt
	innerBytes int
	// innerOptions gives the embedded IPv4 header options.
	innerOptions bool
	// pad is bytes after the IP packet (an Ethernet trailer), which the
	// tracker must not read as the packet's.
	pad int
	// untracked builds a frame the tracker leaves alone: "arp",
	// "fragment", "router-advert", "ndp".
	untracked string
	// want is the status the test expects; StatusNone: whatever the
	// reference says (want is checked against the reference too).
	want conntrack.Status
}

const (
	tFin = 0x01
	tSyn = 0x02
	tRst = 0x04
	tPsh = 0x08
	tAck = 0x10
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func (p *pkt) family() uint8 {
	if p.src.Addr().Is4() {
		return 4
	}
	return 6
}

func (p *pkt) ipProto() uint8 {
	switch p.kind {
	case conntrack.KindTCP:
		return 6
	case conntrack.KindUDP:
		return 17
	case conntrack.KindEchoRequest, conntrack.KindEchoReply, conntrack.KindICMPError:
		return icmpProto(p.family())
	}
	if p.untracked == "router-advert" || p.untracked == "ndp" {
		return icmpProto(p.family())
	}
	return p.proto
}

func icmpProto(family uint8) uint8 {
	if family == 4 {
		return 1
	}
	return 58
}

// endpoints are p's endpoints as the tracker keys them.
func (p *pkt) endpoints() (conntrack.Endpoint, conntrack.Endpoint) {
	switch p.kind {
	case conntrack.KindTCP, conntrack.KindUDP:
		return conntrack.Endpoint{Addr: p.src.Addr(), Port: p.src.Port()}, conntrack.Endpoint{Addr: p.dst.Addr(), Port: p.dst.Port()}
	case conntrack.KindEchoRequest, conntrack.KindEchoReply:
		return conntrack.Endpoint{Addr: p.src.Addr(), Port: p.id}, conntrack.Endpoint{Addr: p.dst.Addr(), Port: p.id}
	}
	return conntrack.Endpoint{Addr: p.src.Addr()}, conntrack.Endpoint{Addr: p.dst.Addr()}
}

// packet is p as the reference table reads it.
func (p *pkt) packet() *conntrack.Packet {
	if p.untracked != "" {
		return &conntrack.Packet{Kind: conntrack.KindUntracked}
	}
	src, dst := p.endpoints()
	cp := &conntrack.Packet{Kind: p.kind, Family: p.family(), Proto: p.ipProto(), Src: src, Dst: dst, TCPFlags: p.flags}
	if p.kind == conntrack.KindICMPError && p.inner != nil {
		in := p.inner
		isrc, idst := in.endpoints()
		cp.Inner = conntrack.Endpoints{Proto: in.ipProto(), Src: isrc, Dst: idst}
		// 8 bytes of the embedded layer 4, whatever its protocol
		// (docs/conntrack.md, "The packet an ICMP error carries").
		cp.HasInner = p.innerBytes >= 8
	}
	return cp
}

var (
	hostMAC = []byte{0x02, 0, 0, 0, 0, 0x01}
	peerMAC = []byte{0x02, 0, 0, 0, 0, 0x02}
	ser     = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
)

// ipLayers returns p's IP header and layer-4 layers.
func (p *pkt) ipLayers(t *testing.T) []gopacket.SerializableLayer {
	var ls []gopacket.SerializableLayer
	var net gopacket.NetworkLayer
	proto := layers.IPProtocol(p.ipProto())
	if p.family() == 4 {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice(), Id: 7}
		if p.untracked == "fragment" {
			ip.FragOffset = 100
		}
		if p.innerOptions {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		ls, net = append(ls, ip), ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice()}
		ls, net = append(ls, ip), ip
	}
	switch p.kind {
	case conntrack.KindTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.src.Port()), DstPort: layers.TCPPort(p.dst.Port()), Seq: 1000, Window: 512,
			FIN: p.flags&tFin != 0, SYN: p.flags&tSyn != 0, RST: p.flags&tRst != 0, PSH: p.flags&tPsh != 0, ACK: p.flags&tAck != 0}
		if err := tcp.SetNetworkLayerForChecksum(net); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, tcp)
	case conntrack.KindUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(p.src.Port()), DstPort: layers.UDPPort(p.dst.Port())}
		if err := udp.SetNetworkLayerForChecksum(net); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, udp, gopacket.Payload("hello"))
	case conntrack.KindEchoRequest, conntrack.KindEchoReply, conntrack.KindICMPError, conntrack.KindUntracked:
		typ := p.icmpType
		switch {
		case p.kind == conntrack.KindEchoRequest && p.family() == 4:
			typ = layers.ICMPv4TypeEchoRequest
		case p.kind == conntrack.KindEchoReply && p.family() == 4:
			typ = layers.ICMPv4TypeEchoReply
		case p.kind == conntrack.KindEchoRequest:
			typ = layers.ICMPv6TypeEchoRequest
		case p.kind == conntrack.KindEchoReply:
			typ = layers.ICMPv6TypeEchoReply
		}
		var rest []byte // after the type, code and checksum
		if p.kind == conntrack.KindICMPError {
			rest = append([]byte{0, 0, 0, 0}, p.embedded(t)...)
		} else {
			rest = []byte{byte(p.id >> 8), byte(p.id), 0, 1, 'p', 'i', 'n', 'g'}
		}
		if p.family() == 4 {
			ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0),
				Id: uint16(rest[0])<<8 | uint16(rest[1]), Seq: uint16(rest[2])<<8 | uint16(rest[3])}, gopacket.Payload(rest[4:]))
		} else {
			icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
			if err := icmp.SetNetworkLayerForChecksum(net); err != nil {
				t.Fatal(err)
			}
			ls = append(ls, icmp, gopacket.Payload(rest))
		}
	default:
		ls = append(ls, gopacket.Payload([]byte{0, 0, 0x08, 0, 1, 2, 3, 4}))
	}
	return ls
}

// embedded is the start of the packet an ICMP error carries: its IP
// header and innerBytes of its layer 4.
func (p *pkt) embedded(t *testing.T) []byte {
	in := p.inner
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, ser, in.ipLayers(t)...); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	hl := 40
	if in.family() == 4 {
		hl = int(b[0]&0x0f) * 4
	}
	n := hl + max(p.innerBytes, 0)
	if p.innerBytes < 0 {
		n = hl - 4 // not even the whole IP header
	}
	return append([]byte(nil), b[:min(n, len(b))]...)
}

// frame is p as an Ethernet frame.
func (p *pkt) frame(t *testing.T) []byte {
	src, dst := peerMAC, hostMAC
	if p.out {
		src, dst = hostMAC, peerMAC
	}
	et := layers.EthernetTypeIPv4
	if p.family() == 6 {
		et = layers.EthernetTypeIPv6
	}
	var ls []gopacket.SerializableLayer
	switch p.untracked {
	case "arp":
		ls = []gopacket.SerializableLayer{
			&layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeARP},
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
				Operation: layers.ARPRequest, SourceHwAddress: src, SourceProtAddress: []byte{10, 0, 0, 2},
				DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 1}},
		}
	default:
		eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: et}
		ls = append(ls, eth)
		if p.vlan != 0 {
			eth.EthernetType = layers.EthernetTypeDot1Q
			ls = append(ls, &layers.Dot1Q{VLANIdentifier: p.vlan, Type: et})
		}
		ls = append(ls, p.ipLayers(t)...)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, ser, ls...); err != nil {
		t.Fatal(err)
	}
	return append(buf.Bytes(), make([]byte, p.pad)...)
}

func (p *pkt) String() string {
	dir := "in "
	if p.out {
		dir = "out"
	}
	what := map[conntrack.Kind]string{conntrack.KindTCP: "tcp", conntrack.KindUDP: "udp", conntrack.KindEchoRequest: "echo-request",
		conntrack.KindEchoReply: "echo-reply", conntrack.KindICMPError: "icmp-error", conntrack.KindOther: fmt.Sprintf("proto %d", p.proto)}[p.kind]
	if p.untracked != "" {
		what = p.untracked
	}
	s := fmt.Sprintf("%s +%s %s %s > %s", dir, p.at, what, p.src, p.dst)
	if p.kind == conntrack.KindTCP {
		var f []string
		for _, b := range []struct {
			bit  uint8
			name string
		}{{tSyn, "S"}, {tFin, "F"}, {tRst, "R"}, {tPsh, "P"}, {tAck, "."}} {
			if p.flags&b.bit != 0 {
				f = append(f, b.name)
			}
		}
		s += " [" + strings.Join(f, "") + "]"
	}
	if p.inner != nil {
		s += fmt.Sprintf(" about (%s, %d bytes)", p.inner, p.innerBytes)
	}
	if p.vlan != 0 {
		s += fmt.Sprintf(" vlan %d", p.vlan)
	}
	if p.pad != 0 {
		s += fmt.Sprintf(" padded by %d", p.pad)
	}
	return s
}

// tracker runs conversations through a tracking policy's XDP and TC
// programs sharing one connection table, and through a conntrack.Table.
type tracker struct {
	t        *testing.T
	art      *artifact.Artifact
	coll     *ebpf.Collection
	ref      *conntrack.Table
	timeouts conntrack.Timeouts
	// base is the reference's clock at the conversation's start; last
	// the time of the previous packet.
	base, last time.Duration
	// assuredFull: the assured map may be full, so an assured state may
	// sit in the unassured map.
	assuredFull bool
	// evicted: a flood may have evicted unassured entries the reference
	// keeps (compareTables' subset).
	evicted  bool
	counters []uint64
	// runs are the kernel's clock before the first and after the last
	// run of a packet at each conversation time.
	runs map[time.Duration]clockWindow
}

// clockWindow is a span of the kernel's clock.
type clockWindow struct{ from, to uint64 }

func newTracker(t *testing.T, maxEntries int) *tracker {
	t.Helper()
	src := fmt.Sprintf(trackingPolicy, maxEntries)
	cfg, diags := policy.Load("ct.hcl", []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	art, err := compiler.Compile(cfg, cfg.Policies[0], compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var elf bytes.Buffer
	if err := art.WriteELF(&elf); err != nil {
		t.Fatal(err)
	}
	spec, _, err := artifact.Read(elf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(coll.Close)
	tr := &tracker{t: t, art: art, coll: coll, timeouts: cfg.Conntrack.Timeouts, ref: conntrack.NewTable(cfg.Conntrack.Timeouts),
		base: time.Second, runs: map[time.Duration]clockWindow{}}
	tr.counters = tr.readCounters()
	return tr
}

func (tr *tracker) maps() (assured, unassured *ebpf.Map) {
	c := tr.art.Manifest.Conntrack
	return tr.coll.Maps[c.Assured], tr.coll.Maps[c.Unassured]
}

// readCounters sums the packets of every counter slot over the CPUs.
func (tr *tracker) readCounters() []uint64 {
	m := tr.coll.Maps[tr.art.Manifest.Counters.Map]
	out := make([]uint64, m.MaxEntries())
	for slot := range out {
		var per []artifact.Counter
		if err := m.Lookup(uint32(slot), &per); err != nil {
			tr.t.Fatal(err)
		}
		for _, c := range per {
			out[slot] += c.Packets
		}
	}
	return out
}

// monotonic is the kernel's clock, which bpf_ktime_get_ns reads.
func monotonic(t *testing.T) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return uint64(ts.Nano())
}

// send runs one packet through the kernel and the reference, and compares
// its status and, unless skipTable, the tables afterwards.
func (tr *tracker) send(p pkt, skipTable bool) conntrack.Status {
	t := tr.t
	t.Helper()
	if p.at < tr.last {
		t.Fatalf("%s: goes back in time", &p)
	}
	if gap := p.at - tr.last; gap > 0 {
		a, u := tr.maps()
		if err := runtime.AgeConntrack(gap, a, u); err != nil {
			t.Fatal(err)
		}
	}
	tr.last = p.at
	now := uint64(tr.base + p.at)
	cp := p.packet()
	want := tr.ref.Status(cp, now)
	if p.want != conntrack.StatusNone && p.want != want {
		t.Fatalf("%s: the reference says %s, the conversation expects %s", &p, want, p.want)
	}
	frame := p.frame(t)
	var got conntrack.Status
	if p.out {
		ret, err := tr.runProgram(tr.art.Egress.Name, p.at, frame)
		if err != nil {
			t.Fatal(err)
		}
		if int32(ret) != -1 {
			t.Fatalf("%s: egress returned %d, want -1 (TC_ACT_UNSPEC)", &p, int32(ret))
		}
		tr.ref.Commit(cp, want, now, true)
		got = want // the egress program counts nothing; its effect is in the table
	} else {
		ret, err := tr.runProgram(tr.art.Program, p.at, frame)
		if err != nil {
			t.Fatal(err)
		}
		wantAction := artifact.ActionPass
		if p.kind == conntrack.KindTCP && p.dst.Port() == closedPort {
			wantAction = artifact.ActionDrop
		}
		if artifact.Action(ret) != wantAction {
			t.Fatalf("%s: XDP returned %d, want %s", &p, ret, wantAction)
		}
		counters := tr.readCounters()
		got = conntrack.StatusNone
		for i, s := range statusRules {
			if d := counters[i] - tr.counters[i]; d == 1 {
				if got != conntrack.StatusNone {
					t.Fatalf("%s: counted as %s and %s", &p, got, s)
				}
				got = s
			} else if d != 0 {
				t.Fatalf("%s: rule %s counted %d packets", &p, s, d)
			}
		}
		tr.counters = counters
		if got != want {
			t.Errorf("%s: ct_state %s, the reference says %s", &p, got, want)
		}
		if wantAction == artifact.ActionPass {
			tr.ref.Commit(cp, want, now, false)
		}
	}
	if !skipTable {
		tr.compareTables(fmt.Sprintf("after %s", &p), tr.evicted)
	}
	return got
}

// runProgram runs a frame through a program at conversation time at,
// recording the kernel's clock around it.
func (tr *tracker) runProgram(name string, at time.Duration, frame []byte) (uint32, error) {
	from := monotonic(tr.t)
	ret, err := tr.coll.Programs[name].Run(&ebpf.RunOptions{Data: frame})
	w, ok := tr.runs[at]
	if !ok {
		w.from = from
	}
	w.to = monotonic(tr.t)
	tr.runs[at] = w
	return ret, err
}

// flood sends packets that arrive at one time, all new and passed, and
// checks their statuses in total.
func (tr *tracker) flood(ps []pkt) {
	t := tr.t
	t.Helper()
	if gap := ps[0].at - tr.last; gap > 0 {
		a, u := tr.maps()
		if err := runtime.AgeConntrack(gap, a, u); err != nil {
			t.Fatal(err)
		}
	}
	for i := range ps {
		p := &ps[i]
		if p.out || p.at != ps[0].at || p.at < tr.last {
			t.Fatalf("%s: a flood arrives at one time", p)
		}
		now := uint64(tr.base + p.at)
		cp := p.packet()
		if st := tr.ref.Status(cp, now); st != conntrack.StatusNew {
			t.Fatalf("%s: the reference says %s, a flood is new", p, st)
		}
		ret, err := tr.runProgram(tr.art.Program, p.at, p.frame(t))
		if err != nil {
			t.Fatal(err)
		}
		if artifact.Action(ret) != artifact.ActionPass {
			t.Fatalf("%s: XDP returned %d, want pass", p, ret)
		}
		tr.ref.Commit(cp, conntrack.StatusNew, now, false)
	}
	tr.last = ps[0].at
	counters := tr.readCounters()
	for i, s := range statusRules {
		want := tr.counters[i]
		if s == conntrack.StatusNew {
			want += uint64(len(ps))
		}
		if counters[i] != want {
			t.Errorf("after a flood of %d new packets, rule %s counted %d, want %d", len(ps), s, counters[i]-tr.counters[i], want-tr.counters[i])
		}
	}
	tr.counters = counters
}

// kernelFlow is a live entry of the kernel's table and the map it is in.
type kernelFlow struct {
	entry   conntrack.Entry
	assured bool
}

// kernelFlows reads the live entries of both maps, and the kernel's clock.
func (tr *tracker) kernelFlows() (map[conntrack.Key]kernelFlow, uint64) {
	t := tr.t
	t.Helper()
	know := monotonic(t)
	flows := map[conntrack.Key]kernelFlow{}
	a, u := tr.maps()
	for _, m := range []struct {
		m       *ebpf.Map
		assured bool
	}{{a, true}, {u, false}} {
		var k, v []byte
		it := m.m.Iterate()
		for it.Next(&k, &v) {
			key, err := conntrack.DecodeKey(k)
			if err != nil {
				t.Fatal(err)
			}
			e, err := conntrack.DecodeEntry(v)
			if err != nil {
				t.Fatal(err)
			}
			if know >= e.Expires {
				continue
			}
			if prev, ok := flows[key]; ok {
				t.Fatalf("%v is live in both maps: %+v and %+v", key, prev, e)
			}
			flows[key] = kernelFlow{e, m.assured}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return flows, know
}

// slack is how far the kernel's clock may be off the window the test read
// around a run.
const slack = time.Millisecond

// margin keeps the conversations' packets this far from a timeout, beyond
// the real time the test itself takes: the kernel's clock runs on while
// the test works (slowly under emulation), so the kernel's entries are
// that much older than the reference's.
const margin = time.Second

// drift is the window of how much older, by the kernel's clock know, an
// entry the reference last wrote at its time v is in the kernel: the
// real time since the packet of that time ran. It fails the test if no
// packet ran then.
func (tr *tracker) drift(when string, k conntrack.Key, v uint64, know uint64) (lo, hi time.Duration) {
	at := time.Duration(v) - tr.base
	w, ok := tr.runs[at]
	if !ok {
		tr.t.Fatalf("%s: the reference wrote %v at +%s, when no packet ran", when, k, at)
	}
	return time.Duration(know-w.to) - slack, time.Duration(know-w.from) + slack
}

// evictable reports whether an entry in state s may be in the unassured
// map, which a flood may have evicted it from.
func (tr *tracker) evictable(s conntrack.State) bool { return !s.Assured() || tr.assuredFull }

// compareTables compares the kernel's live entries with the reference's:
// the same keys, states and flags, remaining lifetimes and ages as far
// apart as the real time since the packets that wrote them, and each
// entry in the map its state belongs in. With subset, the kernel may have
// lost unassured entries (evicted under a flood, or dead by the kernel's
// clock after a slow one).
func (tr *tracker) compareTables(when string, subset bool) {
	t := tr.t
	t.Helper()
	vnow := uint64(tr.base + tr.last)
	flows, know := tr.kernelFlows()
	ref := map[conntrack.Key]conntrack.Entry{}
	for _, f := range tr.ref.Flows(vnow) {
		ref[f.Key] = f.Entry
		if subset && tr.evictable(f.Entry.State) {
			continue
		}
		_, hi := tr.drift(when, f.Key, f.Entry.Expires-uint64(tr.timeouts.Of(f.Entry.State)), know)
		if rem := time.Duration(f.Entry.Expires - vnow); rem <= hi+margin {
			t.Fatalf("%s: %v expires in %s, %s after the packet that wrote it ran: the conversation comes too close to a timeout to compare clocks", when, f.Key, rem, hi)
		}
	}
	var keys []conntrack.Key
	for k := range flows {
		keys = append(keys, k)
	}
	for k := range ref {
		if _, ok := flows[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	for _, k := range keys {
		kf, inKernel := flows[k]
		re, inRef := ref[k]
		switch {
		case !inRef:
			t.Errorf("%s: the kernel has %v in state %s, the reference none", when, k, kf.entry.State)
			continue
		case !inKernel:
			if !subset || !tr.evictable(re.State) {
				t.Errorf("%s: the reference has %v in state %s, the kernel none", when, k, re.State)
			}
			continue
		}
		ke := kf.entry
		if ke.State != re.State || ke.Flags != re.Flags {
			t.Errorf("%s: %v is %s flags %#x in the kernel, %s flags %#x in the reference", when, k, ke.State, ke.Flags, re.State, re.Flags)
			continue
		}
		if kf.assured != ke.State.Assured() && !(tr.assuredFull && !kf.assured) {
			t.Errorf("%s: %v in state %s is in the assured map: %v", when, k, ke.State, kf.assured)
		}
		refRem, kRem := time.Duration(re.Expires-vnow), time.Duration(ke.Expires-know)
		lo, hi := tr.drift(when, k, re.Expires-uint64(tr.timeouts.Of(re.State)), know)
		if d := refRem - kRem; d < lo || d > hi {
			t.Errorf("%s: %v expires in %s in the kernel, %s in the reference: %s apart, want %s to %s", when, k, kRem, refRem, d, lo, hi)
		}
		// The kernel's clock may be younger than the conversation (a
		// guest just booted): an entry aged past it reads created 0.
		if ke.Created > 0 {
			lo, hi := tr.drift(when, k, re.Created, know)
			refAge, kAge := time.Duration(vnow-re.Created), time.Duration(know-ke.Created)
			if d := kAge - refAge; d < lo || d > hi {
				t.Errorf("%s: %v is %s old in the kernel, %s in the reference: %s apart, want %s to %s", when, k, kAge, refAge, d, lo, hi)
			}
		}
	}
}

// run sends a conversation's packets in order.
func (tr *tracker) run(conv []pkt) {
	tr.t.Helper()
	for _, p := range conv {
		tr.send(p, false)
	}
}

// A conversation's endpoints.
var (
	host4, peer4 = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	host6, peer6 = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	router4      = netip.MustParseAddr("192.0.2.254")
	router6      = netip.MustParseAddr("2001:db8:ffff::1")
)

func tcpPkt(out bool, at time.Duration, src, dst string, flags uint8, want conntrack.Status) pkt {
	return pkt{out: out, at: at, kind: conntrack.KindTCP, src: ap(src), dst: ap(dst), flags: flags, want: want}
}

func udpPkt(out bool, at time.Duration, src, dst string, want conntrack.Status) pkt {
	return pkt{out: out, at: at, kind: conntrack.KindUDP, src: ap(src), dst: ap(dst), want: want}
}

func echoPkt(out bool, at time.Duration, kind conntrack.Kind, src, dst netip.Addr, id uint16, want conntrack.Status) pkt {
	return pkt{out: out, at: at, kind: kind, src: netip.AddrPortFrom(src, 0), dst: netip.AddrPortFrom(dst, 0), id: id, want: want}
}

// errorPkt is an ICMP error from src to dst about inner (what dst sent),
// carrying innerBytes of its layer 4.
func errorPkt(out bool, at time.Duration, src, dst netip.Addr, typ uint8, inner pkt, innerBytes int, want conntrack.Status) pkt {
	return pkt{out: out, at: at, kind: conntrack.KindICMPError, src: netip.AddrPortFrom(src, 0), dst: netip.AddrPortFrom(dst, 0),
		icmpType: typ, inner: &inner, innerBytes: innerBytes, want: want}
}

// padded is p with n bytes after its IP packet.
func padded(p pkt, n int) pkt {
	p.pad = n
	return p
}

const (
	sNew         = conntrack.StatusNew
	sEstablished = conntrack.StatusEstablished
	sRelated     = conntrack.StatusRelated
	sInvalid     = conntrack.StatusInvalid
	sAny         = conntrack.StatusNone
)

const ms, sec = time.Millisecond, time.Second

// conversations are the differential cases: each runs on a fresh table.
var conversations = map[string][]pkt{
	"tcp handshake, promotion to assured, teardown back to unassured": {
		tcpPkt(false, 0, "10.0.0.2:40000", "10.0.0.1:22", tSyn, sNew),
		tcpPkt(true, 1*ms, "10.0.0.1:22", "10.0.0.2:40000", tSyn|tAck, sEstablished),
		tcpPkt(false, 2*ms, "10.0.0.2:40000", "10.0.0.1:22", tAck, sEstablished),
		tcpPkt(false, 10*sec, "10.0.0.2:40000", "10.0.0.1:22", tPsh|tAck, sEstablished),
		tcpPkt(true, 11*sec, "10.0.0.1:22", "10.0.0.2:40000", tPsh|tAck, sEstablished),
		tcpPkt(false, 20*sec, "10.0.0.2:40000", "10.0.0.1:22", tFin|tAck, sEstablished),
		tcpPkt(true, 20*sec+ms, "10.0.0.1:22", "10.0.0.2:40000", tAck, sEstablished),
		tcpPkt(true, 21*sec, "10.0.0.1:22", "10.0.0.2:40000", tFin|tAck, sEstablished),
		tcpPkt(false, 22*sec, "10.0.0.2:40000", "10.0.0.1:22", tAck, sEstablished),
		// TIME_WAIT lasts 20 s.
		tcpPkt(false, 50*sec, "10.0.0.2:40000", "10.0.0.1:22", tAck, sInvalid),
	},
	"tcp reopen over time_wait and close": {
		tcpPkt(true, 0, "10.0.0.1:50000", "10.0.0.2:80", tSyn, sNew),
		tcpPkt(false, ms, "10.0.0.2:80", "10.0.0.1:50000", tSyn|tAck, sEstablished),
		tcpPkt(true, 2*ms, "10.0.0.1:50000", "10.0.0.2:80", tAck, sEstablished),
		tcpPkt(true, 5*sec, "10.0.0.1:50000", "10.0.0.2:80", tFin|tAck, sEstablished),
		tcpPkt(false, 6*sec, "10.0.0.2:80", "10.0.0.1:50000", tFin|tAck, sEstablished),
		tcpPkt(true, 7*sec, "10.0.0.1:50000", "10.0.0.2:80", tAck, sEstablished),
		// A SYN from the responder does not reopen...
		tcpPkt(false, 8*sec, "10.0.0.2:80", "10.0.0.1:50000", tSyn, sEstablished),
		// ...the originator's does, as new.
		tcpPkt(true, 9*sec, "10.0.0.1:50000", "10.0.0.2:80", tSyn, sNew),
		tcpPkt(false, 9*sec+ms, "10.0.0.2:80", "10.0.0.1:50000", tRst|tAck, sEstablished),
		// CLOSE reopens too.
		tcpPkt(true, 10*sec, "10.0.0.1:50000", "10.0.0.2:80", tSyn, sNew),
	},
	"tcp rst, mid-stream ack, syn+ack without syn": {
		tcpPkt(false, 0, "10.0.0.2:40001", "10.0.0.1:22", tAck, sInvalid),
		tcpPkt(false, ms, "10.0.0.2:40001", "10.0.0.1:22", tSyn|tAck, sInvalid),
		tcpPkt(false, 2*ms, "10.0.0.2:40001", "10.0.0.1:22", tRst, sInvalid),
		tcpPkt(false, 3*ms, "10.0.0.2:40001", "10.0.0.1:22", tFin, sInvalid),
		tcpPkt(false, 4*ms, "10.0.0.2:40001", "10.0.0.1:22", 0, sInvalid),
		tcpPkt(false, 5*ms, "10.0.0.2:40001", "10.0.0.1:22", tSyn, sNew),
		tcpPkt(true, 6*ms, "10.0.0.1:22", "10.0.0.2:40001", tSyn|tAck, sEstablished),
		tcpPkt(false, 7*ms, "10.0.0.2:40001", "10.0.0.1:22", tAck, sEstablished),
		tcpPkt(false, 8*ms, "10.0.0.2:40001", "10.0.0.1:22", tRst, sEstablished),
		// CLOSE lasts 10 s; an ACK in CLOSE stays there and refreshes it.
		tcpPkt(true, 5*sec, "10.0.0.1:22", "10.0.0.2:40001", tAck, sEstablished),
		tcpPkt(false, 20*sec, "10.0.0.2:40001", "10.0.0.1:22", tAck, sInvalid),
	},
	"dropped packets change nothing": {
		tcpPkt(false, 0, "10.0.0.2:40002", "10.0.0.1:9", tSyn, sNew),
		tcpPkt(false, sec, "10.0.0.2:40002", "10.0.0.1:9", tSyn, sNew),
		tcpPkt(false, 2*sec, "10.0.0.2:40002", "10.0.0.1:9", tAck, sInvalid),
		// The host's own connection to port 9 is tracked from egress;
		// the peer's reply comes from port 9 and passes.
		tcpPkt(true, 3*sec, "10.0.0.1:40003", "10.0.0.2:9", tSyn, sNew),
		tcpPkt(false, 3*sec+ms, "10.0.0.2:9", "10.0.0.1:40003", tSyn|tAck, sEstablished),
	},
	"udp both ways and its timeouts": {
		udpPkt(false, 0, "10.0.0.2:5353", "10.0.0.1:53", sNew),
		udpPkt(false, 5*sec, "10.0.0.2:5353", "10.0.0.1:53", sEstablished),
		// Unreplied UDP lasts 20 s.
		udpPkt(false, 30*sec, "10.0.0.2:5353", "10.0.0.1:53", sNew),
		udpPkt(true, 31*sec, "10.0.0.1:53", "10.0.0.2:5353", sEstablished),
		// Replied, it lasts 60 s and is assured.
		udpPkt(false, 80*sec, "10.0.0.2:5353", "10.0.0.1:53", sEstablished),
		udpPkt(true, 150*sec, "10.0.0.1:53", "10.0.0.2:5353", sNew),
		udpPkt(false, 151*sec, "10.0.0.2:5353", "10.0.0.1:53", sEstablished),
		// The host's own query; the answer is established.
		udpPkt(true, 152*sec, "[2001:db8::1]:41000", "[2001:db8::2]:53", sNew),
		udpPkt(false, 152*sec+ms, "[2001:db8::2]:53", "[2001:db8::1]:41000", sEstablished),
		// Same address, ports decide the key's order.
		udpPkt(false, 153*sec, "10.0.0.1:9000", "10.0.0.1:8000", sNew),
		udpPkt(false, 154*sec, "10.0.0.1:8000", "10.0.0.1:9000", sEstablished),
	},
	"icmp echo v4 and v6": {
		echoPkt(false, 0, conntrack.KindEchoReply, peer4, host4, 77, sInvalid),
		echoPkt(false, ms, conntrack.KindEchoRequest, peer4, host4, 77, sNew),
		echoPkt(true, 2*ms, conntrack.KindEchoReply, host4, peer4, 77, sEstablished),
		echoPkt(true, 3*ms, conntrack.KindEchoRequest, host6, peer6, 0x4242, sNew),
		echoPkt(false, 4*ms, conntrack.KindEchoReply, peer6, host6, 0x4242, sEstablished),
		// Another identifier is another flow.
		echoPkt(false, 5*ms, conntrack.KindEchoReply, peer6, host6, 0x4243, sInvalid),
		// ICMP lasts 15 s.
		echoPkt(true, 30*sec, conntrack.KindEchoRequest, host6, peer6, 0x4242, sNew),
	},
	"icmp errors v4": {
		udpPkt(true, 0, "10.0.0.1:41000", "10.0.0.2:53", sNew),
		tcpPkt(true, ms, "10.0.0.1:41001", "10.0.0.2:443", tSyn, sNew),
		echoPkt(true, 2*ms, conntrack.KindEchoRequest, host4, peer4, 9, sNew),
		errorPkt(false, 3*ms, peer4, host4, 3, udpPkt(true, 0, "10.0.0.1:41000", "10.0.0.2:53", sAny), 8, sRelated),
		errorPkt(false, 4*ms, router4, host4, 11, tcpPkt(true, 0, "10.0.0.1:41001", "10.0.0.2:443", tSyn, sAny), 8, sRelated),
		errorPkt(false, 5*ms, router4, host4, 11, echoPkt(true, 0, conntrack.KindEchoRequest, host4, peer4, 9, sAny), 8, sRelated),
		errorPkt(false, 6*ms, router4, host4, 12, udpPkt(true, 0, "10.0.0.1:41000", "10.0.0.2:53", sAny), 8, sRelated),
		// The embedded header with IPv4 options.
		func() pkt {
			p := errorPkt(false, 7*ms, router4, host4, 3, udpPkt(true, 0, "10.0.0.1:41000", "10.0.0.2:53", sAny), 8, sRelated)
			p.inner.innerOptions = true
			return p
		}(),
		// About no flow, or carrying too little of it: invalid.
		errorPkt(false, 8*ms, peer4, host4, 3, udpPkt(true, 0, "10.0.0.1:41999", "10.0.0.2:53", sAny), 8, sInvalid),
		errorPkt(false, 9*ms, peer4, host4, 3, udpPkt(true, 0, "10.0.0.1:41000", "10.0.0.2:53", sAny), 7, sInvalid),
		errorPkt(false, 10*ms, peer4, host4, 3, udpPkt(true, 0, "10.0.0.1:41000", "10.0.0.2:53", sAny), -1, sInvalid),
		// Bytes after the IP packet are not the embedded packet's.
		padded(errorPkt(false, 10*ms, peer4, host4, 3, udpPkt(true, 0, "10.0.0.1:41000", "10.0.0.2:53", sAny), 4, sInvalid), 8),
		padded(errorPkt(false, 10*ms, peer4, host4, 3, udpPkt(true, 0, "10.0.0.1:41000", "10.0.0.2:53", sAny), -1, sInvalid), 24),
		// An error about the peer's own packet to the host is of the
		// same flow.
		errorPkt(true, 11*ms, host4, peer4, 3, udpPkt(false, 0, "10.0.0.2:53", "10.0.0.1:41000", sAny), 8, sAny),
		errorPkt(false, 12*ms, router4, host4, 3, udpPkt(false, 0, "10.0.0.2:53", "10.0.0.1:41000", sAny), 8, sRelated),
		// Other ICMP messages are not tracked.
		{at: 13 * ms, kind: conntrack.KindUntracked, src: netip.AddrPortFrom(router4, 0), dst: netip.AddrPortFrom(host4, 0), icmpType: 9, untracked: "router-advert"},
		// Related packets commit nothing: the UDP flow is still unreplied.
		udpPkt(true, 14*ms, "10.0.0.1:41000", "10.0.0.2:53", sEstablished),
	},
	"icmp errors v6": {
		udpPkt(true, 0, "[2001:db8::1]:41000", "[2001:db8::2]:53", sNew),
		tcpPkt(false, ms, "[2001:db8::2]:41001", "[2001:db8::1]:443", tSyn, sNew),
		echoPkt(true, 2*ms, conntrack.KindEchoRequest, host6, peer6, 9, sNew),
		errorPkt(false, 3*ms, peer6, host6, 1, udpPkt(true, 0, "[2001:db8::1]:41000", "[2001:db8::2]:53", sAny), 8, sRelated),
		errorPkt(false, 4*ms, router6, host6, 2, echoPkt(true, 0, conntrack.KindEchoRequest, host6, peer6, 9, sAny), 8, sRelated),
		errorPkt(false, 5*ms, router6, host6, 3, echoPkt(true, 0, conntrack.KindEchoRequest, host6, peer6, 10, sAny), 8, sInvalid),
		// The host's error about the peer's SYN, seen on egress.
		errorPkt(true, 6*ms, host6, peer6, 4, tcpPkt(false, 0, "[2001:db8::2]:41001", "[2001:db8::1]:443", tSyn, sAny), 8, sAny),
		errorPkt(false, 7*ms, router6, host6, 4, tcpPkt(true, 0, "[2001:db8::1]:443", "[2001:db8::2]:41001", tSyn|tAck, sAny), 8, sRelated),
		errorPkt(false, 8*ms, router6, host6, 4, tcpPkt(true, 0, "[2001:db8::1]:443", "[2001:db8::2]:41001", tSyn|tAck, sAny), 3, sInvalid),
		padded(errorPkt(false, 8*ms, router6, host6, 4, tcpPkt(true, 0, "[2001:db8::1]:443", "[2001:db8::2]:41001", tSyn|tAck, sAny), 4, sInvalid), 8),
		padded(errorPkt(false, 8*ms, router6, host6, 4, tcpPkt(true, 0, "[2001:db8::1]:443", "[2001:db8::2]:41001", tSyn|tAck, sAny), -1, sInvalid), 48),
		// Cut inside the embedded header, where the zeros of the padding
		// would complete the flow's address: invalid.
		{out: true, at: 9 * ms, kind: conntrack.KindOther, proto: 47, src: netip.AddrPortFrom(host6, 0), dst: ap("[2001:db8::7:0:0]:0"), want: sNew},
		padded(errorPkt(false, 9*ms, router6, host6, 1, pkt{kind: conntrack.KindOther, proto: 47, src: netip.AddrPortFrom(host6, 0), dst: ap("[2001:db8::7:0:0]:0")}, -1, sInvalid), 48),
		// An error about another protocol carries 8 bytes of it too.
		errorPkt(false, 9*ms, router6, host6, 1, pkt{kind: conntrack.KindOther, proto: 47, src: netip.AddrPortFrom(host6, 0), dst: ap("[2001:db8::7:0:0]:0")}, 0, sInvalid),
		errorPkt(false, 9*ms, router6, host6, 1, pkt{kind: conntrack.KindOther, proto: 47, src: netip.AddrPortFrom(host6, 0), dst: ap("[2001:db8::7:0:0]:0")}, 8, sRelated),
		// Neighbour discovery is not tracked.
		{at: 9 * ms, kind: conntrack.KindUntracked, src: netip.AddrPortFrom(peer6, 0), dst: netip.AddrPortFrom(host6, 0), icmpType: 135, untracked: "ndp"},
	},
	"ipv6 tcp and vlan-tagged frames": {
		{at: 0, kind: conntrack.KindTCP, src: ap("[2001:db8::2]:40000"), dst: ap("[2001:db8::1]:22"), flags: tSyn, vlan: 10, want: sNew},
		tcpPkt(true, ms, "[2001:db8::1]:22", "[2001:db8::2]:40000", tSyn|tAck, sEstablished),
		{at: 2 * ms, kind: conntrack.KindTCP, src: ap("[2001:db8::2]:40000"), dst: ap("[2001:db8::1]:22"), flags: tAck, vlan: 20, want: sEstablished},
		{at: 3 * ms, kind: conntrack.KindUDP, src: ap("10.0.0.2:1000"), dst: ap("10.0.0.1:2000"), vlan: 30, want: sNew},
		{out: true, at: 4 * ms, kind: conntrack.KindUDP, src: ap("10.0.0.1:2000"), dst: ap("10.0.0.2:1000"), vlan: 30, want: sEstablished},
	},
	"pickup from egress": {
		// A connection open before tracking began: the peer's segment
		// is invalid and picks nothing up...
		tcpPkt(false, 0, "10.0.0.2:40005", "10.0.0.1:22", tPsh|tAck, sInvalid),
		// ...the host's own ACK does...
		tcpPkt(true, ms, "10.0.0.1:22", "10.0.0.2:40005", tPsh|tAck, sInvalid),
		// ...and then the peer's is established.
		tcpPkt(false, 2*ms, "10.0.0.2:40005", "10.0.0.1:22", tAck, sEstablished),
		// The host's FIN or RST without an entry picks nothing up.
		tcpPkt(true, 3*ms, "10.0.0.1:22", "10.0.0.2:40006", tFin|tAck, sInvalid),
		tcpPkt(true, 4*ms, "10.0.0.1:22", "10.0.0.2:40006", tRst, sInvalid),
		tcpPkt(false, 5*ms, "10.0.0.2:40006", "10.0.0.1:22", tAck, sInvalid),
	},
	"other protocols and untracked frames": {
		{at: 0, kind: conntrack.KindOther, proto: 47, src: netip.AddrPortFrom(peer4, 0), dst: netip.AddrPortFrom(host4, 0), want: sNew},
		{out: true, at: sec, kind: conntrack.KindOther, proto: 47, src: netip.AddrPortFrom(host4, 0), dst: netip.AddrPortFrom(peer4, 0), want: sEstablished},
		{at: 2 * sec, kind: conntrack.KindOther, proto: 132, src: netip.AddrPortFrom(peer6, 0), dst: netip.AddrPortFrom(host6, 0), want: sNew},
		// ICMP in IPv6 (proto 1) is another protocol there.
		{at: 3 * sec, kind: conntrack.KindOther, proto: 1, src: netip.AddrPortFrom(peer6, 0), dst: netip.AddrPortFrom(host6, 0), want: sNew},
		{at: 4 * sec, untracked: "arp", src: netip.AddrPortFrom(peer4, 0), dst: netip.AddrPortFrom(host4, 0)},
		{at: 5 * sec, kind: conntrack.KindOther, proto: 47, untracked: "fragment", src: netip.AddrPortFrom(peer4, 0), dst: netip.AddrPortFrom(host4, 0)},
		{out: true, at: 6 * sec, untracked: "arp", src: netip.AddrPortFrom(host4, 0), dst: netip.AddrPortFrom(peer4, 0)},
		// Other protocols live 50 s.
		{at: 40 * sec, kind: conntrack.KindOther, proto: 47, src: netip.AddrPortFrom(peer4, 0), dst: netip.AddrPortFrom(host4, 0), want: sEstablished},
		{at: 60 * sec, kind: conntrack.KindOther, proto: 132, src: netip.AddrPortFrom(peer6, 0), dst: netip.AddrPortFrom(host6, 0), want: sNew},
	},
}

// TestTrackingAgreesWithConntrack runs conversations through a tracking
// policy's XDP program (arriving frames) and TC egress program (the
// host's own) sharing one connection table, and checks every packet's
// ct_state (through the counters of the rule of each status) and, after
// every packet, the table itself against conntrack.Table fed the same
// packets.
func TestTrackingAgreesWithConntrack(t *testing.T) {
	names := make([]string, 0, len(conversations))
	for name := range conversations {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			newTracker(t, 4096).run(conversations[name])
		})
	}
}

// TestTrackingWhenFull floods the unassured map with new flows while an
// established connection sits in the assured one: it stays established.
// Then, with the assured map full, a connection that completes stays in
// the unassured map and keeps working.
func TestTrackingWhenFull(t *testing.T) {
	const maxEntries = policy.MinConntrackEntries // 64 assured, 1,024 unassured
	tr := newTracker(t, maxEntries)
	tr.run([]pkt{
		tcpPkt(false, 0, "10.0.0.2:40000", "10.0.0.1:22", tSyn, sNew),
		tcpPkt(true, ms, "10.0.0.1:22", "10.0.0.2:40000", tSyn|tAck, sEstablished),
		tcpPkt(false, 2*ms, "10.0.0.2:40000", "10.0.0.1:22", tAck, sEstablished),
	})
	var flood []pkt
	for i := range 3000 {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 1024)
		flood = append(flood, pkt{at: sec, kind: conntrack.KindUDP, src: src, dst: ap("10.0.0.1:53")})
	}
	tr.flood(flood)
	tr.evicted = true
	_, unassured := tr.maps()
	if n := countEntries(t, unassured); n > int(unassured.MaxEntries()) || n < 512 {
		t.Errorf("the unassured map holds %d entries after the flood, want it near its %d", n, unassured.MaxEntries())
	}
	tr.send(tcpPkt(false, 2*sec, "10.0.0.2:40000", "10.0.0.1:22", tPsh|tAck, sEstablished), true)
	tr.compareTables("after the flood", true)

	// Fill the assured map with replied UDP flows.
	at := 3 * sec
	for i := range maxEntries {
		c := fmt.Sprintf("10.1.%d.%d:5000", i>>8, i&0xff)
		tr.send(udpPkt(false, at, c, "10.0.0.1:53", sNew), true)
		tr.send(udpPkt(true, at, "10.0.0.1:53", c, sEstablished), true)
	}
	assured, _ := tr.maps()
	if n := countEntries(t, assured); n != maxEntries {
		t.Fatalf("the assured map holds %d entries, want it full (%d)", n, maxEntries)
	}
	tr.assuredFull = true
	tr.run([]pkt{
		tcpPkt(false, 4*sec, "10.0.0.2:40100", "10.0.0.1:22", tSyn, sNew),
		tcpPkt(true, 4*sec+ms, "10.0.0.1:22", "10.0.0.2:40100", tSyn|tAck, sEstablished),
		tcpPkt(false, 4*sec+2*ms, "10.0.0.2:40100", "10.0.0.1:22", tAck, sEstablished),
		tcpPkt(false, 5*sec, "10.0.0.2:40100", "10.0.0.1:22", tPsh|tAck, sEstablished),
		tcpPkt(false, 6*sec, "10.0.0.2:40000", "10.0.0.1:22", tPsh|tAck, sEstablished),
	})
	flows, _ := tr.kernelFlows()
	k, _ := conntrack.NewKey(4, 6, conntrack.Endpoint{Addr: peer4, Port: 40100}, conntrack.Endpoint{Addr: host4, Port: 22})
	if f, ok := flows[k]; !ok || f.assured || f.entry.State != conntrack.TCPEstablished {
		t.Errorf("the connection completed with the assured map full: %+v (found %v), want it established in the unassured map", f, ok)
	}
}

func countEntries(t *testing.T, m *ebpf.Map) int {
	t.Helper()
	n := 0
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
