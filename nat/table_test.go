package nat

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpc/xdpc/conntrack"
)

// fullChecksum is the checksum of b computed from scratch (RFC 1071).
func fullChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// TestUpdateIsARecomputation changes random words of random headers and
// wants the incremental update to equal the checksum computed anew.
func TestUpdateIsARecomputation(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		b := make([]byte, 20)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		b[10], b[11] = 0, 0
		hc := fullChecksum(b)
		old := Words(b)
		for range 1 + r.IntN(4) {
			i := 2 * r.IntN(10)
			if i == 10 {
				continue
			}
			b[i], b[i+1] = byte(r.IntN(256)), byte(r.IntN(256))
		}
		if got, want := Update(hc, old, Words(b)), fullChecksum(b); got != want {
			t.Fatalf("update of % x: %#04x, want %#04x", b, got, want)
		}
	}
}

func TestUpdatePartialIsThePseudoSum(t *testing.T) {
	a, b, d := [4]byte{10, 0, 0, 5}, [4]byte{203, 0, 113, 1}, [4]byte{8, 8, 8, 8}
	field := PseudoSum(a, d, 6, 40)
	if got, want := UpdatePartial(field, Words(a[:]), Words(b[:])), PseudoSum(b, d, 6, 40); got != want {
		t.Errorf("partial update %#04x, want %#04x", got, want)
	}
}

func ep(s string, port uint16) conntrack.Endpoint {
	return conntrack.Endpoint{Addr: netip.MustParseAddr(s), Port: port}
}

func TestAliasLeadsBackToItsFlow(t *testing.T) {
	for _, c := range []struct {
		proto    uint8
		src, dst conntrack.Endpoint
		tr       Translation
	}{
		{17, ep("10.0.0.5", 40000), ep("8.8.8.8", 53), Translation{Kind: conntrack.NATSource, To: ep("203.0.113.1", 20001)}},
		{1, ep("10.0.0.5", 7), ep("8.8.8.8", 7), Translation{Kind: conntrack.NATSource, To: ep("203.0.113.1", 20001)}},
		{6, ep("198.51.100.9", 5555), ep("203.0.113.1", 8080), Translation{Kind: conntrack.NATDestination, To: ep("10.0.0.5", 80)}},
	} {
		k, srcIsLo := conntrack.NewKey(4, c.proto, c.src, c.dst)
		c.tr.Lo = srcIsLo == (c.tr.Kind == conntrack.NATSource)
		ak, a := c.tr.Alias(k, 99)
		if got := FlowKey(ak, a); got != k {
			t.Errorf("alias %+v of %+v leads to %+v", a, k, got)
		}
		if c.proto == 1 && (ak.Lo.Port != 20001 || ak.Hi.Port != 20001) {
			t.Errorf("echo alias key %+v: the identifier is both ports", ak)
		}
	}
}

func TestTableTranslations(t *testing.T) {
	tb := NewTable(7, []Reserved{{17, 20000}})
	k, _ := conntrack.NewKey(4, 17, ep("10.0.0.5", 20000), ep("8.8.8.8", 53))
	r := Ports{20000, 20001}
	p, ok := tb.Allocate(r, netip.MustParseAddr("203.0.113.1"), k, k.Lo, k.Hi, 1)
	if !ok || p != 20001 {
		t.Fatalf("allocated %d, %v; want 20001 (20000 is reserved)", p, ok)
	}
	tr := Translation{Kind: conntrack.NATSource, Lo: true, To: ep("203.0.113.1", p)}
	tb.Translate(k, tr, 10)
	if _, ok := tb.Allocate(r, netip.MustParseAddr("203.0.113.1"), conntrack.Key{Family: 4, Proto: 17, Lo: ep("10.0.0.6", 1), Hi: k.Hi}, ep("10.0.0.6", 1), k.Hi, 5); ok {
		t.Error("allocated from a range whose ports are reserved or taken")
	}
	// The flow's own alias does not count: a reopened flow keeps its port.
	if p, ok := tb.Allocate(r, netip.MustParseAddr("203.0.113.1"), k, k.Lo, k.Hi, 5); !ok || p != 20001 {
		t.Errorf("reopened flow allocated %d, %v", p, ok)
	}
	tb.Refresh(k, 20)
	if a := tb.Aliases(15); len(a) != 1 || a[0].Alias.Expires != 20 {
		t.Errorf("refreshed aliases %+v", a)
	}
	tb.Forget(k)
	if a := tb.Aliases(0); len(a) != 0 {
		t.Errorf("aliases of a forgotten flow: %+v", a)
	}
	if _, ok := tb.Translation(k); ok {
		t.Error("a forgotten flow keeps its translation")
	}
}

func TestDescribe(t *testing.T) {
	k, srcIsLo := conntrack.NewKey(4, 17, ep("10.0.0.5", 40000), ep("8.8.8.8", 53))
	e := conntrack.Entry{Expires: 1}
	if srcIsLo {
		e.Flags |= conntrack.FlagOrigLo
	}
	f := conntrack.Flow{Key: k, Entry: e}
	if got, want := Describe(f), "10.0.0.5:40000 -> 8.8.8.8:53"; got != want {
		t.Errorf("untranslated: %q, want %q", got, want)
	}
	Translation{Kind: conntrack.NATSource, Lo: srcIsLo, To: ep("203.0.113.1", 20001)}.Record(&f.Entry)
	if got, want := Describe(f), "10.0.0.5:40000 -> 8.8.8.8:53 via 203.0.113.1:20001"; got != want {
		t.Errorf("source NAT: %q, want %q", got, want)
	}
	k, srcIsLo = conntrack.NewKey(4, 6, ep("198.51.100.9", 5000), ep("203.0.113.1", 8080))
	f = conntrack.Flow{Key: k}
	if srcIsLo {
		f.Entry.Flags |= conntrack.FlagOrigLo
	}
	Translation{Kind: conntrack.NATDestination, Lo: !srcIsLo, To: ep("10.0.0.5", 80)}.Record(&f.Entry)
	if got, want := Describe(f), "198.51.100.9:5000 -> 203.0.113.1:8080 to 10.0.0.5:80"; got != want {
		t.Errorf("destination NAT: %q, want %q", got, want)
	}
	if got := TranslationOf(f.Entry); got.To != ep("10.0.0.5", 80) || got.Kind != conntrack.NATDestination {
		t.Errorf("translation read back: %+v", got)
	}
}
