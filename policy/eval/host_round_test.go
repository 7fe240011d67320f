package eval

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/policy"
)

// tuple is what the round trip varies of a packet.
type tuple struct {
	kind     string // tcp, udp, echo, gre
	src, dst string
	sp, dp   uint16
}

func (u tuple) frame(t *testing.T, reply bool) []byte {
	src, dst, sp, dp := u.src, u.dst, u.sp, u.dp
	if reply {
		src, dst, sp, dp = dst, src, dp, sp
	}
	switch u.kind {
	case "tcp":
		flags := uint8(0x02)
		if reply {
			flags = 0x12
		}
		return tcpFrame(t, src, sp, dst, dp, flags)
	case "udp":
		return udpFrame(t, src, sp, dst, dp)
	case "echo":
		typ := uint8(8)
		if reply {
			typ = 0
		}
		return echoFrame(t, src, dst, typ, sp)
	}
	return greFrame(t, src, dst)
}

// tupleOf reads a frame's tuple back with gopacket.
func tupleOf(t *testing.T, frame []byte) tuple {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	u := tuple{src: ip.SrcIP.String(), dst: ip.DstIP.String(), kind: "gre"}
	switch l := pkt.TransportLayer().(type) {
	case *layers.TCP:
		u.kind, u.sp, u.dp = "tcp", uint16(l.SrcPort), uint16(l.DstPort)
	case *layers.UDP:
		u.kind, u.sp, u.dp = "udp", uint16(l.SrcPort), uint16(l.DstPort)
	}
	if icmp, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		u.kind, u.sp, u.dp = "echo", icmp.Id, icmp.Id
	}
	return u
}

// TestRoundTrips sends many random flows out through the masquerade and
// the static mapping and their replies and errors back: every frame that
// leaves verifies, every reply comes back as a reply to what the inside
// host sent, every error as an error about it, and every translated
// tuple is unique.
func TestRoundTrips(t *testing.T) {
	h := newNATHost(t, "20000-20031")
	r := rand.New(rand.NewPCG(3, 4))
	kinds := []string{"tcp", "udp", "echo", "gre"}
	seen := map[tuple]tuple{}
	exhausted := 0
	for i := range 400 {
		u := tuple{
			kind: kinds[r.IntN(len(kinds))],
			src:  fmt.Sprintf("10.0.0.%d", 2+r.IntN(8)),
			dst:  []string{resolver, "9.9.9.9"}[r.IntN(2)],
			sp:   uint16(1 + r.IntN(65535)),
			dp:   uint16(1 + r.IntN(3)),
		}
		if u.kind == "echo" {
			u.dp = u.sp
		}
		if u.kind == "gre" {
			u.sp, u.dp = 0, 0
		}
		now := uint64(i + 1)
		out := h.Ingress(inside, u.frame(t, false), now)
		if out.Rule == RuleNATExhausted {
			exhausted++
			continue
		}
		if out.Verdict != policy.ActionPass {
			t.Fatalf("%+v: %+v", u, out.Result)
		}
		checkChecksums(t, out.Frame)
		v := tupleOf(t, out.Frame)
		if prev, dup := seen[v]; dup && prev != u {
			t.Fatalf("%+v and %+v both leave as %+v", prev, u, v)
		}
		seen[v] = u
		wantSrc := public
		if u.src == "10.0.0.7" {
			wantSrc = "203.0.113.7"
		}
		if v.src != wantSrc || v.dst != u.dst || v.dp != u.dp && u.kind != "echo" {
			t.Fatalf("%+v leaves as %+v", u, v)
		}
		back := h.Ingress(outside, v.frame(t, true), now)
		if want := u.frame(t, true); !bytes.Equal(back.Frame, want) {
			t.Fatalf("reply to %+v (out as %+v) comes back as\n% x\nwant\n% x", u, v, back.Frame, want)
		}
		if u.kind == "gre" {
			continue
		}
		errIn := icmpErrorFrame(t, "192.0.2.254", v.src, 11, 0, v.frame(t, false))
		errOut := h.Ingress(outside, errIn, now)
		if want := icmpErrorFrame(t, "192.0.2.254", u.src, 11, 0, u.frame(t, false)); !bytes.Equal(errOut.Frame, want) {
			t.Fatalf("error about %+v comes back as\n% x\nwant\n% x", u, errOut.Frame, want)
		}
		checkChecksums(t, errOut.Frame)
	}
	t.Logf("%d translated, %d exhausted", len(seen), exhausted)
	if exhausted == 0 || len(seen) < 100 {
		t.Errorf("%d flows translated, %d exhausted: the test should exercise both", len(seen), exhausted)
	}
}
