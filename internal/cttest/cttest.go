// Package cttest writes small artifacts that track connections, by hand,
// for the tests of the runtime and the CLI: their programs are a few dozen
// instructions whose effect on the connection table a test can predict
// exactly, independent of the compiler.
//
// The XDP program passes every frame. The TC egress program records every
// IPv4 TCP or UDP packet (IHL 5) the host sends, as the datapath keys it
// (conntrack.NewKey: the lower endpoint first, FlagOrigLo when that is the
// sender): a UDP packet as an unreplied flow in the unassured map, a TCP
// segment as an established connection picked up from egress in the
// assured map. It rewrites the entry on every packet and never drops one.
package cttest

import (
	"bytes"
	"time"

	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/conntrack"
)

// Names of the artifact's maps and programs.
const (
	AssuredMap   = "xdpc_ct_assured"
	UnassuredMap = "xdpc_ct_unassrd"
	XDPProgram   = "xdpc_track"
	EgressProg   = "xdpc_out_track"
)

// Options shape a tracking artifact.
type Options struct {
	// Policy names it (default "track").
	Policy string
	// Interfaces it attaches to in native mode (default dut0).
	Interfaces []string
	// Assured and Unassured are the maps' capacities (default 4096 each).
	Assured, Unassured uint32
	// Timeout is how long a recorded entry lives (default 60 s).
	Timeout time.Duration
	// Mark goes into the first reserved byte of every entry the egress
	// program writes, so that two versions are different programs and a
	// test can tell which one wrote an entry.
	Mark uint8
}

// Artifact returns the tracking artifact o describes.
func Artifact(o Options) *artifact.Artifact {
	if o.Policy == "" {
		o.Policy = "track"
	}
	if len(o.Interfaces) == 0 {
		o.Interfaces = []string{"dut0"}
	}
	if o.Assured == 0 {
		o.Assured = 4096
	}
	if o.Unassured == 0 {
		o.Unassured = 4096
	}
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	var ifaces []artifact.InterfaceBinding
	for _, name := range o.Interfaces {
		ifaces = append(ifaces, artifact.InterfaceBinding{Name: name, Mode: "native"})
	}
	return &artifact.Artifact{
		Program: XDPProgram,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, int32(artifact.ActionPass)).WithSymbol(XDPProgram),
			asm.Return(),
		},
		Egress: &artifact.Program{Name: EgressProg, Instructions: egress(o)},
		Maps: []artifact.Map{
			artifact.MapCTAssured.Map(AssuredMap, o.Assured),
			artifact.MapCTUnassured.Map(UnassuredMap, o.Unassured),
		},
		Manifest: artifact.Manifest{
			Format: artifact.ManifestFormat, Policy: o.Policy, Hash: "cttest", Program: XDPProgram,
			Egress:     EgressProg,
			Conntrack:  &artifact.ConntrackTables{Assured: AssuredMap, Unassured: UnassuredMap},
			Interfaces: ifaces,
		},
	}
}

// ELF returns the artifact o describes as an object file.
func ELF(o Options) ([]byte, error) {
	var buf bytes.Buffer
	if err := Artifact(o).WriteELF(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Stack layout of the egress program.
const (
	keyOff   = -40 // struct ct_key, 40 bytes
	entryOff = -72 // struct ct_entry, 32 bytes
)

// egress is the TC egress program.
func egress(o Options) asm.Instructions {
	const (
		rFlags = asm.R6 // the ctx first, then the entry's flags
		rData  = asm.R7
		rEnd   = asm.R8
		rProto = asm.R9
	)
	insns := asm.Instructions{
		asm.Mov.Reg(rFlags, asm.R1).WithSymbol(EgressProg),
		asm.LoadMem(rData, rFlags, 76, asm.Word), // __sk_buff.data
		asm.LoadMem(rEnd, rFlags, 80, asm.Word),  // __sk_buff.data_end
		asm.Mov.Reg(asm.R1, rData),
		asm.Add.Imm(asm.R1, 38), // Ethernet, IPv4 without options, ports
		asm.JGT.Reg(asm.R1, rEnd, "out"),
		asm.LoadMem(asm.R1, rData, 12, asm.Half),
		asm.JNE.Imm(asm.R1, 0x0008, "out"), // ETH_P_IP, network order
		asm.LoadMem(asm.R1, rData, 14, asm.Byte),
		asm.JNE.Imm(asm.R1, 0x45, "out"),
		asm.LoadMem(rProto, rData, 23, asm.Byte),
		asm.JEq.Imm(rProto, 17, "track"),
		asm.JNE.Imm(rProto, 6, "out"),
	}
	// The key, zeroed, then family and protocol.
	track := asm.Instructions{asm.Mov.Imm(asm.R1, 0).WithSymbol("track")}
	for i := int16(0); i < 5; i++ {
		track = append(track, asm.StoreMem(asm.R10, keyOff+8*i, asm.R1, asm.DWord))
	}
	track = append(track,
		asm.StoreImm(asm.R10, keyOff, 4, asm.Byte),
		asm.StoreMem(asm.R10, keyOff+1, rProto, asm.Byte),
		asm.LoadMem(asm.R2, rData, 26, asm.Word), // source address
		asm.LoadMem(asm.R3, rData, 30, asm.Word), // destination address
		asm.LoadMem(asm.R4, rData, 34, asm.Half), // source port
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.LoadMem(asm.R5, rData, 36, asm.Half), // destination port
		asm.HostTo(asm.BE, asm.R5, asm.Half),
		// conntrack.Less(dst, src): the addresses as little-endian words,
		// then the ports.
		asm.JLT.Reg(asm.R3, asm.R2, "swap"),
		asm.JGT.Reg(asm.R3, asm.R2, "keep"),
		asm.JLT.Reg(asm.R5, asm.R4, "swap"),
		asm.StoreMem(asm.R10, keyOff+4, asm.R4, asm.Half).WithSymbol("keep"),
		asm.StoreMem(asm.R10, keyOff+6, asm.R5, asm.Half),
		asm.StoreMem(asm.R10, keyOff+8, asm.R2, asm.Word),
		asm.StoreMem(asm.R10, keyOff+24, asm.R3, asm.Word),
		asm.Mov.Imm(rFlags, int32(conntrack.FlagOrigLo|conntrack.FlagEgress)),
		asm.Ja.Label("entry"),
		asm.StoreMem(asm.R10, keyOff+4, asm.R5, asm.Half).WithSymbol("swap"),
		asm.StoreMem(asm.R10, keyOff+6, asm.R4, asm.Half),
		asm.StoreMem(asm.R10, keyOff+8, asm.R3, asm.Word),
		asm.StoreMem(asm.R10, keyOff+24, asm.R2, asm.Word),
		asm.Mov.Imm(rFlags, int32(conntrack.FlagEgress)),
	)
	// The entry.
	track = append(track, asm.Mov.Imm(asm.R1, 0).WithSymbol("entry"))
	for i := int16(0); i < 4; i++ {
		track = append(track, asm.StoreMem(asm.R10, entryOff+8*i, asm.R1, asm.DWord))
	}
	track = append(track,
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.R10, entryOff+8, asm.R0, asm.DWord), // created
		asm.LoadImm(asm.R1, int64(o.Timeout), asm.DWord),
		asm.Add.Reg(asm.R0, asm.R1),
		asm.StoreMem(asm.R10, entryOff, asm.R0, asm.DWord), // expires
		asm.StoreImm(asm.R10, entryOff+18, int64(o.Mark), asm.Byte),
		asm.JEq.Imm(rProto, 17, "udp"),
		asm.Or.Imm(rFlags, int32(conntrack.FlagPickedUp)),
		asm.StoreImm(asm.R10, entryOff+16, int64(conntrack.TCPEstablished), asm.Byte),
		asm.StoreMem(asm.R10, entryOff+17, rFlags, asm.Byte),
		asm.LoadMapPtr(asm.R1, 0).WithReference(AssuredMap),
		asm.Ja.Label("update"),
		asm.StoreImm(asm.R10, entryOff+16, int64(conntrack.UDPUnreplied), asm.Byte).WithSymbol("udp"),
		asm.StoreMem(asm.R10, entryOff+17, rFlags, asm.Byte),
		asm.LoadMapPtr(asm.R1, 0).WithReference(UnassuredMap),
		asm.Mov.Reg(asm.R2, asm.R10).WithSymbol("update"),
		asm.Add.Imm(asm.R2, keyOff),
		asm.Mov.Reg(asm.R3, asm.R10),
		asm.Add.Imm(asm.R3, entryOff),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnMapUpdateElem.Call(),
		asm.Mov.Imm(asm.R0, -1).WithSymbol("out"), // TC_ACT_UNSPEC
		asm.Return(),
	)
	return append(insns, track...)
}
