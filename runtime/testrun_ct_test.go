package runtime_test

import (
	"errors"
	"net/netip"
	"testing"

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
func onlyFlow(t *testing.T, prog *runtime.TestProgram) runtime.ConntrackFlow {
	t.Helper()
	flows, err := prog.ConntrackFlows()
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 1 {
		t.Fatalf("%d live entries, want 1: %+v", len(flows), flows)
	}
	return flows[0]
}

// TestTestProgramSharesConntrack shares a program's connection table with
// a second artifact of another capacity, which reads and moves the same
// entries, and flushes the table.
func TestTestProgramSharesConntrack(t *testing.T) {
	prog, err := runtime.NewTestProgram(compileSrc(t, ctPolicy))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	host, peer := "10.0.0.2:40000", "192.0.2.1:80"
	if _, err := prog.RunEgress(tcpSegment(t, host, peer, true, false)); err != nil {
		t.Fatal(err)
	}
	if _, err := prog.Run(tcpSegment(t, peer, host, true, true)); err != nil {
		t.Fatal(err)
	}
	f := onlyFlow(t, prog)
	want, _ := conntrack.NewKey(4, 6, conntrack.Endpoint{Addr: netip.MustParseAddr("10.0.0.2"), Port: 40000},
		conntrack.Endpoint{Addr: netip.MustParseAddr("192.0.2.1"), Port: 80})
	if f.Key != want || f.Entry.State != conntrack.TCPSynRecv {
		t.Fatalf("after SYN out and SYN+ACK in: %+v, want %v in syn_recv", f, want)
	}

	other, err := prog.LoadSharingConntrack(compileSrc(t, "conntrack {\n  max_entries = 4096\n}\n"+ctPolicy))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	out, err := other.Run(tcpSegment(t, host, peer, false, true))
	if err != nil || out.Action != artifact.ActionPass || len(out.Moved) == 0 || out.Moved[0] != 1 {
		t.Errorf("the host's ACK through the second program: %+v, %v; want it counted as established (slot 1)", out, err)
	}
	if f := onlyFlow(t, prog); f.Entry.State != conntrack.TCPEstablished || !f.Assured {
		t.Errorf("after the ACK through the second program: %+v, want established in the assured map", f)
	}

	if err := prog.FlushConntrack(); err != nil {
		t.Fatal(err)
	}
	if flows, err := other.ConntrackFlows(); err != nil || len(flows) != 0 {
		t.Errorf("after a flush: %+v, %v", flows, err)
	}
	// Only a tracking artifact shares a table.
	stateless := compileSrc(t, "policy \"p\" {\n  default = \"pass\"\n}\n")
	if _, err := prog.LoadSharingConntrack(stateless); !errors.Is(err, runtime.ErrNoTable) {
		t.Errorf("sharing with a stateless artifact: %v, want ErrNoTable", err)
	}
}
