package runtime_test

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/internal/nstest"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/runtime"
)

// natArtifact returns an artifact with a connection table of capacity ct
// and the NAT maps, bound to "out0" (outside) and "in0" (inside) of nat
// block "edge"; its programs load every map and pass every frame, as the
// compiler's would before their first translation.
func natArtifact(ct uint32) *artifact.Artifact {
	maps := []artifact.Map{
		counterMap(2),
		artifact.MapCTAssured.Map("ct", ct),
		artifact.MapCTUnassured.Map("ct_new", max(ct/4, 64)),
		artifact.MapNATAlias.Map("nat", ct),
		artifact.MapNATFragments.Map("nat_frag", nat.FragmentEntries),
		artifact.MapNATSettings.Map("nat_settings", 1),
		artifact.MapNATReserved.Map("nat_reserved", 64),
	}
	var insns asm.Instructions
	for _, m := range maps {
		insns = append(insns, asm.LoadMapPtr(asm.R1, 0).WithReference(m.Name))
	}
	insns = append(insns, asm.Mov.Imm(asm.R0, xdpPass), asm.Return())
	egress := asm.Instructions{
		asm.LoadMapPtr(asm.R1, 0).WithReference("ct"),
		asm.LoadMapPtr(asm.R1, 0).WithReference("ct_new"),
		asm.LoadMapPtr(asm.R1, 0).WithReference("nat"),
		asm.Mov.Imm(asm.R0, -1),
		asm.Return(),
	}
	return &artifact.Artifact{
		Program:      "xdpc_nat",
		Instructions: insns,
		Egress:       &artifact.Program{Name: "xdpc_nat_out", Instructions: egress},
		Maps:         maps,
		Manifest: artifact.Manifest{
			Format:    artifact.ManifestFormat,
			Policy:    "edge",
			Program:   "xdpc_nat",
			Egress:    "xdpc_nat_out",
			Conntrack: &artifact.ConntrackTables{Assured: "ct", Unassured: "ct_new"},
			NAT:       &artifact.NATTables{Alias: "nat", Fragments: "nat_frag", Settings: "nat_settings", Reserved: "nat_reserved"},
			Counters: artifact.CounterTable{Map: "counters", Slots: []artifact.CounterSlot{
				{Slot: 0, Name: "default", Kind: artifact.SlotDefault},
				{Slot: 1, Name: "malformed", Kind: artifact.SlotMalformed},
			}},
			Interfaces: []artifact.InterfaceBinding{
				{Name: "out0", Mode: "generic", NAT: "outside", NATBlock: "edge"},
				{Name: "in0", Mode: "generic", NAT: "inside", NATBlock: "edge"},
			},
		},
	}
}

// natEnv is a namespace with a veth pair out0 <-> in0, out0 holding the
// outside address 203.0.113.1/24.
type natEnv struct {
	ns   *nstest.Netns
	opts runtime.Options
}

func newNATEnv(t *testing.T) *natEnv {
	t.Helper()
	ns := nstest.New(t)
	ns.Veth(t, "out0", "in0")
	lk, err := ns.Handle.LinkByName("out0")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("203.0.113.1/24")
	if err := ns.Handle.AddrAdd(lk, addr); err != nil {
		t.Fatal(err)
	}
	e := &natEnv{ns: ns, opts: runtime.Options{PinRoot: nstest.PinRoot(t), StateDir: t.TempDir(), Netns: ns.Name}}
	t.Cleanup(func() {
		if _, err := runtime.Detach(e.opts, ""); err != nil {
			t.Errorf("detach all: %v", err)
		}
	})
	return e
}

var edgeAddrs = []runtime.NATAddresses{{
	Block:      "edge",
	Masquerade: []netip.Addr{netip.MustParseAddr("203.0.113.1")},
}}

func (e *natEnv) apply(t *testing.T, a *artifact.Artifact, addrs []runtime.NATAddresses) *runtime.ApplyReport {
	t.Helper()
	rep, err := runtime.Apply(elfBytes(t, a), runtime.ApplyOptions{Options: e.opts, NAT: addrs})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return rep
}

func (e *natEnv) natTable(t *testing.T) *runtime.NATTable {
	t.Helper()
	nt, err := runtime.OpenNAT(e.opts)
	if err != nil {
		t.Fatalf("open NAT table: %v", err)
	}
	t.Cleanup(nt.Close)
	return nt
}

func mapIDOf(t *testing.T, m *ebpf.Map) ebpf.MapID {
	t.Helper()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

// TestNATTableKept: the NAT maps are pinned beside the connection table,
// the NAT map sized as the whole table; a second apply keeps them and the
// seed; a resize of the table migrates the live aliases and keeps the
// seed; the detach of the last NAT interface removes them.
func TestNATTableKept(t *testing.T) {
	e := newNATEnv(t)
	e.apply(t, natArtifact(1024), edgeAddrs)
	nt := e.natTable(t)
	if got, want := nt.Aliases.MaxEntries(), uint32(1024+256); got != want {
		t.Errorf("NAT map capacity %d, want %d (assured + unassured)", got, want)
	}
	seed, err := nt.Seed()
	if err != nil {
		t.Fatal(err)
	}
	ids := [4]ebpf.MapID{mapIDOf(t, nt.Aliases), mapIDOf(t, nt.Fragments), mapIDOf(t, nt.Settings), mapIDOf(t, nt.Reserved)}

	// A live alias, as the datapath would leave it.
	key, _ := conntrack.NewKey(4, 17, conntrack.Endpoint{Addr: netip.MustParseAddr("203.0.113.1"), Port: 20001},
		conntrack.Endpoint{Addr: netip.MustParseAddr("198.51.100.8"), Port: 53})
	alias := nat.Alias{Expires: 1 << 62, OrigAddr: netip.MustParseAddr("10.0.0.5"), OrigPort: 40000, Kind: conntrack.NATSource, Lo: true}
	if err := nt.Aliases.Put(key.Encode(), alias.Encode()); err != nil {
		t.Fatal(err)
	}

	e.apply(t, natArtifact(1024), edgeAddrs)
	again := e.natTable(t)
	if got := [4]ebpf.MapID{mapIDOf(t, again.Aliases), mapIDOf(t, again.Fragments), mapIDOf(t, again.Settings), mapIDOf(t, again.Reserved)}; got != ids {
		t.Errorf("a second apply replaced NAT maps: ids %v, were %v", got, ids)
	}
	if s, _ := again.Seed(); s != seed {
		t.Errorf("seed %#x after a second apply, was %#x", s, seed)
	}

	rep := e.apply(t, natArtifact(2048), edgeAddrs)
	resized := e.natTable(t)
	if got, want := resized.Aliases.MaxEntries(), uint32(2048+512); got != want {
		t.Errorf("NAT map capacity %d after the resize, want %d", got, want)
	}
	if s, _ := resized.Seed(); s != seed {
		t.Errorf("seed %#x after the resize, was %#x", s, seed)
	}
	live, err := resized.LiveAliases()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := live[string(key.Encode())]; !ok || got != alias {
		t.Errorf("alias after the resize: %+v (present %v), want %+v; notes %q", got, ok, alias, rep.Notes)
	}

	if _, err := runtime.Detach(e.opts, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.OpenNAT(e.opts); err == nil {
		t.Error("the NAT table outlived the last NAT interface")
	}
}

// TestNATFreshSeed: each new NAT table draws its own seed.
func TestNATFreshSeed(t *testing.T) {
	seeds := map[uint32]bool{}
	for range 2 {
		e := newNATEnv(t)
		e.apply(t, natArtifact(256), edgeAddrs)
		s, err := e.natTable(t).Seed()
		if err != nil {
			t.Fatal(err)
		}
		seeds[s] = true
	}
	if len(seeds) != 2 {
		t.Errorf("two NAT tables got the same seed %v", seeds)
	}
}

// TestNATReservedPorts: apply reserves the ports of the listening TCP
// and bound UDP sockets on the masquerade address or a wildcard, not
// those on other addresses nor connected-only clients, and refreshes them
// at the next apply.
func TestNATReservedPorts(t *testing.T) {
	e := newNATEnv(t)
	lk, _ := e.ns.Handle.LinkByName("out0")
	other, _ := netlink.ParseAddr("192.0.2.9/32")
	if err := e.ns.Handle.AddrAdd(lk, other); err != nil {
		t.Fatal(err)
	}
	var wild, onTo, elsewhere net.Listener
	var udp net.PacketConn
	e.ns.Do(t, func() {
		var err error
		if wild, err = net.Listen("tcp4", "0.0.0.0:7001"); err != nil {
			t.Error(err)
		}
		if onTo, err = net.Listen("tcp4", "203.0.113.1:7002"); err != nil {
			t.Error(err)
		}
		if elsewhere, err = net.Listen("tcp4", "192.0.2.9:7003"); err != nil {
			t.Error(err)
		}
		if udp, err = net.ListenPacket("udp", "[::]:7004"); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	defer onTo.Close()
	defer elsewhere.Close()
	defer udp.Close()

	reserved := func() []runtime.ReservedPort {
		var out []runtime.ReservedPort
		key, value := make([]byte, 4), make([]byte, 1)
		it := e.natTable(t).Reserved.Iterate()
		for it.Next(&key, &value) {
			for _, p := range []uint8{6, 17} {
				for _, port := range []uint16{7001, 7002, 7003, 7004} {
					if string(key) == string(nat.ReservedKey(p, port)) {
						out = append(out, runtime.ReservedPort{Proto: p, Port: port})
					}
				}
			}
		}
		slices.SortFunc(out, func(a, b runtime.ReservedPort) int { return int(a.Port) - int(b.Port) })
		return out
	}
	e.apply(t, natArtifact(256), edgeAddrs)
	want := []runtime.ReservedPort{{6, 7001}, {6, 7002}, {17, 7004}}
	if got := reserved(); !slices.Equal(got, want) {
		t.Errorf("reserved %v, want %v", got, want)
	}
	wild.Close()
	e.apply(t, natArtifact(256), edgeAddrs)
	if got, want := reserved(), want[1:]; !slices.Equal(got, want) {
		t.Errorf("reserved after the listener closed %v, want %v", got, want)
	}
	// Without the policy's addresses, every socket's port is reserved.
	e.apply(t, natArtifact(256), nil)
	if got, want := reserved(), []runtime.ReservedPort{{6, 7002}, {6, 7003}, {17, 7004}}; !slices.Equal(got, want) {
		t.Errorf("reserved without addresses %v, want %v", got, want)
	}
}

// sysctls reads sysctls in the namespace.
func (e *natEnv) sysctls(t *testing.T, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	e.ns.Do(t, func() {
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(n, ".", "/")))
			if err != nil {
				t.Error(err)
				continue
			}
			out[n] = strings.TrimSpace(string(b))
		}
	})
	return out
}

func (e *natEnv) setSysctls(t *testing.T, values map[string]string) {
	t.Helper()
	e.ns.Do(t, func() {
		for n, v := range values {
			if err := os.WriteFile(filepath.Join("/proc/sys", strings.ReplaceAll(n, ".", "/")), []byte(v), 0o644); err != nil {
				t.Error(err)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
}

var natSysctlNames = []string{
	"net.ipv4.ip_forward",
	"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.out0.rp_filter", "net.ipv4.conf.in0.rp_filter",
	"net.ipv4.conf.all.accept_local", "net.ipv4.conf.out0.accept_local", "net.ipv4.conf.in0.accept_local",
}

// TestNATSysctls: apply sets what NAT forwarding needs and says so;
// the detach of the last NAT interface restores exactly what it found,
// leaving a value changed since, and the detach of one of two leaves
// them.
func TestNATSysctls(t *testing.T) {
	e := newNATEnv(t)
	found := map[string]string{
		"net.ipv4.ip_forward":             "0",
		"net.ipv4.conf.all.rp_filter":     "1",
		"net.ipv4.conf.out0.rp_filter":    "0", // effective 1, with conf.all
		"net.ipv4.conf.in0.rp_filter":     "1",
		"net.ipv4.conf.all.accept_local":  "0",
		"net.ipv4.conf.out0.accept_local": "0",
		"net.ipv4.conf.in0.accept_local":  "0",
	}
	e.setSysctls(t, found)
	rep := e.apply(t, natArtifact(256), edgeAddrs)
	want := map[string]string{
		"net.ipv4.ip_forward":             "1",
		"net.ipv4.conf.all.rp_filter":     "1", // left: the interfaces' own say loose
		"net.ipv4.conf.out0.rp_filter":    "2",
		"net.ipv4.conf.in0.rp_filter":     "2",
		"net.ipv4.conf.all.accept_local":  "0",
		"net.ipv4.conf.out0.accept_local": "0",
		"net.ipv4.conf.in0.accept_local":  "1",
	}
	if got := e.sysctls(t, natSysctlNames...); !mapsEqual(got, want) {
		t.Errorf("after apply %v, want %v", got, want)
	}
	for _, s := range []string{"set net.ipv4.ip_forward to 1 (was 0)", "set net.ipv4.conf.in0.accept_local to 1 (was 0)",
		"set net.ipv4.conf.out0.rp_filter to 2 (was 0)", "set net.ipv4.conf.in0.rp_filter to 2 (was 1)"} {
		if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, s) }) {
			t.Errorf("no note %q in %q", s, rep.Notes)
		}
	}
	// A second apply changes nothing and keeps what was found.
	if rep := e.apply(t, natArtifact(256), edgeAddrs); slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.HasPrefix(n, "set net.") }) {
		t.Errorf("second apply changed sysctls: %q", rep.Notes)
	}

	res, err := runtime.DetachReport(e.opts, "in0")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Notes) > 0 {
		t.Errorf("detach of one NAT interface of two restored: %q", res.Notes)
	}
	if got := e.sysctls(t, natSysctlNames...); !mapsEqual(got, want) {
		t.Errorf("after detaching in0 %v, want them kept: %v", got, want)
	}
	res, err = runtime.DetachReport(e.opts, "out0")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.sysctls(t, natSysctlNames...); !mapsEqual(got, found) {
		t.Errorf("after the last detach %v, want what was found %v; notes %q", got, found, res.Notes)
	}
	if len(res.Notes) != 4 {
		t.Errorf("restore notes %q, want 4", res.Notes)
	}

	// Values already right are not touched, nor restored; one changed by
	// the operator since apply is left as the operator set it.
	e.setSysctls(t, map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.out0.rp_filter": "0", "net.ipv4.conf.in0.rp_filter": "2"})
	rep = e.apply(t, natArtifact(256), edgeAddrs)
	if n := slices.IndexFunc(rep.Notes, func(n string) bool { return strings.HasPrefix(n, "set net.") }); n >= 0 && !strings.Contains(rep.Notes[n], "in0.accept_local") {
		t.Errorf("apply changed a sysctl that was right: %q", rep.Notes)
	}
	e.setSysctls(t, map[string]string{"net.ipv4.conf.in0.accept_local": "0", "net.ipv4.ip_forward": "0"})
	res, err = runtime.DetachReport(e.opts, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.sysctls(t, "net.ipv4.ip_forward", "net.ipv4.conf.in0.accept_local"); got["net.ipv4.ip_forward"] != "0" || got["net.ipv4.conf.in0.accept_local"] != "0" {
		t.Errorf("detach changed values it had not set or the operator changed: %v", got)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "left net.ipv4.conf.in0.accept_local at 0") {
		t.Errorf("notes %q, want one saying accept_local was left", res.Notes)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestNATSysctlsForwardFollowers: writing ip_forward makes the kernel
// set conf.all.accept_redirects to its opposite and every interface's
// forwarding to it; the restore puts those back as they were found too,
// whether apply's write changed them or only the restore's would.
func TestNATSysctlsForwardFollowers(t *testing.T) {
	for _, redirects := range []string{"0", "1"} {
		t.Run("accept_redirects="+redirects, func(t *testing.T) {
			e := newNATEnv(t)
			names := []string{"net.ipv4.ip_forward", "net.ipv4.conf.all.accept_redirects", "net.ipv4.conf.default.forwarding",
				"net.ipv4.conf.lo.forwarding", "net.ipv4.conf.out0.forwarding", "net.ipv4.conf.in0.forwarding"}
			e.setSysctls(t, map[string]string{"net.ipv4.ip_forward": "0"})
			// One interface forwards on its own.
			e.setSysctls(t, map[string]string{"net.ipv4.conf.all.accept_redirects": redirects, "net.ipv4.conf.lo.forwarding": "1"})
			found := e.sysctls(t, names...)
			rep := e.apply(t, natArtifact(256), edgeAddrs)
			if got := e.sysctls(t, "net.ipv4.conf.out0.forwarding", "net.ipv4.conf.in0.forwarding"); got["net.ipv4.conf.out0.forwarding"] != "1" || got["net.ipv4.conf.in0.forwarding"] != "1" {
				t.Errorf("after apply %v, want the interfaces forwarding; notes %q", got, rep.Notes)
			}
			if _, err := runtime.Detach(e.opts, ""); err != nil {
				t.Fatal(err)
			}
			if got := e.sysctls(t, names...); !mapsEqual(got, found) {
				t.Errorf("after detach %v, want what was found %v", got, found)
			}
		})
	}
}

// TestNATSysctlsUndoneOnFailure: an apply that fails after setting the
// sysctls puts them back.
func TestNATSysctlsUndoneOnFailure(t *testing.T) {
	e := newNATEnv(t)
	e.setSysctls(t, map[string]string{"net.ipv4.ip_forward": "0"})
	a := natArtifact(256)
	// The second attach to out0 fails, after the sysctls were set.
	a.Manifest.Interfaces = append(a.Manifest.Interfaces, artifact.InterfaceBinding{Name: "out0", Mode: "bogus", NAT: "outside", NATBlock: "edge"})
	_, err := runtime.Apply(elfBytes(t, a), runtime.ApplyOptions{Options: e.opts, NAT: edgeAddrs})
	if err == nil || !strings.Contains(err.Error(), "attach") {
		t.Fatalf("apply: %v, want a failure to attach", err)
	}
	if got := e.sysctls(t, "net.ipv4.ip_forward"); got["net.ipv4.ip_forward"] != "0" {
		t.Errorf("ip_forward %s after a failed apply, want 0 again", got["net.ipv4.ip_forward"])
	}
}

// TestNATARPWarning: apply warns about an outside address the outside
// interface lacks, not about one it has, nor with proxy ARP on.
func TestNATARPWarning(t *testing.T) {
	e := newNATEnv(t)
	addrs := []runtime.NATAddresses{{
		Block:      "edge",
		Masquerade: []netip.Addr{netip.MustParseAddr("203.0.113.1")},
		Static:     []netip.Addr{netip.MustParseAddr("203.0.113.7")},
	}}
	arp := func(notes []string) []string {
		var out []string
		for _, n := range notes {
			if strings.Contains(n, "ARP") {
				out = append(out, n)
			}
		}
		return out
	}
	got := arp(e.apply(t, natArtifact(256), addrs).Notes)
	if len(got) != 1 || !strings.Contains(got[0], "static outside address 203.0.113.7 is not an address of the outside interface out0") {
		t.Errorf("ARP notes %q, want one about 203.0.113.7 on out0", got)
	}
	e.setSysctls(t, map[string]string{"net.ipv4.conf.out0.proxy_arp": "1"})
	if got := arp(e.apply(t, natArtifact(256), addrs).Notes); len(got) != 0 {
		t.Errorf("ARP notes with proxy ARP on: %q", got)
	}

	// An address of another interface is answered for, unless arp_ignore
	// says otherwise.
	e.setSysctls(t, map[string]string{"net.ipv4.conf.out0.proxy_arp": "0"})
	lo, _ := e.ns.Handle.LinkByName("lo")
	a, _ := netlink.ParseAddr("203.0.113.7/32")
	if err := e.ns.Handle.AddrAdd(lo, a); err != nil {
		t.Fatal(err)
	}
	if got := arp(e.apply(t, natArtifact(256), addrs).Notes); len(got) != 0 {
		t.Errorf("ARP notes for an address on lo with arp_ignore 0: %q", got)
	}
	e.setSysctls(t, map[string]string{"net.ipv4.conf.out0.arp_ignore": "1"})
	if got := arp(e.apply(t, natArtifact(256), addrs).Notes); len(got) != 1 {
		t.Errorf("ARP notes for an address on lo with arp_ignore 1: %q, want one", got)
	}
}

// TestNATListAndFlush: a translated flow's entry lists with its
// translation, and a flush empties the NAT and fragment maps with the
// connection table (filled by hand, as the datapath would).
func TestNATListAndFlush(t *testing.T) {
	e := newNATEnv(t)
	e.apply(t, natArtifact(256), edgeAddrs)
	ct, err := runtime.OpenConntrack(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	inside := conntrack.Endpoint{Addr: netip.MustParseAddr("10.0.0.5"), Port: 40000}
	server := conntrack.Endpoint{Addr: netip.MustParseAddr("198.51.100.8"), Port: 53}
	outside := conntrack.Endpoint{Addr: netip.MustParseAddr("203.0.113.1"), Port: 20001}
	key, _ := conntrack.NewKey(4, 17, inside, server)
	entry := conntrack.Entry{Expires: 1 << 62, State: conntrack.StateNone, NAT: conntrack.NATSource, NATLo: key.Lo == inside,
		NATAddr: outside.Addr.As4(), NATPort: outside.Port}
	if key.Lo == inside {
		entry.Flags |= conntrack.FlagOrigLo
	}
	if err := ct.Unassured.Put(key.Encode(), entry.Encode()); err != nil {
		t.Fatal(err)
	}
	nt := e.natTable(t)
	akey, _ := conntrack.NewKey(4, 17, outside, server)
	alias := nat.Alias{Expires: 1 << 62, OrigAddr: inside.Addr, OrigPort: inside.Port, Kind: conntrack.NATSource, Lo: akey.Lo == outside}
	if err := nt.Aliases.Put(akey.Encode(), alias.Encode()); err != nil {
		t.Fatal(err)
	}
	fk := nat.FragKey{Src: inside.Addr, Dst: server.Addr, ID: 77, Proto: 17}
	if err := nt.Fragments.Put(fk.Encode(), nat.Frag{Addr: outside.Addr, Which: nat.FragSource}.Encode()); err != nil {
		t.Fatal(err)
	}

	ls, err := runtime.ListConntrack(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Flows) != 1 {
		t.Fatalf("listed %d flows, want 1", len(ls.Flows))
	}
	if ls.NAT == nil || ls.NAT.Entries != 1 {
		t.Errorf("NAT map fill %+v, want 1 alias", ls.NAT)
	}
	got := ls.Flows[0].Entry
	if got.NAT != conntrack.NATSource || netip.AddrFrom4(got.NATAddr) != outside.Addr || got.NATPort != outside.Port {
		t.Errorf("listed entry %+v, want source NAT to %v", got, outside)
	}

	fl, err := runtime.FlushConntrack(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if !fl.NAT || fl.Unassured != 1 || fl.Aliases != 1 || fl.Fragments != 1 {
		t.Errorf("flush removed %+v, want 1 entry, 1 alias, 1 fragment record", fl)
	}
	if live, _ := nt.LiveAliases(); len(live) != 0 {
		t.Errorf("aliases after the flush: %v", live)
	}
}

// TestNATSysctlsRolledBack: an apply that is not confirmed in time
// detaches, and gives the sysctls back as a detach would.
func TestNATSysctlsRolledBack(t *testing.T) {
	e := newNATEnv(t)
	e.setSysctls(t, map[string]string{"net.ipv4.ip_forward": "0", "net.ipv4.conf.in0.accept_local": "0"})
	rep, err := runtime.Apply(elfBytes(t, natArtifact(256)), runtime.ApplyOptions{Options: e.opts, NAT: edgeAddrs, Confirm: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.sysctls(t, "net.ipv4.ip_forward"); got["net.ipv4.ip_forward"] != "1" {
		t.Fatalf("ip_forward %v after apply, want 1", got)
	}
	confirmed, err := runtime.WaitConfirm(e.opts, rep.Pending, nil)
	if confirmed || err != nil {
		t.Fatalf("WaitConfirm = %v, %v; want a rollback", confirmed, err)
	}
	if got := e.sysctls(t, "net.ipv4.ip_forward", "net.ipv4.conf.in0.accept_local"); got["net.ipv4.ip_forward"] != "0" || got["net.ipv4.conf.in0.accept_local"] != "0" {
		t.Errorf("after the rollback %v, want both 0 again", got)
	}
	if _, err := runtime.OpenNAT(e.opts); err == nil {
		t.Error("the NAT table outlived the rollback")
	}
}

// trackingArtifact is natArtifact without NAT: the same connection
// table, interfaces that play no part in NAT.
func trackingArtifact(ct uint32) *artifact.Artifact {
	a := natArtifact(ct)
	a.Maps = slices.DeleteFunc(a.Maps, func(m artifact.Map) bool { return strings.HasPrefix(m.Name, "nat") })
	a.Instructions = slices.DeleteFunc(a.Instructions, func(ins asm.Instruction) bool { return strings.HasPrefix(ins.Reference(), "nat") })
	a.Egress.Instructions = slices.DeleteFunc(a.Egress.Instructions, func(ins asm.Instruction) bool { return strings.HasPrefix(ins.Reference(), "nat") })
	a.Manifest.NAT = nil
	for i := range a.Manifest.Interfaces {
		a.Manifest.Interfaces[i].NAT, a.Manifest.Interfaces[i].NATBlock = "", ""
	}
	return a
}

// TestNATReplacedByTracking: applying a policy without NAT over the NAT
// interfaces gives the sysctls back and removes the NAT table, and
// keeps the connection table.
func TestNATReplacedByTracking(t *testing.T) {
	e := newNATEnv(t)
	e.setSysctls(t, map[string]string{"net.ipv4.ip_forward": "0"})
	e.apply(t, natArtifact(256), edgeAddrs)
	rep := e.apply(t, trackingArtifact(256), nil)
	if got := e.sysctls(t, "net.ipv4.ip_forward"); got["net.ipv4.ip_forward"] != "0" {
		t.Errorf("ip_forward %v after NAT was replaced, want 0 again; notes %q", got, rep.Notes)
	}
	if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.HasPrefix(n, "restored net.ipv4.ip_forward to 0") }) {
		t.Errorf("no note of the restore in %q", rep.Notes)
	}
	if _, err := runtime.OpenNAT(e.opts); err == nil {
		t.Error("the NAT table outlived the last NAT interface")
	}
	ct, err := runtime.OpenConntrack(e.opts)
	if err != nil {
		t.Fatalf("the connection table went with NAT: %v", err)
	}
	ct.Close()
}

// TestNATReservedOverflow: ports that do not fit the reserved-ports map
// are said.
func TestNATReservedOverflow(t *testing.T) {
	e := newNATEnv(t)
	for port := range 3 {
		e.ns.Do(t, func() {
			ln, err := net.Listen("tcp4", "0.0.0.0:"+strconv.Itoa(7100+port))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		})
	}
	a := natArtifact(256)
	for i, m := range a.Maps {
		if m.Name == "nat_reserved" {
			a.Maps[i] = artifact.MapNATReserved.Map("nat_reserved", 2)
		}
	}
	rep := e.apply(t, a, edgeAddrs)
	if !slices.ContainsFunc(rep.Notes, func(n string) bool {
		return strings.Contains(n, "1 of the host's 3 listening ports did not fit in the reserved-ports map (2 entries)")
	}) {
		t.Errorf("no note of the ports that did not fit in %q", rep.Notes)
	}
}
