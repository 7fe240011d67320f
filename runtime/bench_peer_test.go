package runtime_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// BenchmarkPeer sets xdpc's program for benchPolicy(n) beside a peer built
// the usual way: the same rules as a C XDP program compiled by clang -O2,
// with the IPv4-only parser a hand-written filter would have. Each
// iteration runs the empty program, xdpc's and the peer's once each,
// interleaved, on the same frame; the ratio xdpc/peer is what to read.
// clang builds the baseline only: it is never a dependency of xdpc
// (scripts/bench.sh installs it).
func BenchmarkPeer(b *testing.B) {
	clang, err := exec.LookPath("clang")
	if err != nil {
		b.Fatalf("clang not found (%v): the peer baseline needs it; run scripts/bench.sh, which installs clang and libbpf-dev", err)
	}
	frame := udpFrame(b, srcMAC, "198.51.100.1", "198.51.100.2", 9)
	empty := loadBenchProgram(b, elfBytes(b, passArtifact())).Program()
	for _, rules := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", rules), func(b *testing.B) {
			xdpc := loadBenchProgram(b, compileBenchPolicy(b, rules)).Program()
			peer, err := loadPeer(b, clang, rules)
			if err != nil {
				// A finding, not a failure: at 1,000 rules the clang
				// build's paths exceed the verifier's budget.
				b.Logf("the clang peer of %d rules does not load, so only xdpc is measured: %v", rules, err)
			}
			var floor, ours, theirs time.Duration
			for b.Loop() {
				floor += runBench(b, empty, frame, xdpPass)
				ours += runBench(b, xdpc, frame, xdpDrop)
				if peer != nil {
					theirs += runBench(b, peer, frame, xdpDrop)
				}
			}
			n := float64(b.N)
			f, o, p := float64(floor)/n, float64(ours)/n, float64(theirs)/n
			b.ReportMetric(f, "floor-ns/pkt")
			b.ReportMetric(o, "xdpc-ns/pkt")
			if peer == nil {
				return
			}
			b.ReportMetric(p, "clang-ns/pkt")
			b.ReportMetric(o/p, "xdpc/clang")
			if p > f {
				b.ReportMetric((o-f)/(p-f), "xdpc/clang-over-floor")
			}
		})
	}
}

// runBench runs frame benchRepeat times in the kernel and returns the time
// per run, checking the program's action.
func runBench(b *testing.B, prog *ebpf.Program, frame []byte, want uint32) time.Duration {
	b.Helper()
	action, perRun, err := prog.Benchmark(frame, benchRepeat, nil)
	if err != nil {
		b.Fatalf("benchmark run: %v", err)
	}
	if action != want {
		b.Fatalf("action %d, want %d", action, want)
	}
	return perRun
}

// loadPeer compiles peerSource(n) with clang and loads it; an error is the
// kernel refusing the program.
func loadPeer(b *testing.B, clang string, n int) (*ebpf.Program, error) {
	b.Helper()
	dir := b.TempDir()
	src, obj := filepath.Join(dir, "peer.c"), filepath.Join(dir, "peer.o")
	if err := os.WriteFile(src, []byte(peerSource(n)), 0o644); err != nil {
		b.Fatal(err)
	}
	args := []string{"-O2", "-g", "-target", "bpf", "-c", src, "-o", obj}
	// Debian keeps asm/types.h under the multiarch include directory.
	multiarch, _ := filepath.Glob("/usr/include/*-linux-gnu")
	for _, dir := range multiarch {
		args = append(args, "-I", dir)
	}
	cmd := exec.Command(clang, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	coll, err := ebpf.LoadCollection(obj)
	if err != nil {
		return nil, err
	}
	b.Cleanup(coll.Close)
	return coll.Programs["peer"], nil
}

// peerSource is benchPolicy(n) written in C as a hand-written filter would
// be: parse Ethernet and IPv4 (with IHL, fragments and bounds checks), then
// try the rules in order, counting packets and bytes per rule, default and
// malformed in a per-CPU array as xdpc does.
func peerSource(n int) string {
	var s strings.Builder
	fmt.Fprintf(&s, `#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define RULES %d

struct counter { __u64 packets, bytes; };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RULES + 2);
	__type(key, __u32);
	__type(value, struct counter);
} counters SEC(".maps");

static __always_inline int decide(struct xdp_md *ctx, __u32 slot, int verdict)
{
	struct counter *c = bpf_map_lookup_elem(&counters, &slot);
	if (c) {
		c->packets++;
		c->bytes += ctx->data_end - ctx->data;
	}
	return verdict;
}

SEC("xdp")
int peer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return decide(ctx, RULES + 1, XDP_DROP);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return decide(ctx, RULES, XDP_DROP);
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl < 5 || (void *)ip + ip->ihl * 4 > end)
		return decide(ctx, RULES + 1, XDP_DROP);
	__u8 proto = ip->protocol;
	__u32 src = bpf_ntohl(ip->saddr), dst = bpf_ntohl(ip->daddr);
	int ports = 0;
	__u16 dport = 0;
	if ((proto == IPPROTO_TCP || proto == IPPROTO_UDP) && !(ip->frag_off & bpf_htons(0x1fff))) {
		struct udphdr *l4 = (void *)ip + ip->ihl * 4;
		if ((void *)(l4 + 1) > end)
			return decide(ctx, RULES + 1, XDP_DROP);
		dport = bpf_ntohs(l4->dest);
		ports = 1;
	}
`, n)
	for i := range n {
		net := uint32(10)<<24 | uint32(i/256)<<16 | uint32(i%256)<<8
		port := 1000 + i
		switch i % 3 {
		case 0:
			fmt.Fprintf(&s, "\tif (proto == IPPROTO_TCP && ports && dport == %d)\n", port)
		case 1:
			fmt.Fprintf(&s, "\tif (proto == IPPROTO_UDP && (src & 0xffffff00) == %#x)\n", net)
		case 2:
			fmt.Fprintf(&s, "\tif ((proto == IPPROTO_TCP || proto == IPPROTO_UDP) && (dst & 0xffffff00) == %#x && ports && dport == %d)\n", net, port)
		}
		fmt.Fprintf(&s, "\t\treturn decide(ctx, %d, XDP_PASS);\n", i)
	}
	s.WriteString("\treturn decide(ctx, RULES, XDP_DROP);\n}\n\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n")
	return s.String()
}
