package routerlab_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/xdpc/xdpc/internal/routerlab"
	"github.com/xdpc/xdpc/runtime"
)

// BenchmarkMasquerade floods UDP from the client through the router:
// xdpc's compiled NAT (masquerade and a forward), the same NAT in
// nftables, plain kernel forwarding, and a bare XDP forwarder that
// translates and tracks nothing (the ceiling of any XDP router through
// this topology), interleaved, one second each per iteration. It reports the frames a second each delivered to the
// server, the share of those sent that arrived, and the ratios
// (docs/performance.md: measure, compare peers in the same run).
//
// The router's inside veth polls in a NAPI thread of its own, so that
// the router runs beside the generator rather than in its turns: a
// router slower than the generator drops what overflows its ring, and
// the rate is the router's.
func BenchmarkMasquerade(b *testing.B) {
	elfs := compileEdge(b)
	needNFT(b)
	xdp := routerlab.New(b, routerlab.Options{})
	for _, elf := range elfs {
		if _, err := xdp.Apply(elf, []runtime.NATAddresses{{Block: "edge", Masquerade: []netip.Addr{routerlab.OutsideAddr}, Forward: []netip.Addr{routerlab.OutsideAddr}}}); err != nil {
			b.Fatal(err)
		}
	}
	nft := routerlab.New(b, routerlab.Options{Forwarding: true})
	err := nft.NFT(routerlab.NFTRuleset(routerlab.NFTNAT{
		Masquerade: routerlab.InsideNet,
		Forwards:   []routerlab.NFTForward{{Proto: "tcp", Port: 8080, To: clientPort}},
	}))
	if err != nil {
		b.Fatal(err)
	}
	plain := routerlab.New(b, routerlab.Options{ServerRoute: true, Forwarding: true})
	for _, r := range []*routerlab.Router{nft, plain} {
		if err := r.AttachPass(r.Inside); err != nil {
			b.Fatal(err)
		}
	}
	fwd := routerlab.New(b, routerlab.Options{ServerRoute: true, Forwarding: true})
	if err := fwd.AttachForwarder(fwd.Inside); err != nil {
		b.Fatal(err)
	}
	routers := []*routerlab.Router{xdp, nft, plain, fwd}
	for _, r := range routers {
		if err := r.ThreadedNAPI(r.Inside, 1); err != nil {
			b.Fatal(err)
		}
	}
	dst := netip.AddrPortFrom(routerlab.ServerAddr, 9)
	var rates, shares [4]float64
	for b.Loop() {
		for i, r := range routers {
			f, err := r.FloodRate(b.Context(), r.UDPFrame(5000, dst, 18), 1<<26, time.Second, 0)
			if err != nil {
				b.Fatal(err)
			}
			rates[i] += float64(f.Delivered) / f.Elapsed.Seconds()
			shares[i] += f.Ratio()
		}
	}
	n := float64(b.N)
	for i, name := range []string{"xdp", "nft", "plain", "fwd"} {
		b.ReportMetric(rates[i]/n, name+"-pps")
		// The share of the frames sent that arrived: the rest were
		// refused by a full ring or dropped on the way.
		b.ReportMetric(shares[i]/n, name+"-delivered")
	}
	if rates[1] > 0 && rates[2] > 0 && rates[3] > 0 {
		b.ReportMetric(rates[0]/rates[1], "xdp/nft")
		b.ReportMetric(rates[0]/rates[2], "xdp/plain")
		b.ReportMetric(rates[1]/rates[2], "nft/plain")
		b.ReportMetric(rates[3]/rates[1], "fwd/nft")
		b.ReportMetric(rates[0]/rates[3], "xdp/fwd")
	}
}
