package compiler

import (
	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/artifact"
)

// tcActUnspec is what the egress program returns for every packet:
// TC_ACT_UNSPEC, which for a tcx link is TCX_NEXT and for a cls_bpf filter
// the default action: the packet goes on as if there were no program.
const tcActUnspec = -1

// labelEgressReturn ends the egress program.
const labelEgressReturn = "egress.return"

// emitEgress emits the TC egress program of a policy that tracks
// connections (docs/conntrack.md "Egress: the host's own traffic"):
//
//	entry (pull), parser -> track | return (malformed, left alone)
//	track (conntrack)    -> commit, as the host's own
//	commit               -> return
//	return               TC_ACT_UNSPEC
//
// It is the XDP program's parser and tracker in a TC program's context,
// with no rules: every packet the host sends is committed (egress), none
// is dropped. Its guarantees are the XDP program's (emitProgram).
func emitEgress(prog *Program, file string) (*artifact.Program, error) {
	ct := prog.Conntrack
	e := newEmitter()
	e.file = file
	po := parserOptions{context: contextSkb, next: labelTrack, malformed: labelEgressReturn, defaults: trackDefaults}
	to := trackOptions{next: labelCommit, assured: ct.Assured.Name, unassured: ct.Unassured.Name}
	if n := prog.NAT; n != nil {
		po.defaults, to.alias, to.next = natDefaults, n.Alias.Name, labelEgressNAT
	}
	emitParser(e, po)
	emitTrack(e, to)
	if prog.NAT != nil {
		emitEgressNAT(e)
	}
	emitCommit(e, commitOptions{egress: true, next: labelEgressReturn, assured: ct.Assured.Name, unassured: ct.Unassured.Name, timeouts: ct.Timeouts})
	e.label(labelEgressReturn)
	e.at("egress: the packet goes on (TC_ACT_UNSPEC)")
	e.emit(asm.Mov.Imm(asm.R0, tcActUnspec), asm.Return())
	read := map[int16]bool{}
	for _, s := range trackerReads {
		read[s] = true
	}
	if prog.NAT != nil {
		for _, s := range natReads {
			read[s] = true
		}
	}
	name := egressName(prog.Name)
	insns, err := e.finish(deadStores(read), name)
	if err != nil {
		return nil, err
	}
	return &artifact.Program{Name: name, Instructions: insns}, nil
}

// egressName is the egress program's name: "xdpc_out_" and the policy's
// part of the XDP program's name, cut to the kernel's limit; "xdpc_out"
// in the one case where that is the XDP program's own name (a long
// policy name that starts with "out_out_").
func egressName(xdpName string) string {
	name := "xdpc_out_" + xdpName[len("xdpc_"):]
	if len(name) > maxObjectName {
		name = name[:maxObjectName]
	}
	if name == xdpName {
		return "xdpc_out"
	}
	return name
}

// skbIngressIfindex is the offset of ingress_ifindex in __sk_buff: the
// interface a forwarded packet arrived on, 0 for the host's own.
const skbIngressIfindex = 36

// labelEgressNAT is where the egress program of a NAT interface decides
// whether to commit.
const labelEgressNAT = "egress.nat"

// emitEgressNAT leaves a translated flow's packets alone (docs/nat.md
// "The egress program"): the host forwarded them after the XDP program
// of the interface they arrived on translated and committed them, so
// they carry a translated tuple (found through the NAT map) or are the
// flow's own in its translated form; committing them again would move the
// state machine twice or, for a tuple not found, create a second entry.
// Nor is any other packet the host forwards its own (one that arrived on
// an interface: __sk_buff.ingress_ifindex is set): the program of the
// interface it arrived on decided and tracked it, and committing it as
// the host's would, say, pick up a connection from a passed invalid ACK.
func emitEgressNAT(e *emitter) {
	e.label(labelEgressNAT)
	e.at("egress: a forwarded packet was tracked where it arrived")
	e.emit(
		asm.LoadMem(asm.R1, rCtx, skbIngressIfindex, asm.Word),
		asm.JNE.Imm32(asm.R1, 0, labelEgressReturn),
	)
	e.at("egress: a packet of a translated flow was committed where it arrived")
	e.emit(
		load(asm.R1, slotNATRewrite),
		asm.JNE.Imm32(asm.R1, absent, labelEgressReturn),
		asm.Ja.Label(labelCommit),
	)
}
