package compiler

import (
	"net/netip"
	"testing"

	"github.com/xdpc/xdpc/conntrack"
)

// TestTrackerTablesMatchConntrack decodes the constants the tracker and
// the commit are emitted from and holds them to package conntrack: the
// class of every TCP flags byte, every transition of the state machine,
// the assured states, and the first and replied states of the kinds
// without a state machine (through conntrack.Table itself).
func TestTrackerTablesMatchConntrack(t *testing.T) {
	classes := tcpClassTable()
	for f := 0; f < 256; f++ {
		idx := f&7 | (f&0x10)>>1
		if got, want := conntrack.TCPClass(classes>>(4*idx)&0xf), conntrack.ClassifyTCP(uint8(f)); got != want {
			t.Errorf("flags %#x: class %s, conntrack says %s", f, got, want)
		}
	}
	for _, d := range []conntrack.Dir{conntrack.Original, conntrack.Reply} {
		for _, c := range tcpClasses {
			row := tcpTransitions(d, c)
			for _, s := range conntrack.TCPStates {
				got := conntrack.State(row >> (4 * uint(s)) & 0xf)
				want, moved := conntrack.NextTCP(s, d, c)
				if !moved {
					want = conntrack.StateNone // the nibble of "stays"
				}
				if got != want {
					t.Errorf("%s %s in %s: nibble %d, conntrack says %s (moved %v)", d, c, s, got, want, moved)
				}
			}
		}
	}
	assured := assuredStates()
	for _, s := range conntrack.States() {
		if got := assured>>uint(s)&1 == 1; got != s.Assured() {
			t.Errorf("state %s: assured %v, conntrack says %v", s, got, s.Assured())
		}
	}

	a := conntrack.Endpoint{Addr: netip.MustParseAddr("10.0.0.1"), Port: 1000}
	b := conntrack.Endpoint{Addr: netip.MustParseAddr("10.0.0.2"), Port: 2000}
	packet := func(k conntrack.Kind, src, dst conntrack.Endpoint) *conntrack.Packet {
		return &conntrack.Packet{Kind: k, Family: 4, Proto: 99, Src: src, Dst: dst, TCPFlags: 0x02}
	}
	state := func(tbl *conntrack.Table, now uint64) conntrack.State {
		fs := tbl.Flows(now)
		if len(fs) != 1 {
			t.Fatalf("%d flows, want 1", len(fs))
		}
		return fs[0].Entry.State
	}
	for _, k := range []conntrack.Kind{conntrack.KindTCP, conntrack.KindUDP, conntrack.KindEchoRequest, conntrack.KindOther} {
		tbl := conntrack.NewTable(conntrack.Timeouts{})
		p := packet(k, a, b)
		tbl.Commit(p, tbl.Status(p, 1), 1, false)
		if got, want := ctFirstState[k], state(tbl, 1); got != want {
			t.Errorf("kind %d: first state %s, conntrack says %s", k, got, want)
		}
		if k == conntrack.KindTCP {
			continue
		}
		for _, rk := range []conntrack.Kind{k, conntrack.KindEchoReply} {
			if rk == conntrack.KindEchoReply && k != conntrack.KindEchoRequest {
				continue
			}
			tbl := conntrack.NewTable(conntrack.Timeouts{})
			tbl.Commit(p, tbl.Status(p, 1), 1, false)
			r := packet(rk, b, a)
			tbl.Commit(r, tbl.Status(r, 2), 2, false)
			if got, want := ctRepliedState[rk], state(tbl, 2); got != want {
				t.Errorf("kind %d replying to %d: state %s, conntrack says %s", rk, k, got, want)
			}
		}
	}
	if len(ctFirstState) != 4 || len(ctRepliedState) != 4 {
		t.Errorf("first states of %d kinds, replied states of %d, want 4 and 4", len(ctFirstState), len(ctRepliedState))
	}
}

// TestEgressName keeps the egress program's name apart from the XDP
// program's, within the kernel's limit.
func TestEgressName(t *testing.T) {
	for _, policyName := range []string{"host", "a-long-policy-name", "out_out_out_out_x", "tc", "egress"} {
		xdp := programName(policyName)
		eg := egressName(xdp)
		if eg == xdp || len(eg) > maxObjectName {
			t.Errorf("policy %q: egress program %q, XDP program %q", policyName, eg, xdp)
		}
	}
}
