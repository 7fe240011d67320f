package runtime_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/runtime"
)

// benchRepeat is how often the kernel runs the program per
// BPF_PROG_TEST_RUN call; one benchmark iteration is one such call.
const benchRepeat = 10000

// BenchmarkTestRun measures the program alone under BPF_PROG_TEST_RUN:
// ns/packet of an empty program (the floor of the test-run harness) and of
// compiled policies of growing size whose benchmark packet falls through to
// the default verdict, so every rule is tried. ns/pkt-over-floor subtracts
// the floor measured in the same run.
func BenchmarkTestRun(b *testing.B) {
	frame := udpFrame(b, srcMAC, "198.51.100.1", "198.51.100.2", 9)

	var floor float64
	b.Run("empty", func(b *testing.B) {
		prog := loadBenchProgram(b, elfBytes(b, passArtifact()))
		floor = benchmarkProgram(b, prog, frame, xdpPass)
	})
	for _, rules := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", rules), func(b *testing.B) {
			prog := loadBenchProgram(b, compileBenchPolicy(b, rules))
			perPacket := benchmarkProgram(b, prog, frame, xdpDrop)
			if floor > 0 {
				b.ReportMetric(perPacket-floor, "ns/pkt-over-floor")
			}
		})
	}
}

func loadBenchProgram(b *testing.B, elf []byte) *runtime.TestProgram {
	b.Helper()
	prog, err := runtime.NewTestProgram(elf)
	if err != nil {
		b.Fatalf("load: %v", err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog
}

// benchmarkProgram runs frame benchRepeat times per iteration, checks the
// action and reports and returns the kernel's ns/packet.
func benchmarkProgram(b *testing.B, prog *runtime.TestProgram, frame []byte, want uint32) float64 {
	b.Helper()
	var total time.Duration
	for b.Loop() {
		action, perRun, err := prog.Program().Benchmark(frame, benchRepeat, nil)
		if err != nil {
			b.Fatalf("benchmark run: %v", err)
		}
		if action != want {
			b.Fatalf("action %d, want %d", action, want)
		}
		total += perRun
	}
	perPacket := float64(total.Nanoseconds()) / float64(b.N)
	b.ReportMetric(perPacket, "ns/packet")
	return perPacket
}

// benchPolicy returns a policy of n rules, default drop, none of which
// matches the benchmark frame (UDP 198.51.100.1:40000 -> 198.51.100.2:9).
// Rules cycle through the shapes policies commonly have: a TCP service
// port, a UDP source network and a destination network and port.
func benchPolicy(n int) string {
	var s strings.Builder
	s.WriteString("policy \"bench\" {\n  default   = \"drop\"\n  malformed = \"drop\"\n")
	for i := range n {
		net := fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)
		port := 1000 + i
		fmt.Fprintf(&s, "\n  rule \"r%d\" {\n", i)
		switch i % 3 {
		case 0:
			fmt.Fprintf(&s, "    proto    = \"tcp\"\n    dst_port = %d\n", port)
		case 1:
			fmt.Fprintf(&s, "    proto = \"udp\"\n    src   = %q\n", net)
		case 2:
			fmt.Fprintf(&s, "    proto    = [\"tcp\", \"udp\"]\n    dst      = %q\n    dst_port = %d\n", net, port)
		}
		s.WriteString("    action   = \"pass\"\n  }\n")
	}
	s.WriteString("}\n")
	return s.String()
}

// compileBenchPolicy compiles benchPolicy(n) to an ELF artifact.
func compileBenchPolicy(tb testing.TB, n int) []byte {
	tb.Helper()
	cfg, p := loadBenchPolicy(tb, n)
	art, err := compiler.Compile(cfg, p, compiler.Options{})
	if err != nil {
		tb.Fatalf("compile bench policy: %v", err)
	}
	var elf bytes.Buffer
	if err := art.WriteELF(&elf); err != nil {
		tb.Fatalf("write bench artifact: %v", err)
	}
	return elf.Bytes()
}

// loadBenchPolicy checks benchPolicy(n).
func loadBenchPolicy(tb testing.TB, n int) (*policy.Config, *policy.Policy) {
	tb.Helper()
	cfg, diags := policy.Load(fmt.Sprintf("bench%d.hcl", n), []byte(benchPolicy(n)), policy.LoadOptions{})
	if diags.HasErrors() {
		tb.Fatalf("load bench policy: %s", diags.Error())
	}
	return cfg, cfg.Policy("bench")
}

func TestBenchPolicyLoads(t *testing.T) {
	for _, n := range []int{10, 100, 1000} {
		_, p := loadBenchPolicy(t, n)
		if len(p.Rules) != n {
			t.Errorf("bench policy %d has %d rules", n, len(p.Rules))
		}
	}
}

// BenchmarkSkipping sets the default classifier, which skips every rule
// holding a test the packet failed, beside the plain linear one on a
// policy written in blocks: n/2 TCP service rules, then n/2 UDP source
// rules. The frame is UDP and matches none, so the skipping program leaves
// the TCP block at its first test. Both run interleaved on one frame.
func BenchmarkSkipping(b *testing.B) {
	frame := udpFrame(b, srcMAC, "198.51.100.1", "198.51.100.2", 9)
	for _, rules := range []int{100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", rules), func(b *testing.B) {
			var s strings.Builder
			s.WriteString("policy \"blocks\" {\n  default = \"drop\"\n  malformed = \"drop\"\n")
			for i := range rules {
				if i < rules/2 {
					fmt.Fprintf(&s, "  rule \"tcp%d\" {\n    proto = \"tcp\"\n    dst_port = %d\n    action = \"pass\"\n  }\n", i, 1000+i)
				} else {
					fmt.Fprintf(&s, "  rule \"udp%d\" {\n    proto = \"udp\"\n    src = \"10.%d.%d.0/24\"\n    action = \"pass\"\n  }\n", i, i/256, i%256)
				}
			}
			s.WriteString("}\n")
			cfg, diags := policy.Load("blocks.hcl", []byte(s.String()), policy.LoadOptions{})
			if diags.HasErrors() {
				b.Fatal(diags)
			}
			load := func(strategy string) *ebpf.Program {
				art, err := compiler.Compile(cfg, cfg.Policies[0], compiler.Options{Strategy: strategy})
				if err != nil {
					b.Fatal(err)
				}
				return loadBenchProgram(b, elfBytes(b, art)).Program()
			}
			plain, skipping := load("linear"), load("skipping")
			var tPlain, tSkip time.Duration
			for b.Loop() {
				tPlain += runBench(b, plain, frame, xdpDrop)
				tSkip += runBench(b, skipping, frame, xdpDrop)
			}
			p, k := float64(tPlain)/float64(b.N), float64(tSkip)/float64(b.N)
			b.ReportMetric(p, "linear-ns/pkt")
			b.ReportMetric(k, "skipping-ns/pkt")
			b.ReportMetric(k/p, "skipping/linear")
		})
	}
}
