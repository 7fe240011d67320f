package livegen_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/internal/livegen"
	"github.com/xdpc/xdpc/internal/nstest"
)

// udpFrame is an Ethernet + IPv4 + UDP frame, 192.0.2.1 -> 192.0.2.2 port 9.
func udpFrame(t *testing.T) []byte {
	t.Helper()
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01},
		DstMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02},
		EthernetType: layers.EthernetTypeIPv4,
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(192, 0, 2, 1), DstIP: net.IPv4(192, 0, 2, 2)}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 9}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload("xdpc")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSendReachesPeer sends a bounded number of frames into a veth whose
// peer drops them in XDP: every frame sent either ran through the peer's
// program or was refused by its full ring, and the sender's and the
// receiver's counters agree.
func TestSendReachesPeer(t *testing.T) {
	ns := nstest.New(t)
	_, dut := ns.Veth(t, "gen0", "dut0")
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}, // XDP_DROP
		License:      "GPL",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	var lk link.Link
	ns.Do(t, func() {
		lk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: dut, Flags: link.XDPDriverMode})
	})
	if err != nil {
		t.Fatalf("attach xdp to dut0: %v", err)
	}
	defer lk.Close()

	const want = 1_000_000
	res, err := livegen.Send(context.Background(), livegen.Options{
		Netns: ns.Name, Interface: "gen0", Frame: udpFrame(t),
		Frames: want, Duration: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d frames in %s: %.0f frames/s, %d runs interrupted", res.Sent, res.Elapsed.Round(time.Millisecond), res.Rate(), res.Interrupted)
	if res.Sent != want {
		t.Errorf("sent %d frames, want %d", res.Sent, want)
	}
	gen, err := livegen.ReadVethStats(ns.Name, "gen0")
	if err != nil {
		t.Fatal(err)
	}
	var got livegen.VethStats
	deadline := time.Now().Add(2 * time.Second)
	for {
		if got, err = livegen.ReadVethStats(ns.Name, "dut0"); err != nil {
			t.Fatal(err)
		}
		if got.XDPPackets >= gen.Xmit || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("gen0: %+v; dut0: %+v", gen, got)
	if res.Interrupted == 0 && gen.Xmit+gen.XmitErrors != res.Sent {
		t.Errorf("gen0 put %d frames on the ring and had %d refused, sent %d", gen.Xmit, gen.XmitErrors, res.Sent)
	}
	if got.XDPPackets != gen.Xmit || got.XDPDrops != gen.Xmit {
		t.Errorf("dut0's program ran on %d frames and dropped %d; gen0 put %d on its ring", got.XDPPackets, got.XDPDrops, gen.Xmit)
	}
}

// TestSendStopsOnItsOwn bounds a run by time alone.
func TestSendStopsOnItsOwn(t *testing.T) {
	ns := nstest.New(t)
	ns.Veth(t, "gen0", "dut0")
	res, err := livegen.Send(context.Background(), livegen.Options{
		Netns: ns.Name, Interface: "gen0", Frame: udpFrame(t),
		Frames: 1 << 62, Duration: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d frames in %s (no program on dut0: the veth freed them)", res.Sent, res.Elapsed.Round(time.Millisecond))
	if res.Sent == 0 || res.Sent >= 1<<62 {
		t.Errorf("sent %d frames", res.Sent)
	}
}
