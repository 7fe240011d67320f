package routerlab_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/xdpc/xdpc/internal/routerlab"
)

// TestForwarder holds the benchmark's bare forwarder to forwarding right:
// TCP through it arrives intact (the server's stack verifies the IPv4
// header checksum the TTL decrement rewrote) and the client's frames took
// the XDP redirect, not the stack, so what BenchmarkMasquerade measures
// as the ceiling is XDP forwarding.
func TestForwarder(t *testing.T) {
	r := routerlab.New(t, routerlab.Options{ServerRoute: true, Forwarding: true})
	if err := r.AttachForwarder(r.Inside); err != nil {
		t.Fatal(err)
	}
	before, err := r.Paths()
	if err != nil {
		t.Fatal(err)
	}
	from, err := routerlab.Exchange(r.Server, netip.AddrPortFrom(routerlab.ServerAddr, 7000), r.Client, netip.AddrPortFrom(routerlab.ServerAddr, 7000), 256<<10, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if from.Addr() != routerlab.ClientAddr {
		t.Errorf("the server saw %v, want the client's own address %v", from.Addr(), routerlab.ClientAddr)
	}
	after, err := r.Paths()
	if err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	t.Logf("%v", d)
	// The replies come back through the stack (nothing is attached to
	// the outside veth); the client's segments all go by XDP.
	if d.Redirected == 0 || d.Stack > d.Redirected*2 {
		t.Errorf("the client's frames were not redirected by XDP: %v", d)
	}
}
