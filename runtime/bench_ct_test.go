package runtime_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/runtime"
)

// The connection tracking benchmark's policies: a host that lets in the
// answers to its own connections, SSH from a management network, DNS and
// a web service. ctBenchTracking does it with ct_state; ctBenchStateless
// is the same rules with the stateless stand-in for "replies" that
// policies without tracking use (TCP with ACK set). Each benchmark packet
// is decided by the same rule in both: an answer of an open connection by
// "replies", a SYN to the web service by "web", after the two rules
// before it failed.
const (
	ctBenchTracking = `
policy "bench" {
  default   = "drop"
  malformed = "drop"

  rule "replies" {
    ct_state = ["established", "related"]
    action   = "pass"
  }
` + ctBenchServices
	ctBenchStateless = `
policy "bench" {
  default   = "drop"
  malformed = "drop"

  rule "replies" {
    proto     = "tcp"
    tcp_flags = "ack"
    action    = "pass"
  }
` + ctBenchServices
	ctBenchServices = `
  rule "ssh" {
    proto    = "tcp"
    src      = "203.0.113.0/24"
    dst_port = 22
    action   = "pass"
  }
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
)

// ctBenchBatch is how many distinct frames a single-run row sends per
// iteration: distinct flows, within the unassured map's least room
// (1,024).
const ctBenchBatch = 256

// ctBenchHosts are the addresses of the benchmark's frames, by family:
// the host the policy protects, a server it connects to, and a client
// that connects to its web service.
var ctBenchHosts = []struct {
	name                 string
	host, server, client string
}{
	{"ipv4", "192.0.2.1", "198.51.100.2", "203.0.113.7"},
	{"ipv6", "2001:db8::1", "2001:db8:1::2", "2001:db8:2::7"},
}

// BenchmarkConntrack measures what connection tracking costs a packet:
// ns per packet of the tracking policy's program and of the stateless
// policy's on the same packets, each above the empty program (the floor
// of the harness), all three interleaved in every iteration, in IPv4 and
// IPv6. Read tracking-over-floor against stateless-over-floor, their
// difference (what tracking adds to a packet) and their ratio
// tracking/stateless.
//
//   - established/repeat: the answer of an open connection (a TCP ACK
//     from the server the host connected to; its entry in the assured
//     map, established), run benchRepeat times per call: looked up,
//     passed by the ct_state rule, committed (state moved, timeout
//     refreshed).
//   - new/single: a SYN to the web service from a client port the table
//     does not hold: the miss in both maps, the rules, the insert into
//     the unassured map. BPF_PROG_TEST_RUN's repeat would make every run
//     after the first one established, so each of ctBenchBatch distinct
//     frames runs once per call (the kernel's own time of that one run)
//     and the table is emptied between iterations, outside the time. The
//     floor and the stateless program run the same frames the same way,
//     so the harness of a single run cancels.
//   - established/single: answers of ctBenchBatch open connections, each
//     run once per call as new/single runs: what a single run costs an
//     established packet, so that new/single minus it is the insert.
func BenchmarkConntrack(b *testing.B) {
	empty := loadBenchProgram(b, elfBytes(b, passArtifact())).Program()
	for _, h := range ctBenchHosts {
		b.Run(h.name, func(b *testing.B) {
			b.Run("established/repeat", func(b *testing.B) {
				track, stateless := ctBenchPrograms(b)
				frame := ctEstablish(b, track, h.host, h.server, 40000)
				var floor, tr, st time.Duration
				for b.Loop() {
					floor += runBench(b, empty, frame, xdpPass)
					tr += runBench(b, track.Program(), frame, xdpPass)
					st += runBench(b, stateless.Program(), frame, xdpPass)
				}
				ctBenchCheckAssured(b, track, 1)
				ctBenchReport(b, floor, tr, st, b.N)
			})
			b.Run("established/single", func(b *testing.B) {
				track, stateless := ctBenchPrograms(b)
				frames := make([][]byte, ctBenchBatch)
				for i := range frames {
					frames[i] = ctEstablish(b, track, h.host, h.server, uint16(40000+i))
				}
				var floor, tr, st time.Duration
				for b.Loop() {
					for _, f := range frames {
						floor += runOnce(b, empty, f)
						tr += runOnce(b, track.Program(), f)
						st += runOnce(b, stateless.Program(), f)
					}
				}
				ctBenchCheckAssured(b, track, ctBenchBatch)
				ctBenchReport(b, floor, tr, st, b.N*ctBenchBatch)
			})
			b.Run("new/single", func(b *testing.B) {
				track, stateless := ctBenchPrograms(b)
				maps := ctBenchMaps(b, track.Program())
				frames := make([][]byte, ctBenchBatch)
				for i := range frames {
					frames[i] = ctBenchFrame(b, h.client, h.host, uint16(10000+i), 443, "S")
				}
				var floor, tr, st time.Duration
				for b.Loop() {
					for _, f := range frames {
						floor += runOnce(b, empty, f)
						tr += runOnce(b, track.Program(), f)
						st += runOnce(b, stateless.Program(), f)
					}
					// Every frame was a new flow: each made its entry,
					// in the unassured map.
					assured, unassured := ctBenchEmpty(b, maps)
					if assured != 0 || unassured != ctBenchBatch {
						b.Fatalf("the batch made %d assured and %d unassured entries, want 0 and %d", assured, unassured, ctBenchBatch)
					}
				}
				ctBenchReport(b, floor, tr, st, b.N*ctBenchBatch)
			})
		})
	}
}

// ctBenchPrograms loads the tracking and the stateless policy.
func ctBenchPrograms(b *testing.B) (track, stateless *runtime.TestProgram) {
	b.Helper()
	return loadBenchProgram(b, compileSrc(b, ctBenchTracking)), loadBenchProgram(b, compileSrc(b, ctBenchStateless))
}

// ctBenchReport reports ns per packet over n packets: the floor, the two
// policies' above it, what tracking adds (their difference) and the
// ratio of the two above the floor.
func ctBenchReport(b *testing.B, floor, track, stateless time.Duration, n int) {
	b.Helper()
	f := float64(floor) / float64(n)
	tr, st := float64(track)/float64(n)-f, float64(stateless)/float64(n)-f
	b.ReportMetric(f, "floor-ns/pkt")
	b.ReportMetric(tr, "tracking-over-floor")
	b.ReportMetric(st, "stateless-over-floor")
	b.ReportMetric(tr-st, "tracking-minus-stateless")
	if st > 0 {
		b.ReportMetric(tr/st, "tracking/stateless")
	}
}

// runOnce runs frame once in the kernel (a single run, no repeat) and
// returns the kernel's time of it; the program must pass it.
func runOnce(b *testing.B, prog *ebpf.Program, frame []byte) time.Duration {
	b.Helper()
	action, d, err := prog.Benchmark(frame, 1, nil)
	if err != nil {
		b.Fatalf("benchmark run: %v", err)
	}
	if action != xdpPass {
		b.Fatalf("action %d, want %d (pass)", action, xdpPass)
	}
	return d
}

// ctEstablish opens a connection from the host's port to the server's
// port 443 through the tracking program, as it happens on a host: the
// host's SYN (egress), the server's SYN+ACK (the XDP program passes it as
// established), the host's ACK (egress). It returns the frame of the
// server's next ACK, an answer of the open connection.
func ctEstablish(b *testing.B, track *runtime.TestProgram, host, server string, port uint16) []byte {
	b.Helper()
	if _, err := track.RunEgress(ctBenchFrame(b, host, server, port, 443, "S")); err != nil {
		b.Fatal(err)
	}
	out, err := track.Run(ctBenchFrame(b, server, host, 443, port, "SA"))
	if err != nil {
		b.Fatal(err)
	}
	if out.Action != xdpPass {
		b.Fatalf("the server's SYN+ACK got action %d, want pass", out.Action)
	}
	if _, err := track.RunEgress(ctBenchFrame(b, host, server, port, 443, "A")); err != nil {
		b.Fatal(err)
	}
	return ctBenchFrame(b, server, host, 443, port, "A")
}

// ctBenchCheckAssured checks that the table holds n connections, every
// one established and in the assured map.
func ctBenchCheckAssured(b *testing.B, track *runtime.TestProgram, n int) {
	b.Helper()
	flows, err := track.ConntrackFlows()
	if err != nil {
		b.Fatal(err)
	}
	if len(flows) != n {
		b.Fatalf("%d flows in the table, want %d", len(flows), n)
	}
	for _, f := range flows {
		if !f.Assured || f.Entry.State != conntrack.TCPEstablished {
			b.Fatalf("flow %v is %s (assured map: %v), want established, assured", f.Key, f.Entry.State, f.Assured)
		}
	}
}

// ctBenchMaps opens the connection table maps of a loaded program (the
// assured one first), found by their names in the kernel.
func ctBenchMaps(b *testing.B, prog *ebpf.Program) [2]*ebpf.Map {
	b.Helper()
	info, err := prog.Info()
	if err != nil {
		b.Fatal(err)
	}
	ids, _ := info.MapIDs()
	var maps [2]*ebpf.Map
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			b.Fatal(err)
		}
		mi, err := m.Info()
		if err != nil {
			b.Fatal(err)
		}
		switch mi.Name {
		case "xdpc_ct_assured":
			maps[0] = m
		case "xdpc_ct_unassrd":
			maps[1] = m
		default:
			m.Close()
			continue
		}
		b.Cleanup(func() { m.Close() })
	}
	if maps[0] == nil || maps[1] == nil {
		b.Fatalf("the program's maps %v hold no connection table", ids)
	}
	return maps
}

// ctBenchEmpty deletes every entry of the table maps and returns how many
// each held.
func ctBenchEmpty(b *testing.B, maps [2]*ebpf.Map) (assured, unassured int) {
	b.Helper()
	var held [2]int
	for i, m := range maps {
		var keys [][]byte
		var k, v []byte
		it := m.Iterate()
		for it.Next(&k, &v) {
			keys = append(keys, k)
		}
		if err := it.Err(); err != nil {
			b.Fatal(err)
		}
		for _, k := range keys {
			if err := m.Delete(k); err != nil {
				b.Fatal(err)
			}
		}
		held[i] = len(keys)
	}
	return held[0], held[1]
}

// ctBenchFrame returns an untagged Ethernet frame carrying a TCP segment
// from src to dst, IPv4 or IPv6, with the given flags (tcpdump's letters:
// "S", "SA", "A").
func ctBenchFrame(b *testing.B, src, dst string, sport, dport uint16, flags string) []byte {
	b.Helper()
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1, Window: 1024}
	for _, f := range flags {
		switch f {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		default:
			panic(fmt.Sprintf("flag %q", f))
		}
	}
	var ip gopacket.SerializableLayer
	if s.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
		if err := tcp.SetNetworkLayerForChecksum(ip4); err != nil {
			b.Fatal(err)
		}
		ip = ip4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
		if err := tcp.SetNetworkLayerForChecksum(ip6); err != nil {
			b.Fatal(err)
		}
		ip = ip6
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		b.Fatalf("serialize frame: %v", err)
	}
	return buf.Bytes()
}

// BenchmarkConntrackParts measures, beside the empty program and
// interleaved with it, what the tracker's calls cost alone: the clock it
// reads once a packet (bpf_ktime_get_ns), a lookup of a key a hash map
// of the table's layout holds (conntrack.KeySize keys, EntrySize
// values), and that lookup followed by an update of the key, as the
// commit of an established packet writes its entry. Each is reported
// above the floor; they explain the established row of
// BenchmarkConntrack.
func BenchmarkConntrackParts(b *testing.B) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: conntrack.KeySize, ValueSize: conntrack.EntrySize, MaxEntries: 65536})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if err := m.Put(make([]byte, conntrack.KeySize), make([]byte, conntrack.EntrySize)); err != nil {
		b.Fatal(err)
	}
	const keyAt, valueAt = -conntrack.KeySize, -conntrack.KeySize - conntrack.EntrySize
	var zero asm.Instructions // the key and the value, zeroed on the stack
	for off := int16(valueAt); off < 0; off += 4 {
		zero = append(zero, asm.StoreImm(asm.R10, off, 0, asm.Word))
	}
	lookup := append(zero[:len(zero):len(zero)],
		asm.LoadMapPtr(asm.R1, m.FD()), asm.Mov.Reg(asm.R2, asm.R10), asm.Add.Imm(asm.R2, keyAt),
		asm.FnMapLookupElem.Call())
	update := append(lookup[:len(lookup):len(lookup)],
		asm.LoadMapPtr(asm.R1, m.FD()), asm.Mov.Reg(asm.R2, asm.R10), asm.Add.Imm(asm.R2, keyAt),
		asm.Mov.Reg(asm.R3, asm.R10), asm.Add.Imm(asm.R3, valueAt), asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call())
	pass := asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()}
	parts := []struct {
		name string
		code asm.Instructions
	}{
		{"empty", nil},
		{"clock", asm.Instructions{asm.FnKtimeGetNs.Call()}},
		{"lookup", lookup},
		{"lookup+update", update},
	}
	progs := make([]*ebpf.Program, len(parts))
	for i, p := range parts {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type: ebpf.XDP, License: "GPL",
			Instructions: append(p.code[:len(p.code):len(p.code)], pass...),
		})
		if err != nil {
			b.Fatalf("%s: %v", p.name, err)
		}
		defer prog.Close()
		progs[i] = prog
	}
	frame := ctBenchFrame(b, "198.51.100.2", "192.0.2.1", 443, 40000, "A")
	sums := make([]time.Duration, len(parts))
	for b.Loop() {
		for i, p := range progs {
			sums[i] += runBench(b, p, frame, xdpPass)
		}
	}
	floor := float64(sums[0]) / float64(b.N)
	b.ReportMetric(floor, "floor-ns/pkt")
	for i, p := range parts[1:] {
		b.ReportMetric(float64(sums[i+1])/float64(b.N)-floor, p.name+"-over-floor")
	}
}
