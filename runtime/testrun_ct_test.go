package runtime_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/runtime"
)

// ctPolicy passes everything and counts new and established packets.
const ctPolicy = `
policy "ct" {
  default = "pass"
  rule "new" {
    ct_state = "new"
    action   = "count"
  }
  rule "established" {
    ct_state = "established"
    action   = "count"
  }
}
`

// tcpSegment is an untagged IPv4 TCP frame.
func tcpSegment(t testing.TB, src, dst string, syn, ack bool) []byte {
	t.Helper()
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: s.Addr().AsSlice(), DstIP: d.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(s.Port()), DstPort: layers.TCPPort(d.Port()), SYN: syn, ACK: ack, Window: 512}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// onlyFlow returns the table's one live entry.
func onlyFlow(t *testing.T, prog *runtime.TestProgram) runtime.TableFlow {
	t.Helper()
	tbl, err := prog.ConntrackFlows()
	if err != nil {
		t.Fatal(err)
	}
	var live []runtime.TableFlow
	for _, f := range tbl.Flows {
		if tbl.Now < f.Entry.Expires {
			live = append(live, f)
		}
	}
	if len(live) != 1 {
		t.Fatalf("%d live entries, want 1: %+v", len(live), tbl.Flows)
	}
	return live[0]
}

// TestTestProgramConntrack runs a connection's first packets through an
// artifact's egress and XDP programs, ages the table past a timeout, and
// shares the table with a second artifact that reads the same entries.
func TestTestProgramConntrack(t *testing.T) {
	prog, err := runtime.NewTestProgram(compileSrc(t, ctPolicy))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	if !prog.Tracks() || prog.EgressProgram() == nil {
		t.Fatal("a policy matching ct_state gives no tracking artifact")
	}
	host, peer := "10.0.0.2:40000", "192.0.2.1:80"

	ret, err := prog.RunEgress(tcpSegment(t, host, peer, true, false))
	if err != nil {
		t.Fatal(err)
	}
	if ret != runtime.TCActUnspec {
		t.Errorf("egress returned %d, want %d", ret, runtime.TCActUnspec)
	}
	f := onlyFlow(t, prog)
	want, _ := conntrack.NewKey(4, 6, conntrack.Endpoint{Addr: netip.MustParseAddr("10.0.0.2"), Port: 40000},
		conntrack.Endpoint{Addr: netip.MustParseAddr("192.0.2.1"), Port: 80})
	if f.Key != want || f.Entry.State != conntrack.TCPSynSent || f.Entry.Flags&conntrack.FlagEgress == 0 || f.Assured {
		t.Errorf("after the host's SYN: %+v, want %v in syn_sent from egress, unassured", f, want)
	}

	out, err := prog.Run(tcpSegment(t, peer, host, true, true))
	if err != nil {
		t.Fatal(err)
	}
	if out.Action != artifact.ActionPass || len(out.Moved) != 2 || out.Moved[0] != 1 {
		t.Errorf("the SYN+ACK: %+v, want pass counted as established (slot 1) and by the default", out)
	}
	if f := onlyFlow(t, prog); f.Entry.State != conntrack.TCPSynRecv {
		t.Errorf("after the SYN+ACK: %s, want syn_recv", f.Entry.State)
	}

	// A second artifact on the same table sees the entry.
	other, err := prog.LoadSharingConntrack(compileSrc(t, ctPolicy))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if out, err := other.Run(tcpSegment(t, host, peer, false, true)); err != nil || out.Moved[0] != 1 {
		t.Errorf("the shared table's ACK: %+v, %v; want it counted as established", out, err)
	}
	if f := onlyFlow(t, prog); f.Entry.State != conntrack.TCPEstablished || !f.Assured {
		t.Errorf("after the ACK through the second program: %+v, want established in the assured map", f)
	}

	// Five days on, the entry is dead; a flush removes it.
	if err := prog.AgeConntrack(5*24*time.Hour + time.Second); err != nil {
		t.Fatal(err)
	}
	tbl, err := prog.ConntrackFlows()
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl.Flows) != 1 || tbl.Flows[0].Entry.Expires > tbl.Now {
		t.Errorf("aged five days: %+v (now %d), want one dead entry", tbl.Flows, tbl.Now)
	}
	if err := prog.FlushConntrack(); err != nil {
		t.Fatal(err)
	}
	if tbl, err := prog.ConntrackFlows(); err != nil || len(tbl.Flows) != 0 {
		t.Errorf("after a flush: %+v, %v", tbl.Flows, err)
	}
}
