package artifact_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/policy"
)

// Verdicts of the test programs (enum xdp_action).
const (
	xdpDrop = 1
	xdpPass = 2
)

var (
	u8Type  = &btf.Int{Name: "__u8", Size: 1}
	u16Type = &btf.Int{Name: "__u16", Size: 2}
	u32Type = &btf.Int{Name: "__u32", Size: 4}
	u64Type = &btf.Int{Name: "__u64", Size: 8}
	// counterType is the counters map's value: struct { packets, bytes u64 }.
	counterType = &btf.Struct{Name: "xdpc_counter", Size: 16, Members: []btf.Member{
		{Name: "packets", Type: u64Type, Offset: 0},
		{Name: "bytes", Type: u64Type, Offset: 64},
	}}
	// lpmV4KeyType is an IPv4 LPM trie key: struct { prefixlen u32; addr [4]u8 }.
	lpmV4KeyType = &btf.Struct{Name: "xdpc_lpm_v4", Size: 8, Members: []btf.Member{
		{Name: "prefixlen", Type: u32Type, Offset: 0},
		{Name: "addr", Type: &btf.Array{Index: u32Type, Type: u8Type, Nelems: 4}, Offset: 32},
	}}
)

// Counter slots of lookupArtifact.
const (
	slotDefault = 0 // no set matched: drop
	slotPrefix  = 1 // the frame's first four bytes are in src_v4: pass
	slotPort    = 2 // port 80 is in ports: pass
)

// lookupArtifact returns a small hand-written artifact with the three kinds
// of maps the compiler emits. Its program looks the frame's first four bytes
// up as an IPv4 address in the LPM trie src_v4 (slot 1, pass), then port 80
// in the hash ports (slot 2, pass), else drops (slot 0), and counts the
// packet and its bytes in the per-CPU array counters.
func lookupArtifact() *artifact.Artifact {
	const (
		rCtx  = asm.R6 // the context, then the counter slot
		rData = asm.R7
		rEnd  = asm.R8
		rLen  = asm.R9
	)
	insns := asm.Instructions{
		asm.Mov.Reg(rCtx, asm.R1),
		asm.LoadMem(rData, rCtx, 0, asm.Word),
		asm.LoadMem(rEnd, rCtx, 4, asm.Word),
		asm.Mov.Reg(rLen, rEnd),
		asm.Sub.Reg(rLen, rData),

		// Prefix lookup: key {32, frame[0:4]} at fp-16.
		asm.Mov.Reg(asm.R2, rData),
		asm.Add.Imm(asm.R2, 4),
		asm.JGT.Reg(asm.R2, rEnd, "port"),
		asm.StoreImm(asm.R10, -16, 32, asm.Word),
		asm.LoadMem(asm.R0, rData, 0, asm.Word),
		asm.StoreMem(asm.R10, -12, asm.R0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("src_v4"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -16),
		asm.FnMapLookupElem.Call(),
		asm.Mov.Imm(rCtx, slotPrefix),
		asm.JNE.Imm(asm.R0, 0, "count"),

		// Port lookup: key 80 at fp-2.
		asm.StoreImm(asm.R10, -2, 80, asm.Half).WithSymbol("port"),
		asm.LoadMapPtr(asm.R1, 0).WithReference("ports"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -2),
		asm.FnMapLookupElem.Call(),
		asm.Mov.Imm(rCtx, slotPort),
		asm.JNE.Imm(asm.R0, 0, "count"),
		asm.Mov.Imm(rCtx, slotDefault),

		// Count: counters[slot] += {1, len}.
		asm.StoreMem(asm.R10, -20, rCtx, asm.Word).WithSymbol("count"),
		asm.LoadMapPtr(asm.R1, 0).WithReference("counters"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -20),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "verdict"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
		asm.Add.Reg(asm.R1, rLen),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),

		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("verdict"),
		asm.JNE.Imm(rCtx, slotDefault, "exit"),
		asm.Mov.Imm(asm.R0, xdpDrop),
		asm.Return().WithSymbol("exit"),
	}
	return &artifact.Artifact{
		Program:      "xdpc_lookup",
		License:      "GPL",
		Instructions: insns,
		Maps: []artifact.Map{
			{Name: "counters", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 3, Key: u32Type, Value: counterType},
			{Name: "src_v4", Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 1, MaxEntries: 16, Flags: artifact.MapFlagNoPrealloc, Key: lpmV4KeyType, Value: u8Type},
			{Name: "ports", Type: ebpf.Hash, KeySize: 2, ValueSize: 1, MaxEntries: 16, Key: u16Type, Value: u8Type},
		},
		Manifest: artifact.Manifest{
			Format:  artifact.ManifestFormat,
			Policy:  "edge",
			Hash:    "sha256:0123",
			Program: "xdpc_lookup",
			Counters: artifact.CounterTable{Map: "counters", Slots: []artifact.CounterSlot{
				{Slot: slotDefault, Name: "default", Kind: artifact.SlotDefault},
				{Slot: slotPrefix, Name: "from_lab", Kind: artifact.SlotRule, Pos: artifact.Pos{Line: 10, Col: 3}},
				{Slot: slotPort, Name: "web", Kind: artifact.SlotRule, Pos: artifact.Pos{Line: 14, Col: 3}},
			}},
			Sets: []artifact.SetMap{
				{Set: "lab", Type: artifact.SetCIDR, MaxElements: 16, V4Map: "src_v4",
					Elements: artifact.Elements{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}},
				{Set: "web", Type: artifact.SetPort, MaxElements: 16, Map: "ports",
					Elements: artifact.Elements{Ports: []artifact.PortRange{{Lo: 80, Hi: 80}}}},
			},
			Interfaces: []artifact.InterfaceBinding{{Name: "eth0", Mode: "native"}},
		},
	}
}

// passArtifact returns the smallest artifact: no maps, always XDP_PASS.
func passArtifact() *artifact.Artifact {
	return &artifact.Artifact{
		Program: "xdpc_pass",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, xdpPass),
			asm.Return(),
		},
		Manifest: artifact.Manifest{Format: artifact.ManifestFormat, Policy: "open", Program: "xdpc_pass"},
	}
}

// kindsArtifact returns an artifact with one map of every kind, made from
// the kinds table as the compiler makes them, each loaded by the program
// (which then passes every frame).
func kindsArtifact() *artifact.Artifact {
	maps := []artifact.Map{
		artifact.MapCounters.Map("counters", 2),
		artifact.MapCIDRv4.Map("nets_v4", 4),
		artifact.MapCIDRv6.Map("nets_v6", 4),
		artifact.MapPorts.Map("ports", 4),
		artifact.MapMACs.Map("macs", 4),
		artifact.MapRedirect.Map("redirect", 1),
		artifact.MapCTAssured.Map("ct", 64),
		artifact.MapCTUnassured.Map("ct_new", 64),
		artifact.MapNATAlias.Map("nat", 64),
		artifact.MapNATFragments.Map("nat_frag", 64),
		artifact.MapNATSettings.Map("nat_settings", 1),
		artifact.MapNATReserved.Map("nat_reserved", 64),
	}
	var insns asm.Instructions
	for _, m := range maps {
		insns = append(insns, asm.LoadMapPtr(asm.R1, 0).WithReference(m.Name))
	}
	insns = append(insns, asm.Mov.Imm(asm.R0, xdpPass), asm.Return())
	// The egress program shares the connection table and goes on
	// (TC_ACT_UNSPEC, as tcx's TCX_NEXT).
	egress := asm.Instructions{
		asm.LoadMapPtr(asm.R1, 0).WithReference("ct"),
		asm.LoadMapPtr(asm.R1, 0).WithReference("ct_new"),
		asm.Mov.Imm(asm.R0, -1),
		asm.Return(),
	}
	return &artifact.Artifact{
		Program:      "xdpc_kinds",
		Instructions: insns,
		Egress:       &artifact.Program{Name: "xdpc_kinds_out", Instructions: egress},
		Maps:         maps,
		Manifest: artifact.Manifest{
			Format:    artifact.ManifestFormat,
			Policy:    "kinds",
			Program:   "xdpc_kinds",
			Egress:    "xdpc_kinds_out",
			Conntrack: &artifact.ConntrackTables{Assured: "ct", Unassured: "ct_new"},
			NAT:       &artifact.NATTables{Alias: "nat", Fragments: "nat_frag", Settings: "nat_settings", Reserved: "nat_reserved"},
			Counters: artifact.CounterTable{Map: "counters", Slots: []artifact.CounterSlot{
				{Slot: 0, Name: "default", Kind: artifact.SlotDefault},
				{Slot: 1, Name: "malformed", Kind: artifact.SlotMalformed},
			}},
			Sets: []artifact.SetMap{
				{Set: "nets", Type: artifact.SetCIDR, MaxElements: 4, V4Map: "nets_v4", V6Map: "nets_v6", Dynamic: true},
				{Set: "ports", Type: artifact.SetPort, MaxElements: 4, Map: "ports", Dynamic: true},
				{Set: "macs", Type: artifact.SetMAC, MaxElements: 4, Map: "macs", Dynamic: true},
			},
			RedirectMap: "redirect",
			Redirects:   []artifact.RedirectTarget{{Key: 0, Interface: "eth1"}},
		},
	}
}

// compiledPolicy uses every kind of map the compiler emits, an
// IPv4-mapped set element, a count rule and a redirect.
const compiledPolicy = `
set "blocklist" {
  type     = "cidr"
  elements = ["198.51.100.0/24", "2001:db8:bad::/48", "::ffff:192.0.2.1"]
}

set "services" {
  type     = "port"
  elements = [22, 443]
}

set "routers" {
  type     = "mac"
  elements = ["02:00:00:00:00:fe"]
}

policy "edge" {
  default   = "drop"
  malformed = "drop"

  rule "blocked" {
    src    = set.blocklist
    action = "drop"
  }
  rule "services" {
    proto    = "tcp"
    dst_port = set.services
    action   = "pass"
  }
  rule "routers" {
    src_mac = set.routers
    action  = "pass"
  }
  rule "udp" {
    proto  = "udp"
    action = "count"
  }
  rule "scrub" {
    proto  = "gre"
    action = "redirect"
    to     = "scrub0"
  }
  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }
}
`

// compiledArtifact compiles compiledPolicy.
func compiledArtifact(t *testing.T) *artifact.Artifact {
	t.Helper()
	return compileSource(t, compiledPolicy)
}

// compileSource compiles the first policy of src.
func compileSource(t *testing.T, src string) *artifact.Artifact {
	t.Helper()
	cfg, diags := policy.Load("policy.hcl", []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatalf("load: %v", diags)
	}
	a, err := compiler.Compile(cfg, cfg.Policies[0], compiler.Options{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return a
}

// testArtifacts are the artifacts every ELF test runs on: hand-written
// ones that isolate the object format, and a compiled policy.
func testArtifacts(t *testing.T) map[string]*artifact.Artifact {
	t.Helper()
	return map[string]*artifact.Artifact{
		"lookup":   lookupArtifact(),
		"pass":     passArtifact(),
		"kinds":    kindsArtifact(),
		"compiled": compiledArtifact(t),
	}
}

func writeELF(t *testing.T, a *artifact.Artifact) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := a.WriteELF(&buf); err != nil {
		t.Fatalf("WriteELF: %v", err)
	}
	return buf.Bytes()
}

// writeELFFile writes a's object to a temporary file and returns its path.
func writeELFFile(t *testing.T, a *artifact.Artifact) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), a.Program+".o")
	if err := os.WriteFile(path, writeELF(t, a), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWriteELFDeterministic(t *testing.T) {
	for name, a := range testArtifacts(t) {
		t.Run(name, func(t *testing.T) {
			first := writeELF(t, a)
			for range 5 {
				// Fresh artifacts: nothing may depend on pointer identity.
				again := writeELF(t, testArtifacts(t)[name])
				if !bytes.Equal(first, again) {
					t.Fatalf("two writes differ:\n%s\n%s", hex.Dump(first), hex.Dump(again))
				}
			}
		})
	}
}

func TestWriteELFKeepsArtifact(t *testing.T) {
	a := lookupArtifact()
	before := a.Instructions.String()
	writeELF(t, a)
	if diff := cmp.Diff(before, a.Instructions.String()); diff != "" {
		t.Errorf("WriteELF changed the artifact's instructions (-before +after):\n%s", diff)
	}
}

func TestWriteELFRejects(t *testing.T) {
	tests := map[string]func(a *artifact.Artifact){
		"no program name": func(a *artifact.Artifact) { a.Program = "" },
		"duplicate map":   func(a *artifact.Artifact) { a.Maps[1].Name = "counters" },
		"unknown map":     func(a *artifact.Artifact) { a.Maps = a.Maps[:2] },
		"key size":        func(a *artifact.Artifact) { a.Maps[0].KeySize = 8 },
		"undefined label": func(a *artifact.Artifact) { a.Instructions[len(a.Instructions)-1] = asm.Return() },
	}
	for name, breakIt := range tests {
		t.Run(name, func(t *testing.T) {
			a := lookupArtifact()
			breakIt(a)
			if err := a.WriteELF(&bytes.Buffer{}); err == nil {
				t.Fatal("WriteELF succeeded, want an error")
			}
		})
	}
}

func TestReadManifest(t *testing.T) {
	for name, a := range testArtifacts(t) {
		t.Run(name, func(t *testing.T) {
			got, err := artifact.ReadManifest(bytes.NewReader(writeELF(t, a)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&a.Manifest, got, equatePrefixes); diff != "" {
				t.Errorf("manifest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadManifestRejects(t *testing.T) {
	future := passArtifact()
	future.Manifest.Format = artifact.ManifestFormat + 1
	tests := map[string][]byte{
		"not elf":        []byte("not an object file at all, just some text"),
		"future format":  writeELF(t, future),
		"empty manifest": nil,
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := artifact.ReadManifest(bytes.NewReader(data)); err == nil {
				t.Fatal("ReadManifest succeeded, want an error")
			}
		})
	}
}

// mapSpecFields is what the kernel-facing part of a MapSpec must carry over.
type mapSpecFields struct {
	Name                                     string
	Type                                     ebpf.MapType
	KeySize, ValueSize, MaxEntries, MapFlags uint32
	Key, Value                               string
}

func TestLoadCollectionSpec(t *testing.T) {
	for name, a := range testArtifacts(t) {
		t.Run(name, func(t *testing.T) {
			spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(writeELF(t, a)))
			if err != nil {
				t.Fatalf("LoadCollectionSpecFromReader: %v", err)
			}

			want := map[string]mapSpecFields{}
			for _, m := range a.Maps {
				want[m.Name] = mapSpecFields{m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags,
					typeName(m.Key), typeName(m.Value)}
			}
			got := map[string]mapSpecFields{}
			for name, m := range spec.Maps {
				got[name] = mapSpecFields{m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags,
					typeName(m.Key), typeName(m.Value)}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("maps (-want +got):\n%s", diff)
			}

			wantProgs := 1
			if a.Egress != nil {
				wantProgs = 2
				eg := spec.Programs[a.Egress.Name]
				if eg == nil || eg.Type != ebpf.SchedCLS || eg.SectionName != artifact.EgressSection {
					t.Fatalf("egress program %q: %+v, want a SchedCLS program in section %s", a.Egress.Name, eg, artifact.EgressSection)
				}
				if diff := cmp.Diff(mapReferences(a.Egress.Instructions), mapReferences(eg.Instructions)); diff != "" {
					t.Errorf("egress map references by instruction offset (-want +got):\n%s", diff)
				}
			}
			if len(spec.Programs) != wantProgs {
				t.Fatalf("got %d programs, want %d", len(spec.Programs), wantProgs)
			}
			prog := spec.Programs[a.Program]
			if prog == nil {
				t.Fatalf("no program %q in %v", a.Program, spec.Programs)
			}
			gotProg := []any{prog.Type, prog.AttachType, prog.SectionName, prog.License}
			wantProg := []any{ebpf.XDP, ebpf.AttachXDP, artifact.ProgramSection, "GPL"}
			if diff := cmp.Diff(wantProg, gotProg); diff != "" {
				t.Errorf("program type, attach type, section, license (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(mapReferences(a.Instructions), mapReferences(prog.Instructions)); diff != "" {
				t.Errorf("map references by instruction offset (-want +got):\n%s", diff)
			}
			if got, want := prog.Instructions.Size(), a.Instructions.Size(); got != want {
				t.Errorf("program has %d bytes, want %d", got, want)
			}
			wantSources := sources(a.Instructions)
			if len(a.Instructions) > 0 && a.Instructions[0].Source() == nil {
				// The kernel wants a line_info on the first instruction.
				wantSources = append([]string{"0:" + a.Program}, wantSources...)
			}
			if diff := cmp.Diff(wantSources, sources(prog.Instructions)); diff != "" {
				t.Errorf("source lines read back from line_info (-want +got):\n%s", diff)
			}
		})
	}
}

// sources lists "offset:source" for every instruction with a source comment.
func sources(insns asm.Instructions) []string {
	var out []string
	iter := insns.Iterate()
	for iter.Next() {
		if src := iter.Ins.Source(); src != nil {
			out = append(out, fmt.Sprintf("%d:%s", iter.Offset, src))
		}
	}
	return out
}

// mapReferences lists "offset:map" for every map load of insns.
func mapReferences(insns asm.Instructions) []string {
	var refs []string
	iter := insns.Iterate()
	for iter.Next() {
		if iter.Ins.IsLoadFromMap() {
			refs = append(refs, fmt.Sprintf("%d:%s", iter.Offset, iter.Ins.Reference()))
		}
	}
	return refs
}

// TestNewCollection loads the lookup artifact into the kernel and runs
// frames through it with BPF_PROG_TEST_RUN.
func TestNewCollection(t *testing.T) {
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(writeELF(t, lookupArtifact())))
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("NewCollection: %+v", ve)
		}
		t.Fatalf("NewCollection: %v", err)
	}
	defer coll.Close()

	prog := coll.Programs["xdpc_lookup"]
	lpmKey := []byte{24, 0, 0, 0, 10, 1, 2, 0} // 10.1.2.0/24
	if err := coll.Maps["src_v4"].Put(lpmKey, uint8(1)); err != nil {
		t.Fatalf("insert prefix: %v", err)
	}

	frame := func(first4 ...byte) []byte { return append(first4, make([]byte, 60)...) }
	tests := []struct {
		name   string
		frame  []byte
		ports  []uint16
		action uint32
		slot   uint32
	}{
		{"in prefix", frame(10, 1, 2, 3), nil, xdpPass, slotPrefix},
		{"outside prefix", frame(10, 1, 3, 3), nil, xdpDrop, slotDefault},
		{"port in set", frame(10, 1, 3, 3), []uint16{80}, xdpPass, slotPort},
		{"prefix first", frame(10, 1, 2, 255), []uint16{80}, xdpPass, slotPrefix},
	}
	counters := coll.Maps["counters"]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range tt.ports {
				if err := coll.Maps["ports"].Put(p, uint8(1)); err != nil {
					t.Fatalf("insert port: %v", err)
				}
			}
			before := readCounter(t, counters, tt.slot)
			action, err := prog.Run(&ebpf.RunOptions{Data: tt.frame})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if action != tt.action {
				t.Errorf("action %d, want %d", action, tt.action)
			}
			after := readCounter(t, counters, tt.slot)
			want := [2]uint64{before[0] + 1, before[1] + uint64(len(tt.frame))}
			if diff := cmp.Diff(want, after); diff != "" {
				t.Errorf("counter %d {packets, bytes} (-want +got):\n%s", tt.slot, diff)
			}
		})
	}
}

// readCounter returns counters[slot] summed over CPUs.
func readCounter(t *testing.T, m *ebpf.Map, slot uint32) [2]uint64 {
	t.Helper()
	var perCPU [][2]uint64
	if err := m.Lookup(slot, &perCPU); err != nil {
		t.Fatalf("read counter %d: %v", slot, err)
	}
	var sum [2]uint64
	for _, c := range perCPU {
		sum[0] += c[0]
		sum[1] += c[1]
	}
	return sum
}

// modernObjdump returns an llvm-objdump of LLVM 18 or later, the first
// releases that decode BPF_ST; scripts/test.sh installs one.
func modernObjdump(t *testing.T) string {
	t.Helper()
	for _, v := range []string{"21", "20", "19", "18"} {
		if path, err := exec.LookPath("llvm-objdump-" + v); err == nil {
			return path
		}
	}
	t.Fatal("no llvm-objdump of LLVM 18 or later (llvm-objdump-18 ... -21): install the Debian package llvm-19")
	return ""
}

// needTool returns the path of a command the test needs, failing the test
// with the Debian package to install when it is missing.
func needTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (%v): install the Debian package %s", name, err, debianPackage)
	}
	return path
}

// objdumpInsn matches an instruction line of llvm-objdump -d.
var objdumpInsn = regexp.MustCompile(`(?m)^\s+\d+:\t`)

// TestObjdump disassembles every artifact with a recent llvm-objdump: LLVM
// releases before 18 print <unknown> for BPF_ST (store immediate), which
// xdpc emits.
func TestObjdump(t *testing.T) {
	objdump := modernObjdump(t)
	for name, a := range testArtifacts(t) {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(objdump, "-d", "-r", writeELFFile(t, a)).CombinedOutput()
			if err != nil {
				t.Fatalf("llvm-objdump -d: %v\n%s", err, out)
			}
			text := string(out)
			for _, want := range []string{"file format elf64-bpf", "Disassembly of section xdp:", "<" + a.Program + ">:", "exit"} {
				if !strings.Contains(text, want) {
					t.Errorf("llvm-objdump output lacks %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, "<unknown>") {
				t.Errorf("llvm-objdump cannot decode some instructions:\n%s", text)
			}
			want := len(a.Instructions)
			if a.Egress != nil {
				want += len(a.Egress.Instructions)
				if !strings.Contains(text, "Disassembly of section tc:") {
					t.Errorf("llvm-objdump output lacks the egress program:\n%s", text)
				}
			}
			if got := len(objdumpInsn.FindAllString(text, -1)); got != want {
				t.Errorf("llvm-objdump shows %d instructions, want %d:\n%s", got, want, text)
			}
			for _, m := range a.Maps {
				if !strings.Contains(text, "R_BPF_64_64\t"+m.Name) {
					t.Errorf("llvm-objdump shows no relocation against %s:\n%s", m.Name, text)
				}
			}
		})
	}
}

// TestIPLinkXDP loads each artifact with iproute2 (libbpf) onto one end of a
// veth pair in a network namespace of its own.
func TestIPLinkXDP(t *testing.T) {
	ip := needTool(t, "ip", "iproute2")
	for name, a := range testArtifacts(t) {
		t.Run(name, func(t *testing.T) {
			obj := writeELFFile(t, a)
			ns := newVethNamespace(t)
			load := exec.Command(ip, "-n", ns, "link", "set", "dev", "veth0", "xdp", "obj", obj, "sec", artifact.ProgramSection)
			if out, err := load.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", load, err, out)
			}
			show := exec.Command(ip, "-n", ns, "link", "show", "dev", "veth0")
			out, err := show.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", show, err, out)
			}
			if !strings.Contains(string(out), "prog/xdp id") {
				t.Errorf("%s shows no XDP program:\n%s", show, out)
			}
		})
	}
}

// newVethNamespace creates a named network namespace holding a veth pair
// veth0/veth1 (both up) and returns its name; the namespace is deleted when
// the test ends, taking the pair and any attached program with it.
func newVethNamespace(t *testing.T) string {
	t.Helper()
	name := "xdpc-elf-" + rand.Text()[:8]

	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	origin, err := netns.Get()
	if err != nil {
		t.Fatalf("get network namespace: %v", err)
	}
	defer origin.Close()
	ns, err := netns.NewNamed(name) // also enters it
	if err != nil {
		t.Fatalf("create network namespace %s: %v", name, err)
	}
	if err := netns.Set(origin); err != nil {
		t.Fatalf("return to network namespace: %v", err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete network namespace %s: %v", name, err)
		}
	})

	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink in %s: %v", name, err)
	}
	defer h.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth0"}, PeerName: "veth1"}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth pair: %v", err)
	}
	for _, dev := range []string{"veth0", "veth1"} {
		link, err := h.LinkByName(dev)
		if err != nil {
			t.Fatalf("find %s: %v", dev, err)
		}
		if err := h.LinkSetUp(link); err != nil {
			t.Fatalf("set %s up: %v", dev, err)
		}
	}
	return name
}

// typeName is a BTF type's name for comparisons, "" for none.
func typeName(typ btf.Type) string {
	if typ == nil {
		return ""
	}
	return typ.TypeName()
}

func TestRead(t *testing.T) {
	for name, a := range testArtifacts(t) {
		t.Run(name, func(t *testing.T) {
			spec, manifest, err := artifact.Read(writeELF(t, a))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&a.Manifest, manifest, equatePrefixes); diff != "" {
				t.Errorf("manifest (-want +got):\n%s", diff)
			}
			var want, got []string
			for _, m := range a.Maps {
				want = append(want, m.Name)
			}
			for name := range spec.Maps {
				got = append(got, name)
			}
			if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("maps (-want +got):\n%s", diff)
			}
			if spec.Programs[a.Program] == nil {
				t.Errorf("no program %s", a.Program)
			}
		})
	}
}

func TestReadRejects(t *testing.T) {
	tests := map[string]func(a *artifact.Artifact){
		"missing set map":    func(a *artifact.Artifact) { a.Manifest.Sets[0].V6Map = "src_v6" },
		"missing counters":   func(a *artifact.Artifact) { a.Manifest.Counters.Map = "tally" },
		"counters not array": func(a *artifact.Artifact) { a.Manifest.Counters.Map = "src_v4" },
		"missing program":    func(a *artifact.Artifact) { a.Manifest.Program = "xdpc_other" },
		"port set in a trie": func(a *artifact.Artifact) { a.Manifest.Sets[1].Map = "src_v4" },
		"too few slots":      func(a *artifact.Artifact) { a.Maps[0].MaxEntries = 2 },
		"slot twice":         func(a *artifact.Artifact) { a.Manifest.Counters.Slots[2].Slot = 1 },
		"slot past the map":  func(a *artifact.Artifact) { a.Manifest.Counters.Slots[2].Slot = 3 },
	}
	for name, breakIt := range tests {
		t.Run(name, func(t *testing.T) {
			a := lookupArtifact()
			breakIt(a)
			if _, _, err := artifact.Read(writeELF(t, a)); err == nil {
				t.Fatal("Read succeeded, want an error")
			}
		})
	}
	if _, _, err := artifact.Read([]byte("not an object")); err == nil {
		t.Error("Read of garbage succeeded, want an error")
	}
}

// FuzzRead feeds mutated artifacts to the reader that `xdpc apply
// ARTIFACT` uses: an error or a consistent spec and manifest, never a
// panic.
func FuzzRead(f *testing.F) {
	for _, a := range []*artifact.Artifact{lookupArtifact(), passArtifact()} {
		var buf bytes.Buffer
		if err := a.WriteELF(&buf); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, m, err := artifact.Read(data)
		if err != nil {
			return
		}
		if spec.Programs[m.Program] == nil {
			t.Fatalf("Read accepted an artifact without its program %q", m.Program)
		}
	})
}

// equatePrefixes compares netip values by ==, as cmp cannot look inside.
var equatePrefixes = cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{})
