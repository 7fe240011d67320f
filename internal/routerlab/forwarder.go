package routerlab

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// AttachForwarder attaches to a veth end the least an XDP router does per
// packet: an IPv4 frame's route through bpf_fib_lookup, the next hop's MAC
// addresses, the TTL one lower with its checksum, and bpf_redirect to the
// egress device; anything else is passed. It translates nothing and
// tracks nothing. It is a benchmark's peer (the ceiling an XDP NAT's
// forwarding rate can reach through this topology), never part of xdpc.
func (r *Router) AttachForwarder(e End) error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xdpc_lab_fwd", Type: ebpf.XDP, License: "GPL",
		Instructions: forwarderInstructions(),
	})
	if err != nil {
		return fmt.Errorf("load the forwarder: %w", err)
	}
	return e.Netns.Run(func() error {
		l, err := link.AttachXDP(link.XDPOptions{Program: p, Interface: e.Index, Flags: link.XDPDriverMode})
		p.Close() // the link holds it
		if err != nil {
			return fmt.Errorf("attach the forwarder to %s in %s: %w", e.Name, e.Netns.Name, err)
		}
		r.links[e.key()] = l
		return nil
	})
}

// struct bpf_fib_lookup's offsets, on the stack at fwdFIB.
const (
	fwdFIB     = -64
	fwdFamily  = 0
	fwdProto   = 1
	fwdTotLen  = 6
	fwdIfindex = 8
	fwdSrc     = 16
	fwdDst     = 32
	fwdSMAC    = 52
	fwdDMAC    = 58
)

func forwarderInstructions() asm.Instructions {
	const pass = "pass"
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, 0, asm.Word), // data
		asm.LoadMem(asm.R8, asm.R6, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Add.Imm(asm.R1, 14+20),
		asm.JGT.Reg(asm.R1, asm.R8, pass),
		asm.LoadMem(asm.R1, asm.R7, 12, asm.Half),
		asm.JNE.Imm(asm.R1, 0x0008, pass), // IPv4, as read on a little-endian host
	}
	for off := int16(0); off < 64; off += 4 {
		ins = append(ins, asm.StoreImm(asm.R10, fwdFIB+off, 0, asm.Word))
	}
	ins = append(ins,
		asm.StoreImm(asm.R10, fwdFIB+fwdFamily, 2, asm.Byte), // AF_INET
		asm.LoadMem(asm.R1, asm.R7, 14+9, asm.Byte),
		asm.StoreMem(asm.R10, fwdFIB+fwdProto, asm.R1, asm.Byte),
		asm.LoadMem(asm.R1, asm.R7, 14+2, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.StoreMem(asm.R10, fwdFIB+fwdTotLen, asm.R1, asm.Half),
		asm.LoadMem(asm.R1, asm.R6, 12, asm.Word), // ingress_ifindex
		asm.StoreMem(asm.R10, fwdFIB+fwdIfindex, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, 14+12, asm.Word),
		asm.StoreMem(asm.R10, fwdFIB+fwdSrc, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, 14+16, asm.Word),
		asm.StoreMem(asm.R10, fwdFIB+fwdDst, asm.R1, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, fwdFIB),
		asm.Mov.Imm(asm.R3, 64),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnFibLookup.Call(),
		asm.JNE.Imm(asm.R0, 0, pass),
		// The helper call cleared the packet pointers' bounds: load them again.
		asm.LoadMem(asm.R7, asm.R6, 0, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, 4, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Add.Imm(asm.R1, 14+20),
		asm.JGT.Reg(asm.R1, asm.R8, pass),
	)
	for i := int16(0); i < 6; i += 2 {
		ins = append(ins,
			asm.LoadMem(asm.R1, asm.R10, fwdFIB+fwdDMAC+i, asm.Half),
			asm.StoreMem(asm.R7, i, asm.R1, asm.Half),
			asm.LoadMem(asm.R1, asm.R10, fwdFIB+fwdSMAC+i, asm.Half),
			asm.StoreMem(asm.R7, 6+i, asm.R1, asm.Half),
		)
	}
	// TTL one lower; the checksum by RFC 1624 (the TTL is the high byte
	// of its 16-bit word, so the sum grows by 0x0100 in network order,
	// which reads as 0x0001 on a little-endian host).
	ins = append(ins,
		asm.LoadMem(asm.R1, asm.R7, 14+8, asm.Byte),
		asm.Sub.Imm(asm.R1, 1),
		asm.StoreMem(asm.R7, 14+8, asm.R1, asm.Byte),
		asm.LoadMem(asm.R1, asm.R7, 14+10, asm.Half),
		asm.Add.Imm(asm.R1, 0x0001),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.RSh.Imm(asm.R2, 16),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.R7, 14+10, asm.R1, asm.Half),
		asm.LoadMem(asm.R1, asm.R10, fwdFIB+fwdIfindex, asm.Word),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol(pass), // XDP_PASS
		asm.Return(),
	)
	return ins
}
