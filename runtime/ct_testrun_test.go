package runtime_test

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/internal/cttest"
	"github.com/xdpc/xdpc/runtime"
)

// trackingELF returns a hand-written artifact that tracks (cttest).
func trackingELF(t testing.TB, o cttest.Options) []byte {
	t.Helper()
	elf, err := cttest.ELF(o)
	if err != nil {
		t.Fatalf("write tracking artifact: %v", err)
	}
	return elf
}

// tcpFrame returns an untagged Ethernet frame carrying a TCP segment with
// the given flags (wire letters as in tcpdump: "S", "SA", "A").
func tcpFrame(t testing.TB, src, dst string, sport, dport uint16, flags string) []byte {
	t.Helper()
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Window: 1024}
	for _, f := range flags {
		switch f {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'F':
			tcp.FIN = true
		case 'R':
			tcp.RST = true
		}
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, tcp); err != nil {
		t.Fatalf("serialize frame: %v", err)
	}
	return buf.Bytes()
}

// addrs compares addresses for cmp.Diff.
var addrs = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func endpoint(addr string, port uint16) conntrack.Endpoint {
	return conntrack.Endpoint{Addr: netip.MustParseAddr(addr), Port: port}
}

// key returns the key and the originator flag of a packet from src to dst.
func key(proto uint8, src, dst conntrack.Endpoint) (conntrack.Key, conntrack.Flags) {
	k, srcIsLo := conntrack.NewKey(4, proto, src, dst)
	if srcIsLo {
		return k, conntrack.FlagOrigLo
	}
	return k, 0
}

// TestRunEgressRecordsInTheTable runs frames the host sends through a
// tracking artifact's egress program under BPF_PROG_TEST_RUN: each lands
// in the map its state belongs in, keyed as conntrack keys it, and aging
// the table moves its times back by exactly the age.
func TestRunEgressRecordsInTheTable(t *testing.T) {
	prog, err := runtime.NewTestProgram(trackingELF(t, cttest.Options{Timeout: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	if prog.Egress() == nil {
		t.Fatal("no egress program loaded")
	}
	frames := [][]byte{
		udpFrame(t, srcMAC, "192.0.2.9", "192.0.2.1", 53),
		// The sender is the higher endpoint: the key starts with the other.
		tcpFrame(t, "198.51.100.2", "198.51.100.1", 22, 40001, "A"),
	}
	for _, f := range frames {
		ret, err := prog.RunEgress(f)
		if err != nil {
			t.Fatal(err)
		}
		if ret != -1 {
			t.Errorf("egress returned %d, want -1 (TC_ACT_UNSPEC)", ret)
		}
	}
	udpKey, udpOrig := key(17, endpoint("192.0.2.9", 40000), endpoint("192.0.2.1", 53))
	tcpKey, tcpOrig := key(6, endpoint("198.51.100.2", 22), endpoint("198.51.100.1", 40001))
	if tcpOrig != 0 {
		t.Fatalf("test frame's sender is the key's lower endpoint; the test wants it higher")
	}
	type flow struct {
		Key     conntrack.Key
		State   conntrack.State
		Flags   conntrack.Flags
		Assured bool
	}
	read := func() []runtime.ConntrackFlow {
		t.Helper()
		flows, err := prog.ConntrackFlows()
		if err != nil {
			t.Fatal(err)
		}
		return flows
	}
	flows := read()
	var got []flow
	for _, f := range flows {
		got = append(got, flow{f.Key, f.Entry.State, f.Entry.Flags, f.Assured})
	}
	want := []flow{
		{udpKey, conntrack.UDPUnreplied, udpOrig | conntrack.FlagEgress, false},
		{tcpKey, conntrack.TCPEstablished, conntrack.FlagEgress | conntrack.FlagPickedUp, true},
	}
	if flows[0].Key.Encode()[1] == 6 {
		want[0], want[1] = want[1], want[0]
	}
	if diff := cmp.Diff(want, got, addrs); diff != "" {
		t.Fatalf("flows (-want +got):\n%s", diff)
	}
	if from, to := flows[len(flows)-1].Original(); from.Port == 0 || to.Port == 0 {
		t.Errorf("original direction %v -> %v", from, to)
	}

	if err := prog.AgeConntrack(25 * time.Second); err != nil {
		t.Fatal(err)
	}
	aged := read()
	for i := range flows {
		if d := flows[i].Entry.Expires - aged[i].Entry.Expires; d != uint64(25*time.Second) {
			t.Errorf("%v: expiry moved by %v, want 25s", flows[i].Key, time.Duration(d))
		}
		if d := flows[i].Entry.Created - aged[i].Entry.Created; d != uint64(25*time.Second) {
			t.Errorf("%v: creation moved by %v, want 25s", flows[i].Key, time.Duration(d))
		}
	}
	if err := prog.AgeConntrack(40 * time.Second); err != nil {
		t.Fatal(err)
	}
	if flows := read(); len(flows) != 0 {
		t.Errorf("after 65s of a 60s timeout: %d live flows, want none", len(flows))
	}
}

// TestRunEgressWithoutTracking: an artifact that does not track has
// neither an egress program nor a table to read.
func TestRunEgressWithoutTracking(t *testing.T) {
	prog, err := runtime.NewTestProgram(elfBytes(t, passArtifact()))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	if _, err := prog.RunEgress(udpFrame(t, srcMAC, "192.0.2.9", "192.0.2.1", 53)); !errors.Is(err, runtime.ErrNoEgress) {
		t.Errorf("RunEgress: %v, want ErrNoEgress", err)
	}
	if _, err := prog.ConntrackFlows(); !errors.Is(err, runtime.ErrNoTable) {
		t.Errorf("ConntrackFlows: %v, want ErrNoTable", err)
	}
	if err := prog.AgeConntrack(time.Second); !errors.Is(err, runtime.ErrNoTable) {
		t.Errorf("AgeConntrack: %v, want ErrNoTable", err)
	}
	if _, err := prog.RunEgress(make(net.HardwareAddr, 6)); err == nil {
		t.Errorf("RunEgress of 6 bytes: no error")
	}
}
