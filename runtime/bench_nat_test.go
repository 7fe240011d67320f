package runtime_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	goruntime "runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/internal/nstest"
	"github.com/xdpc/xdpc/policy"
)

// The NAT benchmark's file: a router whose inside lets its hosts reach
// web and DNS servers and whose outside lets in the answers and SSH from a
// management network. natBenchNAT masquerades the inside; natBenchTracking
// is the same file without the nat block (tracking only); natBenchStateless
// writes "replies" as policies without tracking do (TCP with ACK set).
// Every benchmark packet is decided by the same rule in all three.
const (
	natBenchInterfaces = `
interface "out0" {
  policy = "outside"
}
interface "in0" {
  policy = "inside"
}
`
	natBenchPolicies = `
policy "outside" {
  default   = "drop"
  malformed = "drop"
  REPLIES
  rule "ssh" {
    proto    = "tcp"
    src      = "192.0.2.0/24"
    dst_port = 22
    action   = "pass"
  }
}

policy "inside" {
  default   = "drop"
  malformed = "drop"
  REPLIES
  rule "dns" {
    proto    = "udp"
    dst_port = 53
    action   = "pass"
  }
  rule "web" {
    proto    = "tcp"
    dst_port = [80, 443]
    action   = "pass"
  }
}
`
	natBenchTrackedReplies = `rule "replies" {
    ct_state = ["established", "related"]
    action   = "pass"
  }`
	natBenchStatelessReplies = `rule "replies" {
    proto     = "tcp"
    tcp_flags = "ack"
    action    = "pass"
  }`
	natBenchBlock = `
nat "edge" {
  outside = "out0"
  inside  = "in0"

  masquerade {
    src = "10.0.0.0/24"
    to  = "203.0.113.1"
  }
}
`
)

// The benchmark's addresses: the inside hosts' network, the masquerade's
// address, the server they connect to (port 443) and the gateway towards
// it in the namespace that has a route.
var (
	natBenchTo     = netip.MustParseAddr("203.0.113.1")
	natBenchServer = netip.MustParseAddrPort("198.51.100.2:443")
	natBenchGW     = netip.MustParseAddr("203.0.113.254")
	natBenchGWMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
)

// natBenchClient is the inside endpoint of the benchmark's i-th flow; its
// port is in the masquerade's range, so the translation keeps it.
func natBenchClient(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + i%200)}), uint16(10000+i))
}

// natPair is a file's outside and inside programs, loaded for test runs;
// the inside one shares the outside one's connection table and NAT maps,
// as the programs of one namespace do.
type natPair struct {
	out, in  *ebpf.Program
	coll     *ebpf.Collection // the outside's, holding the shared maps
	manifest *artifact.Manifest
}

// loadNATPair compiles and loads the two policies of src.
func loadNATPair(b *testing.B, src string) *natPair {
	b.Helper()
	cfg, diags := policy.Load("bench.hcl", []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		b.Fatalf("load policy: %s", diags.Error())
	}
	p := &natPair{}
	var share map[string]*ebpf.Map
	for _, name := range []string{"outside", "inside"} {
		a, err := compiler.Compile(cfg, cfg.Policy(name), compiler.Options{})
		if err != nil {
			b.Fatalf("compile %s: %v", name, err)
		}
		spec, m, err := artifact.Read(elfBytes(b, a))
		if err != nil {
			b.Fatal(err)
		}
		coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: share})
		if err != nil {
			b.Fatalf("load %s: %v", name, err)
		}
		b.Cleanup(coll.Close)
		if p.coll == nil {
			p.coll, p.manifest, p.out = coll, m, coll.Programs[m.Program]
			share = map[string]*ebpf.Map{}
			for _, n := range p.shared() {
				share[n] = coll.Maps[n]
			}
			continue
		}
		p.in = coll.Programs[m.Program]
	}
	return p
}

// shared names the maps the two programs share.
func (p *natPair) shared() []string {
	var names []string
	if c := p.manifest.Conntrack; c != nil {
		names = append(names, c.Assured, c.Unassured)
	}
	if n := p.manifest.NAT; n != nil {
		names = append(names, n.Alias, n.Fragments, n.Settings, n.Reserved)
	}
	return names
}

// count returns how many entries map name holds.
func (p *natPair) count(b *testing.B, name string) int {
	b.Helper()
	n := 0
	var k, v []byte
	it := p.coll.Maps[name].Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

// flush empties the connection table and the NAT map.
func (p *natPair) flush(b *testing.B) {
	b.Helper()
	names := []string{p.manifest.Conntrack.Assured, p.manifest.Conntrack.Unassured}
	if p.manifest.NAT != nil {
		names = append(names, p.manifest.NAT.Alias)
	}
	for _, name := range names {
		var keys [][]byte
		var k, v []byte
		it := p.coll.Maps[name].Iterate()
		for it.Next(&k, &v) {
			keys = append(keys, k)
		}
		if err := it.Err(); err != nil {
			b.Fatal(err)
		}
		for _, k := range keys {
			if err := p.coll.Maps[name].Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				b.Fatal(err)
			}
		}
	}
}

// checkEstablished checks that the table holds n connections, each
// established in the assured map, translated or not as nat says.
func (p *natPair) checkEstablished(b *testing.B, n int, nat bool) {
	b.Helper()
	var k, v []byte
	got := 0
	it := p.coll.Maps[p.manifest.Conntrack.Assured].Iterate()
	for it.Next(&k, &v) {
		e, err := conntrack.DecodeEntry(v)
		if err != nil {
			b.Fatal(err)
		}
		if e.State != conntrack.TCPEstablished || (e.NAT == conntrack.NATSource) != nat {
			b.Fatalf("entry %x is %v with translation %v, want established, translated %v", k, e.State, e.NAT, nat)
		}
		got++
	}
	if err := it.Err(); err != nil {
		b.Fatal(err)
	}
	if got != n {
		b.Fatalf("%d assured entries, want %d", got, n)
	}
	if nat {
		if a := p.count(b, p.manifest.NAT.Alias); a != n {
			b.Fatalf("%d aliases, want %d", a, n)
		}
	}
}

// natBenchFrame returns an untagged Ethernet frame carrying a TCP segment
// from src to dst with the given flags ("S", "SA", "A").
func natBenchFrame(b *testing.B, src, dst netip.AddrPort, flags string) []byte {
	b.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: 1, Window: 1024,
		SYN: strings.Contains(flags, "S"), ACK: strings.Contains(flags, "A")}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		b.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// natRewrite returns frame with its source or destination (IPv4 address
// and TCP port) replaced, checksums left as they were.
func natRewrite(frame []byte, src, dst netip.AddrPort) []byte {
	f := bytes.Clone(frame)
	if src.IsValid() {
		a := src.Addr().As4()
		copy(f[26:30], a[:])
		binary.BigEndian.PutUint16(f[34:], src.Port())
	}
	if dst.IsValid() {
		a := dst.Addr().As4()
		copy(f[30:34], a[:])
		binary.BigEndian.PutUint16(f[36:], dst.Port())
	}
	return f
}

// natSame reports whether frame got is want but for its IPv4 and TCP
// checksums, and whether got's checksums verify.
func natSame(got, want []byte) bool {
	if len(got) != len(want) || len(got) < 54 {
		return false
	}
	masked := func(f []byte) []byte {
		f = bytes.Clone(f)
		f[24], f[25], f[50], f[51] = 0, 0, 0, 0
		return f
	}
	if !bytes.Equal(masked(got), masked(want)) {
		return false
	}
	pseudo := append(bytes.Clone(got[26:34]), 0, 6, 0, 20)
	return sum16(got[14:34], 0) == 0xffff && sum16(got[34:54], sum16(pseudo, 0)) == 0xffff
}

// sum16 is the one's complement sum of b (even length) onto acc, folded.
func sum16(b []byte, acc uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return acc
}

// testRun runs frame through prog repeat times with BPF_PROG_TEST_RUN and
// returns the action, the frame the last run left and the kernel's mean
// time of a run. ingress, when not 0, is the index of the interface the
// frame arrives on (struct xdp_md's ingress_ifindex), which
// ebpf.Program.Benchmark cannot set.
func testRun(b *testing.B, prog *ebpf.Program, frame []byte, ingress, repeat int) (uint32, []byte, time.Duration) {
	b.Helper()
	out := make([]byte, len(frame)+256)
	var ctx [6]uint32 // struct xdp_md
	ctx[1], ctx[3] = uint32(len(frame)), uint32(ingress)
	attr := struct {
		progFD, retval, sizeIn, sizeOut uint32
		dataIn, dataOut                 uint64
		repeat, duration                uint32
		ctxSizeIn, ctxSizeOut           uint32
		ctxIn, ctxOut                   uint64
		flags, cpu, batch, _            uint32
	}{
		progFD: uint32(prog.FD()), sizeIn: uint32(len(frame)), sizeOut: uint32(len(out)),
		dataIn:  uint64(uintptr(unsafe.Pointer(&frame[0]))),
		dataOut: uint64(uintptr(unsafe.Pointer(&out[0]))),
		repeat:  uint32(repeat),
	}
	if ingress != 0 {
		attr.ctxSizeIn, attr.ctxIn = uint32(unsafe.Sizeof(ctx)), uint64(uintptr(unsafe.Pointer(&ctx)))
	}
	for {
		_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			b.Fatalf("test run: %v", errno)
		}
		break
	}
	goruntime.KeepAlive(frame)
	goruntime.KeepAlive(&ctx)
	return attr.retval, out[:attr.sizeOut], time.Duration(attr.duration)
}

// restoring returns a program that writes frame over the packet and then
// tail-calls target. BPF_PROG_TEST_RUN's repeat runs a program again on
// the frame its last run left, so a program that translates would see
// its own translation from the second run on; through this one, every
// run of target sees frame as sent. Every program of a repeated row runs
// through one, the floor included, so its cost cancels.
func restoring(b *testing.B, target *ebpf.Program, frame []byte) *ebpf.Program {
	b.Helper()
	calls, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { calls.Close() })
	if err := calls.Put(uint32(0), uint32(target.FD())); err != nil {
		b.Fatal(err)
	}
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, int32(len(frame))),
		asm.JGT.Reg(asm.R4, asm.R3, "short"),
	}
	for off := 0; off < len(frame); {
		if len(frame)-off >= 4 {
			v := int32(binary.LittleEndian.Uint32(frame[off:]))
			insns = append(insns, asm.StoreImm(asm.R2, int16(off), int64(v), asm.Word))
			off += 4
			continue
		}
		insns = append(insns, asm.StoreImm(asm.R2, int16(off), int64(frame[off]), asm.Byte))
		off++
	}
	insns = append(insns,
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMapPtr(asm.R2, calls.FD()),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnTailCall.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("short"), // XDP_ABORTED
		asm.Return(),
	)
	// A program array takes only programs of its owner's (the target's)
	// type and attach type.
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, AttachType: ebpf.AttachXDP, License: "GPL", Instructions: insns})
	if err != nil {
		b.Fatalf("restoring program: %v", err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog
}

// natBenchNS returns a namespace with the router's two interfaces and
// forwarding on. With route, out0 has 203.0.113.1/24, a default route
// via natBenchGW and a permanent neighbour for it, so the FIB resolves
// every destination; without, it has no route, and every lookup misses.
// It returns the indexes of in0 and out0 and out0's MAC address.
func natBenchNS(b *testing.B, route bool) (ns *nstest.Netns, in, out int, outMAC net.HardwareAddr) {
	b.Helper()
	ns = nstest.New(b)
	in, _ = ns.Veth(b, "in0", "in0p")
	out, _ = ns.Veth(b, "out0", "out0p")
	h := ns.Handle
	link, err := h.LinkByIndex(out)
	if err != nil {
		b.Fatal(err)
	}
	if route {
		ns.AddAddr(b, out, "203.0.113.1/24")
		ns.Gateway(b, out, natBenchGW, natBenchGWMAC)
	} else if err := ns.Run(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/conf/all/forwarding", []byte("1"), 0o644)
	}); err != nil {
		b.Fatal(err)
	}
	return ns, in, out, link.Attrs().HardwareAddr
}

// natBenchProgs are the four programs a row interleaves, in the order of
// natBenchReport's sums: the floor, stateless, tracking, NAT.
type natBenchProgs [4]*ebpf.Program

// natBenchCase is one frame of a row: what each of the four programs
// runs (the tracking program's conversation is untranslated, so its
// frames differ from the others' in their addresses) and what each must
// return and leave.
type natBenchCase struct {
	in     [4][]byte
	want   [4][]byte
	action [4]uint32
}

// run runs the case's frames through progs, each repeat times, adds the
// kernel's time of each to sums and checks every verdict and frame left.
func (c *natBenchCase) run(b *testing.B, progs natBenchProgs, ingress, repeat int, sums *[4]time.Duration) {
	b.Helper()
	for i, p := range progs {
		action, out, d := testRun(b, p, c.in[i], ingress, repeat)
		if action != c.action[i] || !natSame(out, c.want[i]) {
			b.Fatalf("program %d: action %d, frame\n% x\nwant action %d, frame\n% x", i, action, out, c.action[i], c.want[i])
		}
		sums[i] += d
	}
}

// natBenchReport reports ns per packet over n packets: the floor, each
// policy above it, and what tracking adds to the stateless rules and NAT
// to tracking.
func natBenchReport(b *testing.B, sums [4]time.Duration, n int) {
	b.Helper()
	per := func(d time.Duration) float64 { return float64(d) / float64(n) }
	f := per(sums[0])
	st, tr, nt := per(sums[1])-f, per(sums[2])-f, per(sums[3])-f
	b.ReportMetric(f, "floor-ns/pkt")
	b.ReportMetric(st, "stateless-over-floor")
	b.ReportMetric(tr, "tracking-over-floor")
	b.ReportMetric(nt, "nat-over-floor")
	b.ReportMetric(tr-st, "tracking-minus-stateless")
	b.ReportMetric(nt-tr, "nat-minus-tracking")
}

// natBenchRig is what every row loads: the empty program and the three
// files' program pairs.
type natBenchRig struct {
	empty                *ebpf.Program
	stateless, track, nt *natPair
}

func newNATBenchRig(b *testing.B) *natBenchRig {
	b.Helper()
	tracked := strings.ReplaceAll(natBenchPolicies, "REPLIES", natBenchTrackedReplies)
	stateless := strings.ReplaceAll(natBenchPolicies, "REPLIES", natBenchStatelessReplies)
	return &natBenchRig{
		empty:     loadBenchProgram(b, elfBytes(b, passArtifact())).Program(),
		stateless: loadNATPair(b, natBenchInterfaces+stateless),
		track:     loadNATPair(b, natBenchInterfaces+tracked),
		nt:        loadNATPair(b, natBenchInterfaces+tracked+natBenchBlock),
	}
}

// progs returns the four programs of the inside (outbound) or the
// outside (inbound).
func (r *natBenchRig) progs(outbound bool) natBenchProgs {
	if outbound {
		return natBenchProgs{r.empty, r.stateless.in, r.track.in, r.nt.in}
	}
	return natBenchProgs{r.empty, r.stateless.out, r.track.out, r.nt.out}
}

// establish opens connection i through both tracking pairs as it happens
// through a router: the inside host's SYN (inside), the server's SYN+ACK
// (outside), the host's ACK (inside); through NAT the server answers the
// masquerade's address, and the translation keeps the client's port.
func (r *natBenchRig) establish(b *testing.B, ns *nstest.Netns, i int) {
	b.Helper()
	c := natBenchClient(i)
	masq := netip.AddrPortFrom(natBenchTo, c.Port())
	steps := []struct {
		outbound   bool
		src, dst   netip.AddrPort
		flags      string
		translated netip.AddrPort // the server's view of the client
	}{
		{true, c, natBenchServer, "S", masq},
		{false, natBenchServer, c, "SA", masq},
		{true, c, natBenchServer, "A", masq},
	}
	ns.Do(b, func() {
		for _, s := range steps {
			for _, p := range []*natPair{r.track, r.nt} {
				src, dst := s.src, s.dst
				if p == r.nt && !s.outbound {
					dst = s.translated
				}
				prog := p.in
				if !s.outbound {
					prog = p.out
				}
				// A namespace with a route forwards what NAT translated.
				if action, _, _ := testRun(b, prog, natBenchFrame(b, src, dst, s.flags), 0, 1); action != xdpPass && action != xdpRedirect {
					b.Fatalf("%s %v -> %v: action %d, want pass or redirect", s.flags, src, dst, action)
				}
			}
		}
	})
}

// outboundCase is an ACK of connection i from the inside host: the NAT
// program leaves it from the masquerade's address.
func outboundCase(b *testing.B, i int) natBenchCase {
	c := natBenchClient(i)
	f := natBenchFrame(b, c, natBenchServer, "A")
	nat := natRewrite(f, netip.AddrPortFrom(natBenchTo, c.Port()), netip.AddrPort{})
	return natBenchCase{in: [4][]byte{f, f, f, f}, want: [4][]byte{f, f, f, nat}, action: [4]uint32{xdpPass, xdpPass, xdpPass, xdpPass}}
}

// inboundCase is the server's ACK of connection i: to the masquerade's
// address for every program but the tracking one, whose conversation
// was untranslated; the NAT program leaves it to the inside host.
func inboundCase(b *testing.B, i int) natBenchCase {
	c := natBenchClient(i)
	f := natBenchFrame(b, natBenchServer, netip.AddrPortFrom(natBenchTo, c.Port()), "A")
	tr := natBenchFrame(b, natBenchServer, c, "A")
	nat := natRewrite(f, netip.AddrPort{}, c)
	return natBenchCase{in: [4][]byte{f, f, tr, f}, want: [4][]byte{f, f, tr, nat}, action: [4]uint32{xdpPass, xdpPass, xdpPass, xdpPass}}
}

// BenchmarkNAT measures what masquerading costs a packet, in ns per
// packet above the empty program (the floor of the harness), beside the
// same rules without tracking (stateless) and with tracking but no nat
// block (tracking), all four interleaved in every iteration; read
// nat-minus-tracking (what NAT adds to tracking) and
// tracking-minus-stateless.
//
// Unless a row says otherwise its namespace has no route, so every FIB
// lookup of a translated packet misses and the NAT program passes it to
// the stack, the same way every time. Rows:
//
//   - new/single: SYNs of natBenchBatch new flows from the inside to the
//     server, each run once per call (a repeat would make every run after
//     the first an established one); the tables are emptied between
//     iterations, outside the time.
//   - outbound/established: an ACK of an established masqueraded
//     connection from the inside host (inside program): the entry found
//     by the original tuple, the alias refreshed, the source rewritten.
//   - inbound/established: the server's ACK to the masquerade's address
//     (outside program): the entry found through the alias, the
//     destination rewritten back.
//   - outbound/fib: outbound/established in a namespace with a route and
//     a neighbour: the FIB lookup succeeds, and the NAT program rewrites
//     the MAC addresses and TTL and returns XDP_REDIRECT (the test run
//     returns the action and transmits nothing).
//
// Each established row runs repeat (one connection, benchRepeat runs per
// call, every program through a restoring program, see restoring) and
// single (natBenchBatch connections, each run once per call). Every call
// checks the verdict and the frame each program left.
func BenchmarkNAT(b *testing.B) {
	b.Run("new/single", func(b *testing.B) {
		r := newNATBenchRig(b)
		ns, in, _, _ := natBenchNS(b, false)
		cases := make([]natBenchCase, natBenchBatch)
		for i := range cases {
			c := natBenchClient(i)
			f := natBenchFrame(b, c, natBenchServer, "S")
			nat := natRewrite(f, netip.AddrPortFrom(natBenchTo, c.Port()), netip.AddrPort{})
			cases[i] = natBenchCase{in: [4][]byte{f, f, f, f}, want: [4][]byte{f, f, f, nat}, action: [4]uint32{xdpPass, xdpPass, xdpPass, xdpPass}}
		}
		progs := r.progs(true)
		var sums [4]time.Duration
		ns.Do(b, func() {
			for b.Loop() {
				for i := range cases {
					cases[i].run(b, progs, in, 1, &sums)
				}
				// Every frame was a new flow: an unassured entry each,
				// and through NAT an alias each.
				for _, p := range []*natPair{r.track, r.nt} {
					if n := p.count(b, p.manifest.Conntrack.Unassured); n != natBenchBatch {
						b.Fatalf("%d unassured entries, want %d", n, natBenchBatch)
					}
					if p.manifest.NAT != nil {
						if n := p.count(b, p.manifest.NAT.Alias); n != natBenchBatch {
							b.Fatalf("%d aliases, want %d", n, natBenchBatch)
						}
					}
					p.flush(b)
				}
			}
		})
		natBenchReport(b, sums, b.N*natBenchBatch)
	})
	for _, row := range []struct {
		name     string
		outbound bool
		route    bool
	}{
		{"outbound/established", true, false},
		{"inbound/established", false, false},
		{"outbound/fib", true, true},
	} {
		caseOf := inboundCase
		if row.outbound {
			caseOf = outboundCase
		}
		// fib rewrites what the NAT program leaves: next hop's MACs, TTL.
		fib := func(c natBenchCase, outMAC net.HardwareAddr) natBenchCase {
			if !row.route {
				return c
			}
			w := bytes.Clone(c.want[3])
			copy(w[0:6], natBenchGWMAC)
			copy(w[6:12], outMAC)
			w[22]--
			c.want[3], c.action[3] = w, xdpRedirect
			return c
		}
		b.Run(row.name+"/repeat", func(b *testing.B) {
			r := newNATBenchRig(b)
			ns, in, out, outMAC := natBenchNS(b, row.route)
			r.establish(b, ns, 0)
			c := fib(caseOf(b, 0), outMAC)
			var progs natBenchProgs
			for i, p := range r.progs(row.outbound) {
				progs[i] = restoring(b, p, c.in[i])
			}
			ingress := natBenchIngress(row.outbound, in, out)
			var sums [4]time.Duration
			ns.Do(b, func() {
				for b.Loop() {
					c.run(b, progs, ingress, benchRepeat, &sums)
				}
			})
			r.track.checkEstablished(b, 1, false)
			r.nt.checkEstablished(b, 1, true)
			natBenchReport(b, sums, b.N)
		})
		b.Run(row.name+"/single", func(b *testing.B) {
			r := newNATBenchRig(b)
			ns, in, out, outMAC := natBenchNS(b, row.route)
			cases := make([]natBenchCase, natBenchBatch)
			for i := range cases {
				r.establish(b, ns, i)
				cases[i] = fib(caseOf(b, i), outMAC)
			}
			progs := r.progs(row.outbound)
			ingress := natBenchIngress(row.outbound, in, out)
			var sums [4]time.Duration
			ns.Do(b, func() {
				for b.Loop() {
					for i := range cases {
						cases[i].run(b, progs, ingress, 1, &sums)
					}
				}
			})
			r.track.checkEstablished(b, natBenchBatch, false)
			r.nt.checkEstablished(b, natBenchBatch, true)
			natBenchReport(b, sums, b.N*natBenchBatch)
		})
	}
}

// natBenchBatch is how many distinct flows a single-run row sends per
// iteration, within the unassured map's least room.
const natBenchBatch = ctBenchBatch

// xdpRedirect is XDP_REDIRECT.
const xdpRedirect = 4

// natBenchIngress is the interface a row's frames arrive on: in0 for
// outbound, out0 for inbound.
func natBenchIngress(outbound bool, in, out int) int {
	if outbound {
		return in
	}
	return out
}
