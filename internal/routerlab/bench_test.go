package routerlab_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/xdpc/xdpc/internal/routerlab"
	"github.com/xdpc/xdpc/runtime"
)

// BenchmarkMasquerade floods UDP from the client through the router's
// masquerade, xdpc's compiled NAT against nftables' in the stack,
// interleaved, one second each per iteration, and reports the frames a
// second each delivered to the server and their ratio (docs/performance.md:
// measure, compare peers in the same run).
func BenchmarkMasquerade(b *testing.B) {
	elfs := compileEdge(b)
	needNFT(b)
	xdp := routerlab.New(b, routerlab.Options{})
	for _, elf := range elfs {
		if _, err := xdp.Apply(elf, []runtime.NATAddresses{{Block: "edge", Masquerade: []netip.Addr{routerlab.OutsideAddr}}}); err != nil {
			b.Fatal(err)
		}
	}
	nft := routerlab.New(b, routerlab.Options{Forwarding: true})
	if err := nft.NFT(routerlab.NFTRuleset(routerlab.NFTNAT{Masquerade: routerlab.InsideNet})); err != nil {
		b.Fatal(err)
	}
	if err := nft.AttachPass(nft.Inside); err != nil {
		b.Fatal(err)
	}
	dst := netip.AddrPortFrom(routerlab.ServerAddr, 9)
	var rates, shares [2]float64
	for b.Loop() {
		for i, r := range []*routerlab.Router{xdp, nft} {
			f, err := r.FloodRate(b.Context(), r.UDPFrame(5000, dst, 18), 1<<24, time.Second)
			if err != nil {
				b.Fatal(err)
			}
			rates[i] += float64(f.Delivered) / f.Elapsed.Seconds()
			shares[i] += f.Ratio()
		}
	}
	n := float64(b.N)
	b.ReportMetric(rates[0]/n, "xdp-pps")
	b.ReportMetric(rates[1]/n, "nft-pps")
	// The share of the frames sent that arrived: the rest were refused
	// by a full ring or dropped on the way.
	b.ReportMetric(shares[0]/n, "xdp-delivered")
	b.ReportMetric(shares[1]/n, "nft-delivered")
	if rates[1] > 0 {
		b.ReportMetric(rates[0]/rates[1], "xdp/nft")
	}
}
