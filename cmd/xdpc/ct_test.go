package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/runtime"
)

// TestLeftText: ct list shows time left to the second, in days past one.
func TestLeftText(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{999 * time.Millisecond, "0s"},
		{59*time.Second + 900*time.Millisecond, "59s"},
		{2*time.Minute - time.Millisecond, "1m59s"},
		{time.Hour + 30*time.Second, "1h0m"},
		{24*time.Hour - time.Second, "23h59m"},
		{5*24*time.Hour - time.Second, "4d23h59m"},
		{5 * 24 * time.Hour, "5d"},
		{5*24*time.Hour + time.Minute, "5d1m"},
	} {
		if got := leftText(tt.d); got != tt.want {
			t.Errorf("leftText(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// natFlow is a flow from src to dst as the table keys it, translated as
// kind says to addr:port.
func natFlow(proto uint8, src, dst string, kind conntrack.NATKind, to string) runtime.ConntrackFlow {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	from := conntrack.Endpoint{Addr: s.Addr(), Port: s.Port()}
	k, _ := conntrack.NewKey(4, proto, from, conntrack.Endpoint{Addr: d.Addr(), Port: d.Port()})
	e := conntrack.Entry{Expires: 2e9, Created: 1e9, State: conntrack.TCPEstablished, NAT: kind}
	if k.Lo == from {
		e.Flags |= conntrack.FlagOrigLo
	}
	if kind != conntrack.NATNone {
		x := netip.MustParseAddrPort(to)
		e.NATAddr, e.NATPort = x.Addr().As4(), x.Port()
		// The rewritten end: the originator's for source NAT.
		e.NATLo = (kind == conntrack.NATSource) == (k.Lo == from)
	}
	return runtime.ConntrackFlow{Flow: conntrack.Flow{Key: k, Entry: e}}
}

// TestFlowTextNAT: ct list shows a translation after the flow: "via" what
// the originator's end became, "to" what the responder's end became.
func TestFlowTextNAT(t *testing.T) {
	for _, tt := range []struct {
		f    runtime.ConntrackFlow
		want string
	}{
		{natFlow(17, "10.0.0.5:40000", "8.8.8.8:53", conntrack.NATSource, "203.0.113.1:20001"), "10.0.0.5:40000 -> 8.8.8.8:53 via 203.0.113.1:20001"},
		{natFlow(6, "198.51.100.9:50000", "203.0.113.1:8080", conntrack.NATDestination, "10.0.0.5:80"), "198.51.100.9:50000 -> 203.0.113.1:8080 to 10.0.0.5:80"},
		{natFlow(1, "10.0.0.5:7", "8.8.8.8:7", conntrack.NATSource, "203.0.113.1:20007"), "10.0.0.5 -> 8.8.8.8 id 7 via 203.0.113.1 id 20007"},
		{natFlow(47, "10.0.0.7:0", "192.0.2.1:0", conntrack.NATSource, "203.0.113.7:0"), "10.0.0.7 -> 192.0.2.1 via 203.0.113.7"},
		{natFlow(6, "10.0.0.5:40000", "192.0.2.1:22", conntrack.NATNone, ""), "10.0.0.5:40000 -> 192.0.2.1:22"},
		// A kind byte without an address is no translation.
		{natFlow(6, "10.0.0.5:40000", "192.0.2.1:22", conntrack.NATSource, "0.0.0.0:0"), "10.0.0.5:40000 -> 192.0.2.1:22"},
	} {
		if got := flowText(tt.f); got != tt.want {
			t.Errorf("flowText = %q, want %q", got, tt.want)
		}
	}
}

// TestJSONListingNAT: ct list --json gives the translation's kind, address
// and port, and nothing for an untranslated flow.
func TestJSONListingNAT(t *testing.T) {
	ls := &runtime.ConntrackListing{Netns: "host", Now: 1e9, Flows: []runtime.ConntrackFlow{
		natFlow(17, "10.0.0.5:40000", "8.8.8.8:53", conntrack.NATSource, "203.0.113.1:20001"),
		natFlow(6, "10.0.0.5:40000", "192.0.2.1:22", conntrack.NATNone, ""),
	}}
	b, err := json.Marshal(jsonListing(ls))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, `"src":"10.0.0.5","src_port":40000,"dst":"8.8.8.8","dst_port":53`) ||
		!strings.Contains(s, `"nat":"snat","nat_addr":"203.0.113.1","nat_port":20001`) {
		t.Errorf("json %s lacks the translated flow", s)
	}
	if strings.Count(s, `"nat"`) != 1 {
		t.Errorf("json %s: want one nat field, for the translated flow", s)
	}
}
