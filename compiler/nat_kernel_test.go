package compiler_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/internal/checksum"
	"github.com/xdpc/xdpc/internal/nstest"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/policy"
)

// natPolicy binds "outside" to the outside interface and "inside" to the
// inside one of a nat block with every kind of translation; the
// masquerade's range is tiny so that tests can exhaust it.
const natPolicy = `
interface "out0" {
  policy = "outside"
}

interface "in0" {
  policy = "inside"
}

policy "outside" {
  default = "pass"

  rule "established" {
    ct_state = "established"
    action   = "count"
  }
}

policy "inside" {
  default = "pass"

  rule "established" {
    ct_state = "established"
    action   = "count"
  }
}

nat "edge" {
  outside = "out0"
  inside  = "in0"

  masquerade {
    src   = "10.0.0.0/24"
    to    = "203.0.113.1"
    ports = "20000-20003"
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
    dst_port = 8443
    to       = "10.0.0.5:80"
  }

  forward "shadow" {
    proto    = "udp"
    dst      = "203.0.113.1"
    dst_port = "20000-20003"
    to       = "10.0.0.99"
  }

  forward "range" {
    proto    = "udp"
    dst      = "203.0.113.1"
    dst_port = "5000-5010"
    to       = "10.0.0.6"
  }

  static {
    inside  = "10.0.0.7"
    outside = "203.0.113.7"
  }
}
`

// natSeed is the NAT table's seed the tests write to the settings map.
const natSeed = 0x5eed1234

var (
	masqTo    = netip.MustParseAddr("203.0.113.1")
	masqPorts = nat.Ports{Lo: 20000, Hi: 20003}
)

// natRig holds the outside and inside programs sharing one connection
// table and one set of NAT maps, as the runtime shares them in a network
// namespace.
type natRig struct {
	t        *testing.T
	out, in  *artifact.Artifact
	outColl  *ebpf.Collection
	inColl   *ebpf.Collection
	manifest artifact.Manifest
}

func newNATRig(t *testing.T) *natRig {
	t.Helper()
	cfg, diags := policy.Load("nat.hcl", []byte(natPolicy), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	r := &natRig{t: t}
	load := func(name string, share map[string]*ebpf.Map) (*artifact.Artifact, *ebpf.Collection) {
		p := cfg.Policy(name)
		a, err := compiler.Compile(cfg, p, compiler.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var elf bytes.Buffer
		if err := a.WriteELF(&elf); err != nil {
			t.Fatal(err)
		}
		spec, _, err := artifact.Read(elf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: share})
		if err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
		t.Cleanup(coll.Close)
		return a, coll
	}
	r.out, r.outColl = load("outside", nil)
	m := r.out.Manifest
	shared := map[string]*ebpf.Map{}
	for _, name := range []string{m.Conntrack.Assured, m.Conntrack.Unassured, m.NAT.Alias, m.NAT.Fragments, m.NAT.Settings, m.NAT.Reserved} {
		shared[name] = r.outColl.Maps[name]
	}
	r.in, r.inColl = load("inside", shared)
	r.manifest = m
	if err := r.outColl.Maps[m.NAT.Settings].Put(uint32(0), uint32(natSeed)); err != nil {
		t.Fatal(err)
	}
	return r
}

// XDP return codes.
const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

// run runs frame through the XDP program of the outside (outside) or
// inside interface and returns its verdict and the frame it leaves.
func (r *natRig) run(outside bool, frame []byte) (uint32, []byte) {
	r.t.Helper()
	return r.runOn(outside, frame, 0)
}

// xdpMD is struct xdp_md, a test run's context.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// runOn is run with the frame arriving on interface ifindex of the
// current network namespace (0: none).
func (r *natRig) runOn(outside bool, frame []byte, ifindex int) (uint32, []byte) {
	r.t.Helper()
	a, coll := r.in, r.inColl
	if outside {
		a, coll = r.out, r.outColl
	}
	out := make([]byte, len(frame)+256)
	opts := &ebpf.RunOptions{Data: frame, DataOut: out}
	if ifindex != 0 {
		opts.Context = xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)}
	}
	ret, err := coll.Programs[a.Program].Run(opts)
	if err != nil {
		r.t.Fatal(err)
	}
	return ret, opts.DataOut
}

// counter sums slot's packets of the program of the outside or inside.
func (r *natRig) counter(outside bool, slot int) uint64 {
	r.t.Helper()
	a, coll := r.in, r.inColl
	if outside {
		a, coll = r.out, r.outColl
	}
	var per []artifact.Counter
	if err := coll.Maps[a.Manifest.Counters.Map].Lookup(uint32(slot), &per); err != nil {
		r.t.Fatal(err)
	}
	var n uint64
	for _, c := range per {
		n += c.Packets
	}
	return n
}

// flow is a packet of a test: protocol "tcp", "udp", "icmp" (an echo;
// the ports are its identifier) or "gre".
type flow struct {
	proto    string
	src, dst netip.AddrPort
	// reply builds an echo reply, a SYN-ACK; ack a TCP ACK.
	reply, ack bool
	// noUDPChecksum sends a UDP datagram with checksum 0.
	noUDPChecksum bool
	ttl           uint8
	// vlan tags the frame; options gives the IPv4 header 4 bytes of
	// options.
	vlan    uint16
	options bool
}

var natPayload = []byte("translated payload, 33 bytes long")

func (f flow) frame(t *testing.T) []byte {
	t.Helper()
	ttl := f.ttl
	if ttl == 0 {
		ttl = 64
	}
	ip := &layers.IPv4{Version: 4, TTL: ttl, SrcIP: f.src.Addr().AsSlice(), DstIP: f.dst.Addr().AsSlice(), Id: 99}
	if f.options {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	}
	eth := &layers.Ethernet{SrcMAC: peerMAC, DstMAC: hostMAC, EthernetType: layers.EthernetTypeIPv4}
	ls := []gopacket.SerializableLayer{eth}
	if f.vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: f.vlan, Type: layers.EthernetTypeIPv4})
	}
	ls = append(ls, ip)
	switch f.proto {
	case "tcp":
		ip.Protocol = layers.IPProtocolTCP
		tcp := &layers.TCP{SrcPort: layers.TCPPort(f.src.Port()), DstPort: layers.TCPPort(f.dst.Port()), SYN: !f.ack, ACK: f.reply || f.ack, Seq: 1000, Window: 512}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, tcp)
	case "udp":
		ip.Protocol = layers.IPProtocolUDP
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.src.Port()), DstPort: layers.UDPPort(f.dst.Port())}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, udp)
	case "icmp":
		ip.Protocol = layers.IPProtocolICMPv4
		typ := uint8(layers.ICMPv4TypeEchoRequest)
		if f.reply {
			typ = layers.ICMPv4TypeEchoReply
		}
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: f.src.Port(), Seq: 3})
	case "gre":
		ip.Protocol = layers.IPProtocolGRE
	}
	ls = append(ls, gopacket.Payload(natPayload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, ser, ls...); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if f.noUDPChecksum {
		l4 := 14 + int(b[14]&0xf)*4
		b[l4+6], b[l4+7] = 0, 0
	}
	return b
}

// seen is what a frame the program left carries, read from its bytes.
type seen struct {
	src, dst netip.AddrPort
	ttl      uint8
	l4sum    uint16
	srcMAC   []byte
	dstMAC   []byte
}

// sum16 is internal/checksum's from-scratch sum (RFC 1071).
var sum16 = checksum.Sum

// inspect reads frame and verifies, from scratch, every checksum it
// carries: the IPv4 header's, and TCP's, UDP's (unless 0) or ICMP's over
// the whole segment.
func inspect(t *testing.T, frame []byte) seen {
	t.Helper()
	if len(frame) > 18 && binary.BigEndian.Uint16(frame[12:]) == 0x8100 {
		frame = append(append([]byte(nil), frame[:12]...), frame[16:]...)
	}
	if len(frame) < 34 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		t.Fatalf("not an IPv4 frame: % x", frame)
	}
	ip := frame[14:]
	hl := int(ip[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if s := sum16(ip[:hl], 0); s != 0xffff {
		t.Errorf("IPv4 header checksum does not verify (sum %#x): % x", s, ip[:hl])
	}
	l4 := ip[hl:total]
	s := seen{ttl: ip[8], srcMAC: frame[6:12], dstMAC: frame[0:6]}
	src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	pseudo := func() uint32 {
		var ph []byte
		ph = append(ph, ip[12:20]...)
		ph = append(ph, 0, ip[9])
		ph = binary.BigEndian.AppendUint16(ph, uint16(len(l4)))
		return sum16(ph, 0)
	}
	switch ip[9] {
	case 6, 17:
		sp, dp := binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
		s.src, s.dst = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
		off := 16
		if ip[9] == 17 {
			off = 6
		}
		s.l4sum = binary.BigEndian.Uint16(l4[off:])
		if ip[9] == 17 && s.l4sum == 0 {
			break
		}
		if v := sum16(l4, pseudo()); v != 0xffff {
			t.Errorf("proto %d checksum %#04x does not verify (sum %#x)", ip[9], s.l4sum, v)
		}
	case 1:
		id := binary.BigEndian.Uint16(l4[4:])
		s.src, s.dst = netip.AddrPortFrom(src, id), netip.AddrPortFrom(dst, id)
		if v := sum16(l4, 0); v != 0xffff {
			t.Errorf("ICMP checksum does not verify (sum %#x)", v)
		}
	default:
		s.src, s.dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
	}
	if !bytes.HasSuffix(l4, natPayload) {
		t.Errorf("payload changed: % x", l4)
	}
	return s
}

// expect runs f through the outside or inside program and checks that it
// passes with source src and destination dst.
func (r *natRig) expect(outside bool, f flow, src, dst string) seen {
	r.t.Helper()
	ret, out := r.run(outside, f.frame(r.t))
	if ret != xdpPass {
		r.t.Fatalf("%v: verdict %d, want pass", f, ret)
	}
	s := inspect(r.t, out)
	if s.src != ap(src) || s.dst != ap(dst) {
		r.t.Errorf("%s %v -> %v left as %v -> %v, want %s -> %s", f.proto, f.src, f.dst, s.src, s.dst, src, dst)
	}
	return s
}

// masqPort is the port nat.Allocate gives a flow, with taken ports.
func masqPort(t *testing.T, proto uint8, src, dst netip.AddrPort, taken ...uint16) uint16 {
	t.Helper()
	h := nat.Hash(natSeed, src.Addr(), dst.Addr(), src.Port(), dst.Port(), proto)
	p, ok := nat.Allocate(masqPorts, src.Port(), h, func(p uint16) bool {
		for _, q := range taken {
			if p == q {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no port for %v -> %v", src, dst)
	}
	return p
}

func addrPort(a netip.Addr, p uint16) string { return netip.AddrPortFrom(a, p).String() }

// slotEstablished is the slot of both policies' rule "established".
const slotEstablished = 0

func TestNATMasqueradeUDP(t *testing.T) {
	r := newNATRig(t)
	c, d := ap("10.0.0.5:40000"), ap("8.8.8.8:53")
	p := masqPort(t, 17, c, d)
	r.expect(false, flow{proto: "udp", src: c, dst: d}, addrPort(masqTo, p), d.String())
	if n := r.counter(false, slotEstablished); n != 0 {
		t.Errorf("the first datagram counted established %d times", n)
	}
	r.expect(false, flow{proto: "udp", src: c, dst: d}, addrPort(masqTo, p), d.String()) // established keeps it
	if n := r.counter(false, slotEstablished); n != 1 {
		t.Errorf("the second datagram: established %d times, want 1", n)
	}
	// the reply, by its translated tuple, is established where it arrives
	r.expect(true, flow{proto: "udp", src: d, dst: netip.AddrPortFrom(masqTo, p)}, d.String(), c.String())
	if n := r.counter(true, slotEstablished); n != 1 {
		t.Errorf("the reply: established %d times, want 1", n)
	}
	if e := checkEntry(t, r, c, d, 17, conntrack.NATSource, masqTo, p); e.State != conntrack.UDPReplied {
		t.Errorf("after the reply the entry is %v, want %v", e.State, conntrack.UDPReplied)
	}
	checkAlias(t, r, netip.AddrPortFrom(masqTo, p), d, 17, c)
}

// checkAlias checks that the NAT map holds a live alias of the translated
// tuple from -> to leading back to orig, expiring with the flow's entry.
func checkAlias(t *testing.T, r *natRig, from, to netip.AddrPort, proto uint8, orig netip.AddrPort) {
	t.Helper()
	k, _ := conntrack.NewKey(4, proto, conntrack.Endpoint{Addr: from.Addr(), Port: from.Port()}, conntrack.Endpoint{Addr: to.Addr(), Port: to.Port()})
	var v []byte
	if err := r.outColl.Maps[r.manifest.NAT.Alias].Lookup(k.Encode(), &v); err != nil {
		t.Fatalf("no alias for %v -> %v: %v", from, to, err)
	}
	a, err := nat.DecodeAlias(v)
	if err != nil {
		t.Fatal(err)
	}
	if a.OrigAddr != orig.Addr() || a.OrigPort != orig.Port() || a.Kind != conntrack.NATSource {
		t.Errorf("alias of %v -> %v: %+v, want %v", from, to, a, orig)
	}
	if a.Lo != (k.Lo == (conntrack.Endpoint{Addr: from.Addr(), Port: from.Port()})) {
		t.Errorf("alias of %v -> %v: side Lo %v, key %v", from, to, a.Lo, k)
	}
	entryExpiry := func() uint64 {
		for _, m := range []string{r.manifest.Conntrack.Assured, r.manifest.Conntrack.Unassured} {
			it := r.outColl.Maps[m].Iterate()
			var kb, vb []byte
			for it.Next(&kb, &vb) {
				e, _ := conntrack.DecodeEntry(vb)
				if e.NAT != conntrack.NATNone {
					return e.Expires
				}
			}
		}
		return 0
	}()
	if a.Expires != entryExpiry {
		t.Errorf("alias expires at %d, its entry at %d", a.Expires, entryExpiry)
	}
}

func TestNATMasqueradeTCP(t *testing.T) {
	r := newNATRig(t)
	c, d := ap("10.0.0.9:20002"), ap("192.0.2.80:443") // the source port fits the range: kept
	r.expect(false, flow{proto: "tcp", src: c, dst: d}, addrPort(masqTo, 20002), d.String())
	r.expect(true, flow{proto: "tcp", src: d, dst: netip.AddrPortFrom(masqTo, 20002), reply: true}, d.String(), c.String())
	ack := flow{proto: "tcp", src: c, dst: d, ack: true}
	r.expect(false, ack, addrPort(masqTo, 20002), d.String())
	// established, the entry moved to the assured map: the alias still
	// leads replies back
	if e := checkEntry(t, r, c, d, 6, conntrack.NATSource, masqTo, 20002); e.State != conntrack.TCPEstablished {
		t.Errorf("after the handshake the entry is %v, want %v", e.State, conntrack.TCPEstablished)
	}
	r.expect(true, flow{proto: "tcp", src: d, dst: netip.AddrPortFrom(masqTo, 20002), ack: true}, d.String(), c.String())
	checkAlias(t, r, netip.AddrPortFrom(masqTo, 20002), d, 6, c)
}

func TestNATMasqueradeEcho(t *testing.T) {
	r := newNATRig(t)
	c, d := ap("10.0.0.5:4660"), ap("1.1.1.1:4660") // identifier 0x1234
	p := masqPort(t, 1, c, d)
	r.expect(false, flow{proto: "icmp", src: c, dst: d}, addrPort(masqTo, p), addrPort(d.Addr(), p))
	r.expect(true, flow{proto: "icmp", src: netip.AddrPortFrom(d.Addr(), p), dst: netip.AddrPortFrom(masqTo, p), reply: true}, d.String(), c.String())
}

func TestNATOtherProtocolAddressOnly(t *testing.T) {
	r := newNATRig(t)
	r.expect(false, flow{proto: "gre", src: ap("10.0.0.5:0"), dst: ap("192.0.2.1:0")}, addrPort(masqTo, 0), "192.0.2.1:0")
	r.expect(true, flow{proto: "gre", src: ap("192.0.2.1:0"), dst: netip.AddrPortFrom(masqTo, 0)}, "192.0.2.1:0", "10.0.0.5:0")
}

func TestNATUDPChecksumZeroStaysZero(t *testing.T) {
	r := newNATRig(t)
	c, d := ap("10.0.0.5:20001"), ap("8.8.8.8:53")
	s := r.expect(false, flow{proto: "udp", src: c, dst: d, noUDPChecksum: true}, addrPort(masqTo, 20001), d.String())
	if s.l4sum != 0 {
		t.Errorf("UDP checksum %#x, want 0 (none)", s.l4sum)
	}
}

func TestNATForward(t *testing.T) {
	r := newNATRig(t)
	client := ap("198.51.100.9:5555")
	r.expect(true, flow{proto: "tcp", src: client, dst: ap("203.0.113.1:8080")}, client.String(), "10.0.0.5:80")
	r.expect(false, flow{proto: "tcp", src: ap("10.0.0.5:80"), dst: client, reply: true}, "203.0.113.1:8080", client.String())
	// a port range keeps the packet's port
	r.expect(true, flow{proto: "udp", src: client, dst: ap("203.0.113.1:5007")}, client.String(), "10.0.0.6:5007")
	r.expect(false, flow{proto: "udp", src: ap("10.0.0.6:5007"), dst: client}, "203.0.113.1:5007", client.String())
	// not a forward's port: untouched
	r.expect(true, flow{proto: "tcp", src: client, dst: ap("203.0.113.1:8081")}, client.String(), "203.0.113.1:8081")
}

func TestNATStatic(t *testing.T) {
	r := newNATRig(t)
	// static wins over the masquerade whose src holds it
	r.expect(false, flow{proto: "udp", src: ap("10.0.0.7:1234"), dst: ap("8.8.4.4:80")}, "203.0.113.7:1234", "8.8.4.4:80")
	r.expect(true, flow{proto: "udp", src: ap("8.8.4.4:80"), dst: ap("203.0.113.7:1234")}, "8.8.4.4:80", "10.0.0.7:1234")
	// inbound
	r.expect(true, flow{proto: "tcp", src: ap("198.51.100.9:999"), dst: ap("203.0.113.7:22")}, "198.51.100.9:999", "10.0.0.7:22")
	r.expect(false, flow{proto: "tcp", src: ap("10.0.0.7:22"), dst: ap("198.51.100.9:999"), reply: true}, "203.0.113.7:22", "198.51.100.9:999")
}

func TestNATExhaustion(t *testing.T) {
	r := newNATRig(t)
	d := ap("8.8.8.8:53")
	var taken []uint16
	for i := range 4 {
		c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(20 + i)}), 20000)
		p := masqPort(t, 17, c, d, taken...)
		r.expect(false, flow{proto: "udp", src: c, dst: d}, addrPort(masqTo, p), d.String())
		taken = append(taken, p)
	}
	slot := r.in.Manifest.Counters.Slots[len(r.in.Manifest.Counters.Slots)-2]
	if slot.Kind != artifact.SlotNATExhausted {
		t.Fatalf("slot %v is not nat-exhausted", slot)
	}
	before := r.counter(false, slot.Slot)
	ret, _ := r.run(false, flow{proto: "udp", src: ap("10.0.0.30:20000"), dst: d}.frame(t))
	if ret != xdpDrop {
		t.Errorf("a fifth flow to %v: verdict %d, want drop", d, ret)
	}
	if got := r.counter(false, slot.Slot); got != before+1 {
		t.Errorf("nat-exhausted counted %d, want %d", got, before+1)
	}
	// another destination has all four ports free
	r.expect(false, flow{proto: "udp", src: ap("10.0.0.30:20000"), dst: ap("8.8.8.9:53")}, addrPort(masqTo, 20000), "8.8.8.9:53")
}

func TestNATReservedPorts(t *testing.T) {
	r := newNATRig(t)
	for _, p := range []uint16{20000, 20001} {
		if err := r.outColl.Maps[r.manifest.NAT.Reserved].Put(nat.ReservedKey(17, p), uint8(1)); err != nil {
			t.Fatal(err)
		}
	}
	c, d := ap("10.0.0.5:20000"), ap("8.8.8.8:53")
	r.expect(false, flow{proto: "udp", src: c, dst: d}, addrPort(masqTo, 20002), d.String())
}

func TestNATForwardCollision(t *testing.T) {
	r := newNATRig(t)
	client := ap("198.51.100.9:5555")
	r.expect(true, flow{proto: "tcp", src: client, dst: ap("203.0.113.1:8080")}, client.String(), "10.0.0.5:80")
	// The same client port through another forward to the same inside
	// endpoint would reuse the translated tuple: dropped, nat-exhausted.
	slot := r.out.Manifest.Counters.Slots[len(r.out.Manifest.Counters.Slots)-2]
	if slot.Kind != artifact.SlotNATExhausted {
		t.Fatalf("slot %v is not nat-exhausted", slot)
	}
	before := r.counter(true, slot.Slot)
	ret, _ := r.run(true, flow{proto: "tcp", src: client, dst: ap("203.0.113.1:8443")}.frame(t))
	if ret != xdpDrop {
		t.Errorf("a second forward onto a live translated tuple: verdict %d, want drop", ret)
	}
	if got := r.counter(true, slot.Slot); got != before+1 {
		t.Errorf("nat-exhausted counted %d, want %d", got, before+1)
	}
	// another client port is free
	r.expect(true, flow{proto: "tcp", src: ap("198.51.100.9:5556"), dst: ap("203.0.113.1:8443")}, "198.51.100.9:5556", "10.0.0.5:80")
}

// checkEntry checks that the table holds the flow c -> d with the
// translation kind to addr:port.
func checkEntry(t *testing.T, r *natRig, c, d netip.AddrPort, proto uint8, kind conntrack.NATKind, addr netip.Addr, port uint16) conntrack.Entry {
	t.Helper()
	k, _ := conntrack.NewKey(4, proto, conntrack.Endpoint{Addr: c.Addr(), Port: c.Port()}, conntrack.Endpoint{Addr: d.Addr(), Port: d.Port()})
	var v []byte
	found := false
	for _, m := range []string{r.manifest.Conntrack.Assured, r.manifest.Conntrack.Unassured} {
		if err := r.outColl.Maps[m].Lookup(k.Encode(), &v); err == nil {
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("no entry for %v -> %v", c, d)
	}
	e, err := conntrack.DecodeEntry(v)
	if err != nil {
		t.Fatal(err)
	}
	if e.NAT != kind || e.NATAddr != addr.As4() || e.NATPort != port {
		t.Errorf("entry of %v -> %v: %v %v:%d, want %v %v:%d", c, d, e.NAT, netip.AddrFrom4(e.NATAddr), e.NATPort, kind, addr, port)
	}
	return e
}

func (f flow) String() string { return fmt.Sprintf("%s %v -> %v", f.proto, f.src, f.dst) }

// tableSize counts the entries of the connection table and the NAT map.
func (r *natRig) tableSize() (entries, aliases int) {
	r.t.Helper()
	for _, m := range []string{r.manifest.Conntrack.Assured, r.manifest.Conntrack.Unassured} {
		entries += countEntries(r.t, r.outColl.Maps[m])
	}
	return entries, countEntries(r.t, r.outColl.Maps[r.manifest.NAT.Alias])
}

// runEgress runs frame through the TC egress program of the outside or
// inside interface.
func (r *natRig) runEgress(outside bool, frame []byte) {
	r.t.Helper()
	a, coll := r.in, r.inColl
	if outside {
		a, coll = r.out, r.outColl
	}
	if _, err := coll.Programs[a.Egress.Name].Run(&ebpf.RunOptions{Data: frame}); err != nil {
		r.t.Fatal(err)
	}
}

// TestNATEgressLeavesTranslatedFlows sends what the stack forwards after
// XDP translated it out of the other interface's egress program: its
// tuple is the translated one, and no entry may come of it. The host's
// own flows are still recorded.
func TestNATEgressLeavesTranslatedFlows(t *testing.T) {
	r := newNATRig(t)
	c, d := ap("10.0.0.5:40000"), ap("8.8.8.8:53")
	_, fwd := r.run(false, flow{proto: "udp", src: c, dst: d}.frame(t))
	entries, aliases := r.tableSize()
	if entries != 1 || aliases != 1 {
		t.Fatalf("after a masqueraded datagram: %d entries, %d aliases, want 1 and 1", entries, aliases)
	}
	r.runEgress(true, fwd)
	p := masqPort(t, 17, c, d)
	_, back := r.run(true, flow{proto: "udp", src: d, dst: netip.AddrPortFrom(masqTo, p)}.frame(t))
	r.runEgress(false, back)
	// a forwarded flow's packets, both ways
	client := ap("198.51.100.9:5555")
	_, in := r.run(true, flow{proto: "tcp", src: client, dst: ap("203.0.113.1:8080")}.frame(t))
	r.runEgress(false, in)
	_, out := r.run(false, flow{proto: "tcp", src: ap("10.0.0.5:80"), dst: client, reply: true}.frame(t))
	r.runEgress(true, out)
	if e, a := r.tableSize(); e != 2 || a != 2 {
		t.Errorf("after the stack forwarded translated packets: %d entries, %d aliases, want 2 and 2", e, a)
	}
	r.runEgress(true, flow{proto: "udp", src: ap("203.0.113.1:33333"), dst: ap("9.9.9.9:53")}.frame(t))
	if e, _ := r.tableSize(); e != 3 {
		t.Errorf("the host's own datagram: %d entries, want 3", e)
	}
}

// TestNATEgressLeavesForwardedPackets sends what the stack forwards
// untranslated (a mid-stream ACK the inside's program passed as invalid)
// out of the outside's egress program, as arrived on an interface: the
// host did not send it, so no entry may come of it. The same ACK as the
// host's own (no ingress interface) picks its connection up.
func TestNATEgressLeavesForwardedPackets(t *testing.T) {
	r := newNATRig(t)
	ack := flow{proto: "tcp", src: ap("10.0.0.7:2222"), dst: ap("192.0.2.12:80"), ack: true}.frame(t)
	egress := r.outColl.Programs[r.out.Egress.Name]
	ctx := make([]byte, 192) // struct __sk_buff, up to its last field a test run takes
	binary.LittleEndian.PutUint32(ctx[36:], 2)
	if _, err := egress.Run(&ebpf.RunOptions{Data: ack, Context: ctx}); err != nil {
		t.Fatal(err)
	}
	if e, _ := r.tableSize(); e != 0 {
		t.Errorf("a forwarded ACK: %d entries, want 0", e)
	}
	r.runEgress(true, ack)
	if e, _ := r.tableSize(); e != 1 {
		t.Errorf("the host's own ACK: %d entries, want 1", e)
	}
}

// TestNATForwardsByTheFIB runs translated packets in a namespace with a
// route and a neighbour: XDP forwards them itself (new MACs, TTL one
// lower, XDP_REDIRECT); with a partial checksum, without a neighbour, or
// with TTL 1, the stack gets them.
func TestNATForwardsByTheFIB(t *testing.T) {
	ns := nstest.New(t)
	inIdx, _ := ns.Veth(t, "in0", "in0p")
	outIdx, _ := ns.Veth(t, "out0", "out0p")
	h := ns.Handle
	gw := netip.MustParseAddr("203.0.113.254")
	gwMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	ns.AddAddr(t, inIdx, "10.0.0.1/24")
	ns.AddAddr(t, outIdx, "203.0.113.1/24")
	ns.Gateway(t, outIdx, gw, gwMAC)
	outLink, err := h.LinkByIndex(outIdx)
	if err != nil {
		t.Fatal(err)
	}
	r := newNATRig(t)
	c, d := ap("10.0.0.5:40000"), ap("8.8.8.8:53")
	p := masqPort(t, 17, c, d)
	ns.Do(t, func() {
		ret, out := r.runOn(false, flow{proto: "udp", src: c, dst: d}.frame(t), inIdx)
		if ret != xdpRedirect {
			t.Fatalf("a masqueraded datagram with a route and a neighbour: verdict %d, want redirect", ret)
		}
		s := inspect(t, out)
		if s.src != netip.AddrPortFrom(masqTo, p) || s.dst != d {
			t.Errorf("forwarded as %v -> %v", s.src, s.dst)
		}
		if s.ttl != 63 {
			t.Errorf("TTL %d, want 63", s.ttl)
		}
		if !bytes.Equal(s.dstMAC, gwMAC) || !bytes.Equal(s.srcMAC, outLink.Attrs().HardwareAddr) {
			t.Errorf("MACs %v -> %v, want %v -> %v", net.HardwareAddr(s.srcMAC), net.HardwareAddr(s.dstMAC), outLink.Attrs().HardwareAddr, gwMAC)
		}
		// a partial checksum: the stack's device completes it, a redirect
		// would send it out unfinished
		ret, out = r.runOn(false, partial(flow{proto: "udp", src: c, dst: d}.frame(t)), inIdx)
		if ret != xdpPass {
			t.Errorf("a partial checksum with a route and a neighbour: verdict %d, want pass", ret)
		}
		// (the checksum is the pseudo-header's: inspect would refuse it)
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(out[26:30])), binary.BigEndian.Uint16(out[34:]))
		if ttl := out[14+8]; ttl != 64 || src != netip.AddrPortFrom(masqTo, p) {
			t.Errorf("partial checksum: left as %v TTL %d, want translated and not forwarded", src, ttl)
		}
		// TTL 1: the stack answers it
		ret, out = r.runOn(false, flow{proto: "udp", src: c, dst: d, ttl: 1}.frame(t), inIdx)
		if ret != xdpPass {
			t.Errorf("TTL 1: verdict %d, want pass", ret)
		}
		if s := inspect(t, out); s.ttl != 1 || s.src != netip.AddrPortFrom(masqTo, p) {
			t.Errorf("TTL 1: left as %v TTL %d", s.src, s.ttl)
		}
		// an on-link destination without a neighbour: the stack resolves it
		ret, _ = r.runOn(false, flow{proto: "udp", src: c, dst: ap("203.0.113.50:53")}.frame(t), inIdx)
		if ret != xdpPass {
			t.Errorf("no neighbour: verdict %d, want pass", ret)
		}
		// the reply to the router's own address goes to 10.0.0.5, no neighbour there
		ret, _ = r.runOn(true, flow{proto: "udp", src: d, dst: netip.AddrPortFrom(masqTo, p)}.frame(t), outIdx)
		if ret != xdpPass {
			t.Errorf("reply without a neighbour: verdict %d, want pass", ret)
		}
	})
}

// fragments returns the two fragments of a UDP datagram from src to dst
// with IP id id: the first carries the UDP header and 24 bytes, the later
// one the other 40.
func fragments(t *testing.T, src, dst netip.AddrPort, id uint16) (first, later []byte) {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, ser, udp, gopacket.Payload(bytes.Repeat([]byte{0xa5, 0x3c}, 28))); err != nil {
		t.Fatal(err)
	}
	dgram := buf.Bytes() // 8 + 56 bytes
	frag := func(off int, body []byte, more bool) []byte {
		h := *ip
		h.Id, h.FragOffset = id, uint16(off/8)
		if more {
			h.Flags = layers.IPv4MoreFragments
		}
		b := gopacket.NewSerializeBuffer()
		eth := &layers.Ethernet{SrcMAC: peerMAC, DstMAC: hostMAC, EthernetType: layers.EthernetTypeIPv4}
		if err := gopacket.SerializeLayers(b, ser, eth, &h, gopacket.Payload(body)); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	return frag(0, dgram[:32], true), frag(32, dgram[32:], false)
}

// ipOf returns the addresses of an IPv4 frame and its IP payload,
// verifying the header checksum.
func ipOf(t *testing.T, frame []byte) (src, dst netip.Addr, payload []byte) {
	t.Helper()
	ip := frame[14:]
	hl := int(ip[0]&0xf) * 4
	if s := sum16(ip[:hl], 0); s != 0xffff {
		t.Errorf("IPv4 header checksum does not verify (sum %#x)", s)
	}
	return netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20])), ip[hl:binary.BigEndian.Uint16(ip[2:])]
}

func TestNATFragments(t *testing.T) {
	r := newNATRig(t)
	c, d := ap("10.0.0.5:40000"), ap("8.8.8.8:53")
	p := masqPort(t, 17, c, d)
	first, later := fragments(t, c, d, 0x4242)
	ret, out1 := r.run(false, first)
	if ret != xdpPass {
		t.Fatalf("first fragment: verdict %d", ret)
	}
	s1, d1, l4 := ipOf(t, out1)
	if s1 != masqTo || d1 != d.Addr() || binary.BigEndian.Uint16(l4) != p {
		t.Errorf("first fragment left as %v:%d -> %v", s1, binary.BigEndian.Uint16(l4), d1)
	}
	ret, out2 := r.run(false, later)
	if ret != xdpPass {
		t.Fatalf("later fragment: verdict %d", ret)
	}
	s2, d2, rest := ipOf(t, out2)
	if s2 != masqTo || d2 != d.Addr() {
		t.Errorf("later fragment left as %v -> %v, want from %v", s2, d2, masqTo)
	}
	// the datagram they make checks with its translated pseudo-header
	dgram := append(append([]byte(nil), l4...), rest...)
	ph := append(append(masqTo.AsSlice(), d.Addr().AsSlice()...), 0, 17, 0, byte(len(dgram)))
	if v := sum16(dgram, sum16(ph, 0)); v != 0xffff {
		t.Errorf("the reassembled datagram's UDP checksum does not verify (sum %#x)", v)
	}

	slot := r.in.Manifest.Counters.Slots[len(r.in.Manifest.Counters.Slots)-1]
	if slot.Kind != artifact.SlotNATFragment {
		t.Fatalf("slot %v is not nat-fragment", slot)
	}
	_, orphan := fragments(t, c, d, 0x4343)
	if ret, _ := r.run(false, orphan); ret != xdpDrop {
		t.Errorf("a later fragment of a masqueraded source without its first: verdict %d, want drop", ret)
	}
	if n := r.counter(false, slot.Slot); n != 1 {
		t.Errorf("nat-fragment counted %d, want 1", n)
	}
	// a source no NAT block translates: its fragments pass as they are
	_, other := fragments(t, ap("192.168.50.1:1000"), d, 0x4444)
	ret, out := r.run(false, other)
	if s, _, _ := ipOf(t, out); ret != xdpPass || s != netip.MustParseAddr("192.168.50.1") {
		t.Errorf("a later fragment of an untranslated source: verdict %d, source %v", ret, s)
	}
	// on the outside, the router's own datagram to its masquerade address
	// is not translated: its first fragment says so to the later ones
	own := ap("203.0.113.1:9999")
	first, later = fragments(t, ap("192.0.2.7:53"), own, 0x4545)
	if ret, _ := r.run(true, first); ret != xdpPass {
		t.Errorf("an untranslated first fragment: verdict %d", ret)
	}
	ret, out = r.run(true, later)
	if _, dst, _ := ipOf(t, out); ret != xdpPass || dst != own.Addr() {
		t.Errorf("its later fragment: verdict %d, to %v", ret, dst)
	}
	_, orphan = fragments(t, ap("192.0.2.7:53"), own, 0x4646)
	if ret, _ := r.run(true, orphan); ret != xdpDrop {
		t.Errorf("a later fragment to the masquerade address without its first: verdict %d, want drop", ret)
	}
}

// icmpError is an ICMP destination unreachable (port unreachable) from
// src to dst carrying the IP header and 8 bytes of layer 4 of frame.
func icmpError(t *testing.T, src, dst netip.Addr, frame []byte) []byte {
	t.Helper()
	ip := frame[14:]
	carried := append([]byte(nil), ip[:int(ip[0]&0xf)*4+8]...)
	ls := []gopacket.SerializableLayer{
		&layers.Ethernet{SrcMAC: peerMAC, DstMAC: hostMAC, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort)},
		gopacket.Payload(carried),
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, ser, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// errorOf reads an ICMP error frame, verifying its IPv4 and ICMP
// checksums from scratch, and returns its addresses and what it carries.
func errorOf(t *testing.T, frame []byte) (src, dst netip.Addr, carried []byte) {
	t.Helper()
	src, dst, icmp := ipOf(t, frame)
	if v := sum16(icmp, 0); v != 0xffff {
		t.Errorf("ICMP checksum does not verify (sum %#x)", v)
	}
	return src, dst, icmp[8:]
}

// checkError runs an ICMP error through the outside or inside program and
// checks its outer addresses and that it carries want, byte for byte: the
// packet as the flow's end sent it before translation.
func (r *natRig) checkError(outside bool, frame []byte, src, dst string, want []byte) {
	r.t.Helper()
	ret, out := r.run(outside, frame)
	if ret != xdpPass {
		r.t.Fatalf("ICMP error: verdict %d", ret)
	}
	s, d, carried := errorOf(r.t, out)
	if s != netip.MustParseAddr(src) || d != netip.MustParseAddr(dst) {
		r.t.Errorf("ICMP error left as %v -> %v, want %s -> %s", s, d, src, dst)
	}
	ip := want[14:]
	want = ip[:int(ip[0]&0xf)*4+8]
	if !bytes.Equal(carried, want) {
		r.t.Errorf("the error carries\n% x\nwant\n% x", carried, want)
	}
}

func TestNATICMPErrors(t *testing.T) {
	r := newNATRig(t)
	router := netip.MustParseAddr("192.0.2.1")
	c, d := ap("10.0.0.5:40000"), ap("8.8.8.8:53")
	p := masqPort(t, 17, c, d)

	// an error about a masqueraded datagram goes to the inside host, and
	// carries the datagram as it sent it
	sent := flow{proto: "udp", src: c, dst: d}.frame(t)
	_, translated := r.run(false, sent)
	r.checkError(true, icmpError(t, router, masqTo, translated), router.String(), c.Addr().String(), sent)

	// the inside host's error about a reply leaves as from the
	// masquerade's address, about the reply as it was sent
	reply := flow{proto: "udp", src: d, dst: netip.AddrPortFrom(masqTo, p)}.frame(t)
	_, delivered := r.run(true, reply)
	r.checkError(false, icmpError(t, c.Addr(), d.Addr(), delivered), masqTo.String(), d.Addr().String(), reply)

	// the inside server's error about a forwarded segment leaves as from
	// the forward's public address
	client := ap("198.51.100.9:5555")
	syn := flow{proto: "tcp", src: client, dst: ap("203.0.113.1:8080")}.frame(t)
	_, forwarded := r.run(true, syn)
	r.checkError(false, icmpError(t, netip.MustParseAddr("10.0.0.5"), client.Addr(), forwarded), "203.0.113.1", client.Addr().String(), syn)

	// an error about an echo, by its identifier
	ec, ed := ap("10.0.0.8:4660"), ap("1.1.1.1:4660")
	ping := flow{proto: "icmp", src: ec, dst: ed}.frame(t)
	_, pinged := r.run(false, ping)
	r.checkError(true, icmpError(t, router, masqTo, pinged), router.String(), ec.Addr().String(), ping)
}

// pseudoSum is the folded sum of an IPv4 packet's pseudo-header, as a
// partial checksum holds it (not complemented).
func pseudoSum(ip []byte) uint16 {
	return uint16(checksum.Pseudo(ip, int(binary.BigEndian.Uint16(ip[2:]))-int(ip[0]&0xf)*4))
}

// partial sets frame's TCP or UDP checksum to its pseudo-header's sum, as
// a sender with checksum offload leaves it for the device.
func partial(frame []byte) []byte {
	ip := frame[14:]
	off := 14 + int(ip[0]&0xf)*4 + 16
	if ip[9] == 17 {
		off -= 10
	}
	binary.BigEndian.PutUint16(frame[off:], pseudoSum(ip))
	return frame
}

func TestNATPartialChecksums(t *testing.T) {
	r := newNATRig(t)
	for _, f := range []flow{
		{proto: "udp", src: ap("10.0.0.5:20003"), dst: ap("8.8.8.8:53")},
		{proto: "tcp", src: ap("10.0.0.6:20002"), dst: ap("192.0.2.80:443")},
	} {
		ret, out := r.run(false, partial(f.frame(t)))
		if ret != xdpPass {
			t.Fatalf("%v: verdict %d", f, ret)
		}
		ip := out[14:]
		hl := int(ip[0]&0xf) * 4
		if s := sum16(ip[:hl], 0); s != 0xffff {
			t.Errorf("%v: IPv4 checksum does not verify", f)
		}
		off := hl + 16
		if ip[9] == 17 {
			off = hl + 6
		}
		src := netip.AddrFrom4([4]byte(ip[12:16]))
		sp := binary.BigEndian.Uint16(ip[hl:])
		if src != masqTo || sp != f.src.Port() {
			t.Errorf("%v: left from %v:%d", f, src, sp)
		}
		if got, want := binary.BigEndian.Uint16(ip[off:]), pseudoSum(ip); got != want {
			t.Errorf("%v: partial checksum %#04x, want the translated pseudo-header's %#04x", f, got, want)
		}
	}
	// the inside server's partial reply of a forwarded connection
	client := ap("198.51.100.9:5555")
	r.expect(true, flow{proto: "tcp", src: client, dst: ap("203.0.113.1:8080")}, client.String(), "10.0.0.5:80")
	ret, out := r.run(false, partial(flow{proto: "tcp", src: ap("10.0.0.5:80"), dst: client, reply: true}.frame(t)))
	ip := out[14:]
	if ret != xdpPass || netip.AddrFrom4([4]byte(ip[12:16])) != masqTo || binary.BigEndian.Uint16(ip[20:]) != 8080 {
		t.Fatalf("partial reply: verdict %d, from %v:%d", ret, netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(ip[20:]))
	}
	if got, want := binary.BigEndian.Uint16(ip[20+16:]), pseudoSum(ip); got != want {
		t.Errorf("partial reply: checksum %#04x, want %#04x", got, want)
	}
}

// TestNATFullChecksumLikePartial sends a datagram whose full checksum
// happens to equal its pseudo-header's sum: it verifies, so it is full,
// and leaves full.
func TestNATFullChecksumLikePartial(t *testing.T) {
	r := newNATRig(t)
	f := flow{proto: "udp", src: ap("10.0.0.5:20003"), dst: ap("8.8.8.8:53")}
	frame := partial(f.frame(t))
	ip := frame[14:]
	l4 := ip[20:binary.BigEndian.Uint16(ip[2:])]
	// adjust the payload's first word until the whole verifies
	ph := append(append([]byte(nil), ip[12:20]...), 0, 17, 0, byte(len(l4)))
	total := sum16(l4, sum16(ph, 0))
	w := uint32(binary.BigEndian.Uint16(l4[8:])) + (0xffff - total)
	for w > 0xffff {
		w = w&0xffff + w>>16
	}
	binary.BigEndian.PutUint16(l4[8:], uint16(w))
	if v := sum16(l4, sum16(ph, 0)); v != 0xffff || binary.BigEndian.Uint16(l4[6:]) != pseudoSum(ip) {
		t.Fatalf("could not make the datagram (sum %#x)", v)
	}
	ret, out := r.run(false, frame)
	if ret != xdpPass {
		t.Fatalf("verdict %d", ret)
	}
	ip = out[14:]
	l4 = ip[20:binary.BigEndian.Uint16(ip[2:])]
	ph = append(append([]byte(nil), ip[12:20]...), 0, 17, 0, byte(len(l4)))
	if v := sum16(l4, sum16(ph, 0)); v != 0xffff {
		t.Errorf("the translated datagram's checksum does not verify (sum %#x): it was taken as partial", v)
	}
}

// TestNATOutsidePrecedence: on the outside, a reply of a masqueraded flow
// is translated back before any forward, even one whose ports hold the
// masquerade's; a new flow to those ports is forwarded.
func TestNATOutsidePrecedence(t *testing.T) {
	r := newNATRig(t)
	c, d := ap("10.0.0.5:40000"), ap("8.8.8.8:53")
	p := masqPort(t, 17, c, d)
	r.expect(false, flow{proto: "udp", src: c, dst: d}, addrPort(masqTo, p), d.String())
	r.expect(true, flow{proto: "udp", src: d, dst: netip.AddrPortFrom(masqTo, p)}, d.String(), c.String())
	stranger := ap("192.0.2.99:1000")
	r.expect(true, flow{proto: "udp", src: stranger, dst: netip.AddrPortFrom(masqTo, p)}, stranger.String(), addrPort(netip.MustParseAddr("10.0.0.99"), p))
}

// TestNATHeaderShapes translates packets whose headers lie elsewhere: a
// VLAN tag before the IPv4 header, IPv4 options after it, and an ICMP
// error about a datagram without a UDP checksum.
func TestNATHeaderShapes(t *testing.T) {
	r := newNATRig(t)
	d := ap("8.8.8.8:53")
	r.expect(false, flow{proto: "udp", src: ap("10.0.0.5:20001"), dst: d, vlan: 42}, addrPort(masqTo, 20001), d.String())
	r.expect(false, flow{proto: "tcp", src: ap("10.0.0.6:20002"), dst: d, options: true}, addrPort(masqTo, 20002), d.String())
	r.expect(true, flow{proto: "tcp", src: d, dst: netip.AddrPortFrom(masqTo, 20002), reply: true, options: true}, d.String(), "10.0.0.6:20002")

	sent := flow{proto: "udp", src: ap("10.0.0.7:5353"), dst: d, noUDPChecksum: true}.frame(t)
	_, translated := r.run(false, sent)
	if s := inspect(t, translated); s.l4sum != 0 {
		t.Fatalf("UDP checksum %#x, want none", s.l4sum)
	}
	r.checkError(true, icmpError(t, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("203.0.113.7"), translated), "192.0.2.1", "10.0.0.7", sent)
}

// TestNATErrorsInsideStayInside sends ICMP errors that never crossed the
// router: an inside router's error about the inside host's datagram
// before it was masqueraded (carrying the flow's own tuple), and one
// about the forwarded server's reply before it was translated (carrying
// the translated tuple). Both go to the inside host unchanged: rewriting
// them would send them to the router's public address.
func TestNATErrorsInsideStayInside(t *testing.T) {
	r := newNATRig(t)
	router := netip.MustParseAddr("10.0.0.254")
	c, d := ap("10.0.0.5:40000"), ap("8.8.8.8:53")
	sent := flow{proto: "udp", src: c, dst: d}.frame(t)
	r.run(false, sent)
	e := icmpError(t, router, c.Addr(), sent)
	if ret, out := r.run(false, e); ret != xdpPass || !bytes.Equal(out, e) {
		t.Errorf("inside error about the masqueraded flow: verdict %d, left as\n% x\nwant\n% x", ret, out, e)
	}

	client := ap("198.51.100.9:5555")
	r.run(true, flow{proto: "tcp", src: client, dst: ap("203.0.113.1:8080")}.frame(t))
	synAck := flow{proto: "tcp", src: ap("10.0.0.5:80"), dst: client, reply: true}.frame(t)
	e = icmpError(t, router, netip.MustParseAddr("10.0.0.5"), synAck)
	if ret, out := r.run(false, e); ret != xdpPass || !bytes.Equal(out, e) {
		t.Errorf("inside error about the forwarded reply: verdict %d, left as\n% x\nwant\n% x", ret, out, e)
	}
	// The reply itself is still translated.
	if _, out := r.run(false, synAck); bytes.Equal(out, synAck) {
		t.Error("the forwarded reply left untranslated")
	}
}

// TestNATStaticKeepsAnAllZeroEcho sends an echo whose ICMP checksum is
// 0xffff (identifier, sequence and payload all zero) through a static
// mapping: its identifier stays, so the checksum must stay too (an update
// for an unchanged identifier would write 0, which does not verify).
func TestNATStaticKeepsAnAllZeroEcho(t *testing.T) {
	r := newNATRig(t)
	echo := func(typ uint8, src, dst string) []byte { return zeroEcho(t, typ, src, dst, 0) }
	for _, c := range []struct {
		outside  bool
		in       []byte
		src, dst string
	}{
		{false, echo(layers.ICMPv4TypeEchoRequest, "10.0.0.7", "198.51.100.9"), "203.0.113.7", "198.51.100.9"},
		{true, echo(layers.ICMPv4TypeEchoReply, "198.51.100.9", "203.0.113.7"), "198.51.100.9", "10.0.0.7"},
	} {
		if cs := c.in[14+20+2:][:2]; c.outside && (cs[0] != 0xff || cs[1] != 0xff) {
			t.Fatalf("the echo's checksum is % x, want ff ff", cs)
		}
		ret, out := r.run(c.outside, c.in)
		if ret != xdpPass {
			t.Fatalf("verdict %d", ret)
		}
		s, d, icmp := ipOf(t, out)
		if s != netip.MustParseAddr(c.src) || d != netip.MustParseAddr(c.dst) {
			t.Errorf("left as %v -> %v, want %s -> %s", s, d, c.src, c.dst)
		}
		if v := sum16(icmp, 0); v != 0xffff {
			t.Errorf("ICMP checksum does not verify: % x", icmp[:4])
		}
	}
}

// zeroEcho is an echo of identifier id with sequence 0 and no payload.
func zeroEcho(t *testing.T, typ uint8, src, dst string, id uint16) []byte {
	t.Helper()
	ls := []gopacket.SerializableLayer{
		&layers.Ethernet{SrcMAC: peerMAC, DstMAC: hostMAC, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: netip.MustParseAddr(src).AsSlice(), DstIP: netip.MustParseAddr(dst).AsSlice()},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id},
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, ser, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestNATEchoToIdentifierZero masquerades an echo of identifier 0: its
// reply, translated back to identifier 0 with sequence 0 and no payload,
// is a message of all zeros, whose checksum must be 0xffff (the update's
// 0 does not verify).
func TestNATEchoToIdentifierZero(t *testing.T) {
	r := newNATRig(t)
	_, out := r.run(false, zeroEcho(t, layers.ICMPv4TypeEchoRequest, "10.0.0.9", "198.51.100.9", 0))
	_, _, icmp := ipOf(t, out)
	p := binary.BigEndian.Uint16(icmp[4:])
	ret, back := r.run(true, zeroEcho(t, layers.ICMPv4TypeEchoReply, "198.51.100.9", masqTo.String(), p))
	if ret != xdpPass {
		t.Fatalf("verdict %d", ret)
	}
	_, d, icmp := ipOf(t, back)
	if d != netip.MustParseAddr("10.0.0.9") || binary.BigEndian.Uint16(icmp[4:]) != 0 {
		t.Fatalf("the reply left for %v id %d", d, binary.BigEndian.Uint16(icmp[4:]))
	}
	if v := sum16(icmp, 0); v != 0xffff {
		t.Errorf("ICMP checksum does not verify: % x", icmp[:8])
	}
}
