package lab

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/policy/eval"
)

// The NAT differential: natPolicies random nat blocks (masquerades with
// small or large ranges, forwards, statics), each run on natFlowsPer
// random conversations across both interfaces. Reference (eval.Host) and
// kernel (the host backend's programs) must agree on every frame's
// verdict, counter slots, ct_state, entry and bytes as it leaves, and
// after every conversation on the connection table with its
// translations, the aliases and the fragment records.
const (
	natPolicies      = 12
	natFlowsPer      = 10
	natShortPolicies = 4
	natShortFlowsPer = 5
	natFramesPerFlow = 40
	natSeed          = 20260
	natOutside       = "eth0"
	natInside        = "eth1"
)

var (
	natPublic   = netip.MustParseAddr("203.0.113.1")
	natInsiders = []string{"10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8", "10.0.0.9"}
	natRemotes  = []string{"198.51.100.1", "198.51.100.2", "192.0.2.9"}
	natStatics  = [][2]string{{"10.0.0.7", "203.0.113.7"}, {"10.0.0.8", "203.0.113.8"}}
)

// natPolicySource is a random NAT policy file.
func natPolicySource(r *rand.Rand) string {
	var b strings.Builder
	fmt.Fprintf(&b, "interface %q { policy = \"outside\" }\ninterface %q { policy = \"inside\" }\n", natOutside, natInside)
	b.WriteString("conntrack {\n  timeouts = {\n    udp = \"30s\"\n    icmp = \"30s\"\n    tcp_syn_sent = \"1m\"\n  }\n}\n")
	if r.Intn(2) == 0 {
		b.WriteString("policy \"outside\" {\n  default = \"pass\"\n  malformed = \"drop\"\n}\n")
	} else {
		b.WriteString(`policy "outside" {
  default   = "drop"
  malformed = "drop"
  rule "replies" {
    ct_state = ["established", "related"]
    action   = "pass"
  }
  rule "public" {
    dst    = "203.0.113.0/24"
    proto  = ["tcp", "udp"]
    action = "pass"
  }
  rule "frags" {
    fragment = "later"
    action   = "pass"
  }
}
`)
	}
	b.WriteString("policy \"inside\" {\n  default = \"pass\"\n  malformed = \"drop\"\n  rule \"udp\" {\n    proto = \"udp\"\n    action = \"count\"\n  }\n}\n")
	fmt.Fprintf(&b, "nat \"edge\" {\n  outside = %q\n  inside = %q\n", natOutside, natInside)
	lo := 1024 + r.Intn(60000)
	hi := lo + []int{0, 1, 3, 40000}[r.Intn(4)]
	fmt.Fprintf(&b, "  masquerade {\n    src = \"10.0.0.0/24\"\n    to = %q\n    ports = \"%d-%d\"\n  }\n", natPublic, lo, min(hi, 65535))
	if r.Intn(2) == 0 {
		fmt.Fprintf(&b, "  forward \"web\" {\n    proto = \"tcp\"\n    dst = %q\n    dst_port = 8080\n    to = \"10.0.0.5:80\"\n  }\n", natPublic)
	}
	if r.Intn(2) == 0 {
		fmt.Fprintf(&b, "  forward \"games\" {\n    proto = \"udp\"\n    dst = %q\n    dst_port = \"27000-27010\"\n    to = \"10.0.0.6\"\n  }\n", natPublic)
	}
	for _, s := range natStatics[:r.Intn(len(natStatics)+1)] {
		fmt.Fprintf(&b, "  static {\n    inside = %q\n    outside = %q\n  }\n", s[0], s[1])
	}
	b.WriteString("}\n")
	return b.String()
}

// natGen generates one conversation, asking a scratch reference host
// what each frame became so that replies and errors answer the frames
// as they left.
type natGen struct {
	r      *rand.Rand
	h      *eval.Host
	frames []Frame
	specs  []string
	// left are the frames that passed, as they left, with the interface
	// they left by and the frame they came of.
	left  []leftFrame
	clock time.Duration
	ipID  uint16
}

type leftFrame struct {
	on, by string // arrived on, left by
	in     []byte
	out    []byte
}

func (g *natGen) other(iface string) string {
	if iface == natOutside {
		return natInside
	}
	return natOutside
}

// add appends the frame of spec on iface (out: the host's own) and runs
// it on the scratch host.
func (g *natGen) add(iface string, out bool, spec string) {
	data, err := ParsePacket(spec)
	if err != nil {
		panic(fmt.Sprintf("natGen: %s: %v", spec, err))
	}
	g.clock += time.Millisecond
	f := Frame{Index: len(g.frames) + 1, Data: data, Time: g.clock, Out: out, Iface: iface}
	g.frames = append(g.frames, f)
	prefix := "on " + iface + " "
	if out {
		prefix += "out "
	}
	g.specs = append(g.specs, prefix+spec)
	if out {
		g.h.Egress(iface, data, uint64(g.clock))
		return
	}
	res := g.h.Ingress(iface, data, uint64(g.clock))
	if res.Verdict == policy.ActionPass {
		g.left = append(g.left, leftFrame{on: iface, by: g.other(iface), in: data, out: res.Frame})
	}
}

func (g *natGen) pick(s []string) string { return s[g.r.Intn(len(s))] }

func (g *natGen) port() int {
	if g.r.Intn(3) == 0 {
		return 20000 + g.r.Intn(4)
	}
	return 1024 + g.r.Intn(64000)
}

func (g *natGen) csum(proto string) string {
	switch n := g.r.Intn(6); {
	case n == 0:
		return " csum partial"
	case n == 1 && proto == "udp":
		return " csum none"
	}
	return ""
}

// newFlow opens a flow from an inside host, or from outside to a public
// address.
func (g *natGen) newFlow() {
	proto := g.pick([]string{"tcp", "udp", "udp", "icmp"})
	if g.r.Intn(3) == 0 {
		dst := g.pick([]string{"203.0.113.1", "203.0.113.7", "203.0.113.8"})
		port := []int{8080, 27005, 22, g.port()}[g.r.Intn(4)]
		g.add(natOutside, false, g.spec(proto, g.pick(natRemotes), 1024+g.r.Intn(4), dst, port, true))
		return
	}
	g.add(natInside, false, g.spec(proto, g.pick(natInsiders), g.port(), g.pick(natRemotes), []int{53, 443, 20000}[g.r.Intn(3)], true))
}

func (g *natGen) spec(proto, src string, sp int, dst string, dp int, first bool) string {
	switch proto {
	case "icmp":
		typ := "echo-request"
		if !first {
			typ = "echo-reply"
		}
		return fmt.Sprintf("icmp %s > %s type %s id %d", src, dst, typ, sp)
	case "tcp":
		flags := "S"
		if !first {
			flags = g.pick([]string{"SA", "A", "PA", "FA", "R"})
		}
		return fmt.Sprintf("tcp %s:%d > %s:%d flags %s len %d%s", src, sp, dst, dp, flags, g.r.Intn(3)*100, g.csum("tcp"))
	}
	return fmt.Sprintf("udp %s:%d > %s:%d len %d%s", src, sp, dst, dp, g.r.Intn(300), g.csum("udp"))
}

// reply answers a frame that left, arriving on the interface it left by;
// or repeats it on its own interface.
func (g *natGen) reply() {
	if len(g.left) == 0 {
		g.newFlow()
		return
	}
	l := g.left[g.r.Intn(len(g.left))]
	src := l.out
	iface := l.by
	if g.r.Intn(3) == 0 {
		src, iface = l.in, l.on
	}
	p, bad := eval.Parse(src)
	if bad != nil || p.Family != 4 || p.Fragment != policy.FragNone {
		g.newFlow()
		return
	}
	swap := iface == l.by
	s, d, sp, dp := p.Src.String(), p.Dst.String(), int(p.SrcPort), int(p.DstPort)
	if swap {
		s, d, sp, dp = d, s, dp, sp
	}
	switch p.Proto {
	case 6:
		g.add(iface, false, g.spec("tcp", s, sp, d, dp, !swap))
	case 17:
		g.add(iface, false, g.spec("udp", s, sp, d, dp, false))
	case 1:
		if p.HasICMP {
			g.add(iface, false, g.spec("icmp", s, int(p.EchoID), d, 0, !swap))
		}
	}
}

// icmpError sends an error about a frame: as it left, from a router on
// the side it left by; or as it arrived, from a router on its own side.
func (g *natGen) icmpError() {
	if len(g.left) == 0 {
		g.newFlow()
		return
	}
	l := g.left[g.r.Intn(len(g.left))]
	about, iface := l.out, l.by
	if g.r.Intn(3) == 0 {
		about, iface = l.in, l.on
	}
	p, bad := eval.Parse(about)
	if bad != nil || p.Family != 4 || p.Fragment != policy.FragNone || (p.Proto != 6 && p.Proto != 17 && !p.HasICMP) {
		g.newFlow()
		return
	}
	var carried string
	switch p.Proto {
	case 6:
		carried = fmt.Sprintf("tcp %s:%d > %s:%d flags S", p.Src, p.SrcPort, p.Dst, p.DstPort)
	case 17:
		carried = fmt.Sprintf("udp %s:%d > %s:%d", p.Src, p.SrcPort, p.Dst, p.DstPort)
	default:
		carried = fmt.Sprintf("icmp %s > %s type echo-request id %d", p.Src, p.Dst, p.EchoID)
	}
	router := "192.0.2.254"
	if iface == natInside {
		router = g.pick([]string{"10.0.0.254", p.Dst.String()})
	}
	kind := g.pick([]string{"type dest-unreachable code 3", "type dest-unreachable code 4", "type time-exceeded"})
	g.add(iface, false, fmt.Sprintf("icmp %s > %s %s about %s", router, p.Src, kind, carried))
}

// fragments sends a fragmented UDP datagram, its first fragment now and
// then lost.
func (g *natGen) fragments() {
	g.ipID++
	src, dst, iface := g.pick(natInsiders), g.pick(natRemotes), natInside
	if g.r.Intn(2) == 0 {
		src, dst, iface = g.pick(natRemotes), g.pick([]string{"203.0.113.1", "203.0.113.7", "192.0.2.1"}), natOutside
	}
	sp, dp := g.port(), g.port()
	if g.r.Intn(4) != 0 {
		g.add(iface, false, fmt.Sprintf("udp %s:%d > %s:%d frag first len 200", src, sp, dst, dp))
	}
	g.add(iface, false, fmt.Sprintf("udp %s:%d > %s:%d frag later len 100", src, sp, dst, dp))
}

// hostOwn sends the host's own traffic out of the outside, or a frame
// that left translated as the stack would send it on.
func (g *natGen) hostOwn() {
	if len(g.left) > 0 && g.r.Intn(2) == 0 {
		l := g.left[g.r.Intn(len(g.left))]
		if s := summarize(l.out); !strings.HasPrefix(s, "malformed") {
			g.add(l.by, true, s)
			return
		}
	}
	g.add(natOutside, true, fmt.Sprintf("udp %s:%d > %s:53", natPublic, g.port(), g.pick(natRemotes)))
}

// natConversation generates one conversation on cfg.
func natConversation(cfg *policy.Config, seed int64) ([]Frame, []string) {
	g := &natGen{r: rand.New(rand.NewSource(seed)), h: eval.NewHost(cfg, eval.HostOptions{Seed: HostSeed})}
	for len(g.frames) < natFramesPerFlow {
		switch n := g.r.Intn(20); {
		case n < 6:
			g.newFlow()
		case n < 12:
			g.reply()
		case n < 14:
			g.icmpError()
		case n < 16:
			g.fragments()
		case n < 18:
			g.hostOwn()
		case n < 19:
			// Well away from the timeouts' edges (30 s, 1 m, 2 m).
			g.clock += []time.Duration{10 * time.Second, 45 * time.Second, 3 * time.Minute}[g.r.Intn(3)]
		default:
			g.add(natOutside, false, fmt.Sprintf("udp %s:53 > %s:%d", g.pick(natRemotes), natPublic, g.port()))
		}
	}
	return g.frames, g.specs
}

// natOutcome is a frame's outcome for comparison: outcome and the bytes
// as it left.
type natOutcome struct {
	outcome
	Frame []byte
}

func (o natOutcome) equal(p natOutcome) bool {
	return o.outcome.equal(p.outcome) && bytes.Equal(o.Frame, p.Frame)
}

func (o natOutcome) String() string {
	if o.Frame == nil {
		return o.outcome.String()
	}
	return fmt.Sprintf("%s rewritten to %s\n% x", o.outcome, summarize(o.Frame), o.Frame)
}

// natTally counts the NAT differential.
type natTally struct {
	policies, flows, frames, agreed, rewritten, tables, failures int
	rules, statuses                                              map[string]int
	reports                                                      []string
}

func (t *natTally) fail(s string) {
	t.failures++
	if len(t.reports) < diffMaxReports {
		t.reports = append(t.reports, s)
	}
}

func (t *natTally) summary() string {
	return fmt.Sprintf("NAT differential: %d NAT policies, %d conversations, %d frames, %d agree (%d rewritten), tables agree after %d conversations, %d failures",
		t.policies, t.flows, t.frames, t.agreed, t.rewritten, t.tables, t.failures)
}

// runNATPolicy runs conversations on one generated NAT policy.
func runNATPolicy(src string, seed int64, nflows int, tally *natTally) {
	cfg, diags := policy.Load("nat.hcl", []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		tally.fail(fmt.Sprintf("generated policy does not load: %s\n%s", diags.Error(), src))
		return
	}
	k, err := newHostKernel(cfg)
	if err != nil {
		tally.fail(fmt.Sprintf("load: %v\n%s", err, src))
		return
	}
	defer k.Close()
	tally.policies++
	for i := range nflows {
		frames, specs := natConversation(cfg, seed+int64(i))
		if err := k.flush(); err != nil {
			tally.fail(err.Error())
			return
		}
		runNATConversation(cfg, k, src, frames, specs, tally)
	}
}

func runNATConversation(cfg *policy.Config, k *hostKernel, src string, frames []Frame, specs []string, tally *natTally) {
	tally.flows++
	ref := newHostReference(cfg)
	report := func(what string) string {
		return fmt.Sprintf("%s\nthe conversation:\n  %s\npolicy:\n%s", what, strings.Join(specs, "\n  "), src)
	}
	start := time.Now()
	for _, f := range frames {
		tally.frames++
		rv, rerr := ref.Run(f)
		kv, kerr := k.Run(f)
		want, got := natOutcome{outcomeOf(rv, rerr), rv.Frame}, natOutcome{outcomeOf(kv, kerr), kv.Frame}
		if !want.equal(got) {
			tally.fail(report(fmt.Sprintf("frame %d (%s) differs\nreference: %s\nkernel:    %s", f.Index, specs[f.Index-1], want, got)))
			tally.frames += len(frames) - f.Index
			return
		}
		if rv.Frame != nil {
			if err := checkNATChecksums(f.Data, rv.Frame); err != nil {
				tally.fail(report(fmt.Sprintf("frame %d (%s) leaves with a bad checksum: %v\n% x", f.Index, specs[f.Index-1], err, rv.Frame)))
				tally.frames += len(frames) - f.Index
				return
			}
		}
		tally.agreed++
		tally.rules[rv.Rule]++
		tally.statuses[rv.CTState]++
		if rv.Frame != nil {
			tally.rewritten++
		}
	}
	if diff := compareNATTables(ref.h, k, start); diff != "" {
		tally.fail(report("the tables differ after the conversation:\n" + diff))
		return
	}
	tally.tables++
}

// compareNATTables compares the live entries (with their translations),
// the live aliases and the fragment records of the reference host and
// the kernel. Expiries may differ by the real time the replay took.
func compareNATTables(h *eval.Host, k *hostKernel, start time.Time) string {
	var b strings.Builder
	slack := uint64(time.Since(start) + time.Millisecond)
	now := h.Now()
	kNow := monotonicNow()
	near := func(refExp, kExp uint64) bool {
		r, kr := int64(refExp-now), int64(kExp)-int64(kNow)
		return kr <= r+int64(time.Millisecond) && r-kr <= int64(slack)
	}
	kflows, err := k.snapshot()
	if err != nil {
		return err.Error()
	}
	rflows := map[conntrack.Key]conntrack.Entry{}
	for _, f := range h.Flows(now) {
		rflows[f.Key] = f.Entry
	}
	for key, f := range kflows {
		if !f.Entry.Live(kNow) {
			delete(kflows, key)
		}
	}
	for key, re := range rflows {
		kf, ok := kflows[key]
		if !ok {
			fmt.Fprintf(&b, "the reference has %s (%s), the kernel none\n", nat.Describe(conntrack.Flow{Key: key, Entry: re}), re.State)
			continue
		}
		ke := kf.Entry
		if ke.State != re.State || ke.Flags != re.Flags || ke.NAT != re.NAT || ke.NATLo != re.NATLo || ke.NATPort != re.NATPort || ke.NATAddr != re.NATAddr || !near(re.Expires, ke.Expires) {
			fmt.Fprintf(&b, "%v: kernel %+v, reference %+v\n", key, ke, re)
		}
	}
	for key, kf := range kflows {
		if _, ok := rflows[key]; !ok {
			fmt.Fprintf(&b, "the kernel has %s (%s), the reference none\n", nat.Describe(kf.Flow), kf.Entry.State)
		}
	}
	kal, err := kernelAliases(k.maps[partAlias], kNow)
	if err != nil {
		return err.Error()
	}
	ral := h.Aliases(now)
	if len(kal) != len(ral) {
		fmt.Fprintf(&b, "aliases: kernel %v, reference %v\n", kal, ral)
	} else {
		for i := range ral {
			ka, ra := kal[i], ral[i]
			if ka.Key != ra.Key || ka.Alias.OrigAddr != ra.Alias.OrigAddr || ka.Alias.OrigPort != ra.Alias.OrigPort || ka.Alias.Kind != ra.Alias.Kind || ka.Alias.Lo != ra.Alias.Lo || !near(ra.Alias.Expires, ka.Alias.Expires) {
				fmt.Fprintf(&b, "alias %d: kernel %+v, reference %+v\n", i, ka, ra)
			}
		}
	}
	kfr, err := kernelFragments(k.maps[partFragments])
	if err != nil {
		return err.Error()
	}
	rfr := h.Fragments()
	same := len(kfr) == len(rfr)
	for i := 0; same && i < len(rfr); i++ {
		same = kfr[i].Key == rfr[i].Key && kfr[i].Frag.Which == rfr[i].Frag.Which && (rfr[i].Frag.Which == nat.FragUntranslated || kfr[i].Frag.Addr == rfr[i].Frag.Addr)
	}
	if !same {
		fmt.Fprintf(&b, "fragment records: kernel %v, reference %v\n", kfr, rfr)
	}
	return b.String()
}

// monotonicNow is the kernel's clock.
func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// kernelAliases returns the live aliases of NAT map m, sorted by key.
func kernelAliases(m *ebpf.Map, now uint64) ([]nat.AliasEntry, error) {
	var out []nat.AliasEntry
	var kb, vb []byte
	it := m.Iterate()
	for it.Next(&kb, &vb) {
		key, err := conntrack.DecodeKey(kb)
		if err != nil {
			return nil, err
		}
		a, err := nat.DecodeAlias(vb)
		if err != nil {
			return nil, err
		}
		if a.Live(now) {
			out = append(out, nat.AliasEntry{Key: key, Alias: a})
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key.Encode(), out[j].Key.Encode()) < 0 })
	return out, it.Err()
}

// kernelFragments returns the records of fragment map m, sorted by key.
func kernelFragments(m *ebpf.Map) ([]nat.FragEntry, error) {
	var out []nat.FragEntry
	var kb, vb []byte
	it := m.Iterate()
	for it.Next(&kb, &vb) {
		f, err := nat.DecodeFrag(vb)
		if err != nil {
			return nil, err
		}
		key := nat.FragKey{Src: netip.AddrFrom4([4]byte(kb[0:4])), Dst: netip.AddrFrom4([4]byte(kb[4:8])), ID: binary.NativeEndian.Uint16(kb[8:]), Proto: kb[10]}
		out = append(out, nat.FragEntry{Key: key, Frag: f})
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key.Encode(), out[j].Key.Encode()) < 0 })
	return out, it.Err()
}

func TestNATDifferential(t *testing.T) {
	np, nf := natPolicies, natFlowsPer
	if testing.Short() {
		np, nf = natShortPolicies, natShortFlowsPer
	}
	start := time.Now()
	tally := &natTally{rules: map[string]int{}, statuses: map[string]int{}}
	r := rand.New(rand.NewSource(natSeed))
	for i := range np {
		runNATPolicy(natPolicySource(r), natSeed+int64(i)*1000, nf, tally)
	}
	t.Logf("%s in %v", tally.summary(), time.Since(start).Round(time.Millisecond))
	t.Logf("decisions: %v; ct_state: %v", tally.rules, tally.statuses)
	for _, rep := range tally.reports {
		t.Errorf("disagreement:\n%s", rep)
	}
	if tally.failures > len(tally.reports) {
		t.Errorf("%d more disagreements not shown", tally.failures-len(tally.reports))
	}
	for _, rule := range []string{eval.RuleNATExhausted, eval.RuleNATFragment} {
		if tally.rules[rule] == 0 && !testing.Short() {
			t.Errorf("no frame was dropped on %s: the generator no longer exercises it", rule)
		}
	}
	for _, st := range []string{"new", "established", "related", "invalid", "untracked"} {
		if tally.statuses[st] == 0 && !testing.Short() {
			t.Errorf("no frame was %s: the generator no longer exercises it", st)
		}
	}
	fmt.Println(tally.summary())
}

// FuzzDifferentialNATFlow runs one random NAT policy on one random
// conversation per seed: reference and kernel must agree as in
// TestNATDifferential. CI runs its seeds only.
func FuzzDifferentialNATFlow(f *testing.F) {
	for _, seed := range []int64{1, 2, 3} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed int64) {
		tally := &natTally{rules: map[string]int{}, statuses: map[string]int{}}
		runNATPolicy(natPolicySource(rand.New(rand.NewSource(seed))), seed, 1, tally)
		for _, rep := range tally.reports {
			t.Errorf("disagreement:\n%s", rep)
		}
	})
}
