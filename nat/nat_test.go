package nat

import (
	"net/netip"
	"testing"

	"github.com/xdpc/xdpc/conntrack"
)

func TestAliasRoundTrip(t *testing.T) {
	a := Alias{Expires: 123456789, OrigAddr: netip.MustParseAddr("10.0.0.5"), OrigPort: 40000, Kind: conntrack.NATSource, Lo: true}
	b, err := DecodeAlias(a.Encode())
	if err != nil || b != a {
		t.Errorf("decode(encode(%+v)) = %+v, %v", a, b, err)
	}
	f := Frag{Addr: netip.MustParseAddr("203.0.113.1"), Which: FragSource}
	g, err := DecodeFrag(f.Encode())
	if err != nil || g != f {
		t.Errorf("decode(encode(%+v)) = %+v, %v", f, g, err)
	}
}

// TestHashIsFNV1a pins the hash to FNV-1a over the documented bytes: the
// compiler emits the same computation, so a change here must change both.
func TestHashIsFNV1a(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("8.8.8.8")
	got := Hash(0x01020304, src, dst, 40000, 53, 17)
	// FNV-1a of 04 03 02 01 0a 00 00 05 08 08 08 08 9c 40 00 35 11.
	want := uint32(2166136261)
	for _, c := range []byte{4, 3, 2, 1, 10, 0, 0, 5, 8, 8, 8, 8, 0x9c, 0x40, 0, 0x35, 17} {
		want ^= uint32(c)
		want *= 16777619
	}
	if got != want {
		t.Errorf("Hash = %#x, want %#x", got, want)
	}
	if Hash(1, src, dst, 40000, 53, 17) == got {
		t.Error("the seed does not change the hash")
	}
}

func TestAllocate(t *testing.T) {
	r := Ports{Lo: 20000, Hi: 20009}
	none := func(uint16) bool { return false }
	if p, ok := Allocate(r, 20005, 7, none); !ok || p != 20005 {
		t.Errorf("a source port in the range: %d %v, want it kept", p, ok)
	}
	if p, ok := Allocate(r, 40000, 13, none); !ok || p != 20003 {
		t.Errorf("a source port outside: %d %v, want 20000 + 13%%10", p, ok)
	}
	taken := map[uint16]bool{20003: true, 20004: true}
	if p, ok := Allocate(r, 40000, 13, func(p uint16) bool { return taken[p] }); !ok || p != 20005 {
		t.Errorf("collisions: %d %v, want the next free, 20005", p, ok)
	}
	// Wraps around the range.
	if p, ok := Allocate(r, 20009, 0, func(p uint16) bool { return p == 20009 }); !ok || p != 20000 {
		t.Errorf("wrap: %d %v, want 20000", p, ok)
	}
	if _, ok := Allocate(r, 40000, 0, func(uint16) bool { return true }); ok {
		t.Error("a full range gave a port")
	}
	// At most MaxProbes ports are tried, even when one further is free.
	big := Ports{Lo: 1024, Hi: 65535}
	tried := 0
	if _, ok := Allocate(big, 0, 0, func(p uint16) bool { tried++; return p != 1024+MaxProbes }); ok {
		t.Error("a port beyond the probes was taken")
	}
	if tried != MaxProbes {
		t.Errorf("%d ports tried, want %d", tried, MaxProbes)
	}
}
