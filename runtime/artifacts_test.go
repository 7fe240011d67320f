package runtime_test

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/artifact"
)

// Verdicts (enum xdp_action).
const (
	xdpDrop = 1
	xdpPass = 2
)

var (
	u8Type  = &btf.Int{Name: "__u8", Size: 1}
	u16Type = &btf.Int{Name: "__u16", Size: 2}
	u32Type = &btf.Int{Name: "__u32", Size: 4}
	u64Type = &btf.Int{Name: "__u64", Size: 8}
)

func counterType() btf.Type {
	return &btf.Struct{Name: "xdpc_counter", Size: 16, Members: []btf.Member{
		{Name: "packets", Type: u64Type, Offset: 0},
		{Name: "bytes", Type: u64Type, Offset: 64},
	}}
}

func lpmKeyType(name string, addrLen uint32) btf.Type {
	return &btf.Struct{Name: name, Size: 4 + addrLen, Members: []btf.Member{
		{Name: "prefixlen", Type: u32Type, Offset: 0},
		{Name: "addr", Type: &btf.Array{Index: u32Type, Type: u8Type, Nelems: addrLen}, Offset: 32},
	}}
}

// Counter slots of probeArtifact, in the order it tries the sets.
const (
	slotDefault = iota // no set holds the frame: drop
	slotMAC            // source MAC in set macs
	slotV4             // IPv4 source (offset 26) in set nets
	slotV6             // IPv6 source (offset 22) in set nets
	slotPort           // IPv4 UDP/TCP destination port (offset 36) in set ports
	slotCount
)

// probeArtifact returns a hand-written artifact with a set of every kind:
// cidr (two LPM tries), port and mac (hashes). For frames of at least 38
// bytes, its program looks up, in order, the source MAC, the IPv4 source,
// the IPv6 source and the IPv4 transport destination port at their offsets
// in an untagged frame; the first hit passes and counts on its slot,
// otherwise the frame is dropped on the default slot.
func probeArtifact(nets, ports, macs []string) *artifact.Artifact {
	const (
		rSlot = asm.R6
		rData = asm.R7
		rEnd  = asm.R8
		rLen  = asm.R9
	)
	// probe looks the key at fp+keyOff up in m; a hit goes to count with slot.
	probe := func(m string, keyOff int32, slot int32) asm.Instructions {
		return asm.Instructions{
			asm.LoadMapPtr(asm.R1, 0).WithReference(m),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, keyOff),
			asm.FnMapLookupElem.Call(),
			asm.Mov.Imm(rSlot, slot),
			asm.JNE.Imm(asm.R0, 0, "count"),
		}
	}
	// copyWords copies n 32-bit words from the frame at off to fp+dst.
	copyWords := func(off int16, dst int16, n int) asm.Instructions {
		var insns asm.Instructions
		for i := range int16(n) {
			insns = append(insns,
				asm.LoadMem(asm.R0, rData, off+4*i, asm.Word),
				asm.StoreMem(asm.R10, dst+4*i, asm.R0, asm.Word))
		}
		return insns
	}

	insns := asm.Instructions{
		asm.LoadMem(rData, asm.R1, 0, asm.Word),
		asm.LoadMem(rEnd, asm.R1, 4, asm.Word),
		asm.Mov.Reg(rLen, rEnd),
		asm.Sub.Reg(rLen, rData),
		asm.Mov.Imm(rSlot, slotDefault),
		asm.Mov.Reg(asm.R2, rData),
		asm.Add.Imm(asm.R2, 38),
		asm.JGT.Reg(asm.R2, rEnd, "count"),

		// MAC key at fp-8: frame[6:12].
		asm.LoadMem(asm.R0, rData, 6, asm.Word),
		asm.StoreMem(asm.R10, -8, asm.R0, asm.Word),
		asm.LoadMem(asm.R0, rData, 10, asm.Half),
		asm.StoreMem(asm.R10, -4, asm.R0, asm.Half),
	}
	insns = append(insns, probe("macs", -8, slotMAC)...)
	// IPv4 key at fp-32: {32, frame[26:30]}.
	insns = append(insns, asm.Mov.Imm(asm.R0, 32), asm.StoreMem(asm.R10, -32, asm.R0, asm.Word))
	insns = append(insns, copyWords(26, -28, 1)...)
	insns = append(insns, probe("nets_v4", -32, slotV4)...)
	// IPv6 key at fp-32: {128, frame[22:38]}.
	insns = append(insns, asm.Mov.Imm(asm.R0, 128), asm.StoreMem(asm.R10, -32, asm.R0, asm.Word))
	insns = append(insns, copyWords(22, -28, 4)...)
	insns = append(insns, probe("nets_v6", -32, slotV6)...)
	// Port key at fp-2: frame[36:38] in host order.
	insns = append(insns,
		asm.LoadMem(asm.R0, rData, 36, asm.Half),
		asm.HostTo(asm.BE, asm.R0, asm.Half),
		asm.StoreMem(asm.R10, -2, asm.R0, asm.Half))
	insns = append(insns, probe("ports", -2, slotPort)...)
	insns = append(insns, asm.Mov.Imm(rSlot, slotDefault))
	insns = append(insns, countAndReturn(rSlot, rLen)...)

	return &artifact.Artifact{
		Program:      "xdpc_probe",
		Instructions: insns,
		Maps: []artifact.Map{
			counterMap(slotCount),
			{Name: "nets_v4", Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 1, MaxEntries: 16, Flags: artifact.MapFlagNoPrealloc, Key: lpmKeyType("xdpc_lpm_v4", 4), Value: u8Type},
			{Name: "nets_v6", Type: ebpf.LPMTrie, KeySize: 20, ValueSize: 1, MaxEntries: 16, Flags: artifact.MapFlagNoPrealloc, Key: lpmKeyType("xdpc_lpm_v6", 16), Value: u8Type},
			{Name: "ports", Type: ebpf.Hash, KeySize: 2, ValueSize: 1, MaxEntries: 256, Key: u16Type, Value: u8Type},
			{Name: "macs", Type: ebpf.Hash, KeySize: 6, ValueSize: 1, MaxEntries: 16, Key: &btf.Array{Index: u32Type, Type: u8Type, Nelems: 6}, Value: u8Type},
		},
		Manifest: artifact.Manifest{
			Format:  artifact.ManifestFormat,
			Policy:  "probe",
			Program: "xdpc_probe",
			Counters: artifact.CounterTable{Map: "counters", Slots: []artifact.CounterSlot{
				{Slot: slotDefault, Name: "default", Kind: artifact.SlotDefault},
				{Slot: slotMAC, Name: "mac", Kind: artifact.SlotRule},
				{Slot: slotV4, Name: "v4", Kind: artifact.SlotRule},
				{Slot: slotV6, Name: "v6", Kind: artifact.SlotRule},
				{Slot: slotPort, Name: "port", Kind: artifact.SlotRule},
			}},
			Sets: []artifact.SetMap{
				{Set: "nets", Type: artifact.SetCIDR, MaxElements: 16, V4Map: "nets_v4", V6Map: "nets_v6", Elements: elements(artifact.SetCIDR, nets)},
				{Set: "ports", Type: artifact.SetPort, MaxElements: 256, Map: "ports", Elements: elements(artifact.SetPort, ports)},
				{Set: "macs", Type: artifact.SetMAC, MaxElements: 16, Map: "macs", Elements: elements(artifact.SetMAC, macs)},
			},
		},
	}
}

// elements parses the elements of a set of type t written in a test.
func elements(t artifact.SetType, texts []string) artifact.Elements {
	e, err := artifact.ParseElements(t, texts)
	if err != nil {
		panic(err)
	}
	return e
}

// counterMap is the counters map of a test artifact with n slots.
func counterMap(n uint32) artifact.Map {
	return artifact.Map{Name: "counters", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: n, Key: u32Type, Value: counterType()}
}

// countAndReturn adds one packet of rLen bytes to counters[rSlot] and
// returns XDP_DROP for the default slot, XDP_PASS for any other.
func countAndReturn(rSlot, rLen asm.Register) asm.Instructions {
	return asm.Instructions{
		asm.StoreMem(asm.R10, -40, rSlot, asm.Word).WithSymbol("count"),
		asm.LoadMapPtr(asm.R1, 0).WithReference("counters"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -40),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "verdict"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
		asm.Add.Reg(asm.R1, rLen),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("verdict"),
		asm.JNE.Imm(rSlot, slotDefault, "exit"),
		asm.Mov.Imm(asm.R0, xdpDrop),
		asm.Return().WithSymbol("exit"),
	}
}

// passArtifact returns an artifact without maps whose program returns XDP_PASS.
func passArtifact() *artifact.Artifact {
	return &artifact.Artifact{
		Program:      "xdpc_pass",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()},
		Manifest:     artifact.Manifest{Format: artifact.ManifestFormat, Policy: "pass", Program: "xdpc_pass"},
	}
}

// rejectedSource is the source comment of the instruction rejectedArtifact
// is refused at.
const rejectedSource = `7:5 rule "ssh": dst_port`

// rejectedArtifact returns an artifact the verifier refuses at instruction
// 2: it returns an uninitialised register.
func rejectedArtifact() *artifact.Artifact {
	return &artifact.Artifact{
		Program: "xdpc_bad",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, xdpPass).WithSource(asm.Comment("entry")),
			asm.Mov.Imm(asm.R1, 0).WithSource(asm.Comment("entry")),
			asm.Mov.Reg(asm.R0, asm.R5).WithSource(asm.Comment(rejectedSource)),
			asm.Return().WithSource(asm.Comment("epilogue")),
		},
		Manifest: artifact.Manifest{Format: artifact.ManifestFormat, Policy: "bad", Program: "xdpc_bad"},
	}
}

func elfBytes(t testing.TB, a *artifact.Artifact) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := a.WriteELF(&buf); err != nil {
		t.Fatalf("write artifact: %v", err)
	}
	return buf.Bytes()
}

// Addresses of the test frames.
var (
	srcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
)

// udpFrame returns an untagged Ethernet frame carrying UDP from src to dst
// port dport.
func udpFrame(t testing.TB, mac net.HardwareAddr, src, dst string, dport uint16) []byte {
	t.Helper()
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: dstMAC}
	udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(dport)}
	var ip gopacket.SerializableLayer
	if s.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
		if err := udp.SetNetworkLayerForChecksum(ip4); err != nil {
			t.Fatal(err)
		}
		ip = ip4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
		if err := udp.SetNetworkLayerForChecksum(ip6); err != nil {
			t.Fatal(err)
		}
		ip = ip6
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload("xdpc")); err != nil {
		t.Fatalf("serialize frame: %v", err)
	}
	return buf.Bytes()
}
