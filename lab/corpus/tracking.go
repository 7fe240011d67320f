package corpus

import (
	"fmt"
	"math/rand"
	"strings"
)

// poolCTStates are the ct_state values tracking policies match.
var poolCTStates = []string{`"new"`, `"established"`, `"related"`, `"invalid"`,
	`["established", "related"]`, `"!new"`, `"!invalid"`, `["new", "invalid"]`, `"!established"`}

// poolTimeouts are the durations a tracking policy's conntrack block sets
// some of its timeouts to, short enough that a flow's waits cross them.
var poolTimeouts = []string{"1s", "5s", "10s", "30s", "45s", "1m", "90s", "2m", "5m", "10m", "1h"}

// timeoutNames are the names of a conntrack block's timeouts.
var timeoutNames = []string{"tcp_syn_sent", "tcp_syn_recv", "tcp_established", "tcp_fin_wait",
	"tcp_close_wait", "tcp_last_ack", "tcp_time_wait", "tcp_close", "udp", "udp_stream", "icmp", "other"}

// TrackingPolicies returns n policies derived from seed that track
// connections: generated as Policies generates them, with ct_state in some
// of their rules, often the rules a stateful firewall starts with
// (established and related pass, invalid drops) and a conntrack block that
// shortens some timeouts. Each is valid for policy.Load and tracks
// connections (one rule at least matches ct_state). The flows of Flows
// exercise them.
func TrackingPolicies(seed int64, n int) []GeneratedPolicy {
	r := rand.New(rand.NewSource(seed))
	ps := make([]GeneratedPolicy, n)
	for i := range ps {
		g := &policyGen{r: r, tracking: true}
		name := fmt.Sprintf("t%d", i)
		ps[i] = GeneratedPolicy{
			Name:   fmt.Sprintf("gen-ct-%d-%d.hcl", seed, i),
			Policy: name,
			Source: g.trackingPolicy(name),
		}
	}
	return ps
}

func (g *policyGen) trackingPolicy(name string) []byte {
	r := g.r
	g.genConntrack()
	g.genVariables()
	g.genSets()
	fmt.Fprintf(&g.b, "policy %q {\n", name)
	fmt.Fprintf(&g.b, "  default = %q\n", pick(r, []string{"pass", "drop", "drop"}))
	if chance(r, 0.85) {
		fmt.Fprintf(&g.b, "  malformed = %q\n", pick(r, []string{"pass", "drop"}))
	}
	// A stateful firewall's usual first rules, in a random order and not
	// always all of them.
	var head []string
	if chance(r, 0.6) {
		head = append(head, "  rule \"ct-replies\" {\n    ct_state = [\"established\", \"related\"]\n    action   = \"pass\"\n  }\n")
	}
	if chance(r, 0.4) {
		head = append(head, fmt.Sprintf("  rule \"ct-invalid\" {\n    ct_state = \"invalid\"\n    action   = %q\n  }\n", pick(r, []string{"drop", "count"})))
	}
	if chance(r, 0.3) {
		head = append(head, "  rule \"ct-new\" {\n    ct_state = \"new\"\n    action   = \"count\"\n  }\n")
	}
	r.Shuffle(len(head), func(i, j int) { head[i], head[j] = head[j], head[i] })
	for _, h := range head {
		g.b.WriteString(h)
	}
	n := 1 + r.Intn(12)
	if chance(r, 0.3) {
		n = 1 + r.Intn(30)
	}
	start := g.b.Len()
	for i := 0; i < n; i++ {
		g.rule(i)
	}
	if len(head) == 0 && !strings.Contains(g.b.String()[start:], "ct_state") {
		// Tracking is on only when a rule matches ct_state.
		g.b.WriteString("  rule \"ct-any\" {\n    ct_state = \"!invalid\"\n    action   = \"count\"\n  }\n")
	}
	g.b.WriteString("}\n")
	return []byte(g.b.String())
}

// genConntrack writes a conntrack block, most of the time: a small table
// (its maps are made for every policy) and some short timeouts.
func (g *policyGen) genConntrack() {
	r := g.r
	if chance(r, 0.15) {
		return
	}
	fmt.Fprintf(&g.b, "conntrack {\n  max_entries = %d\n", pick(r, []int{1024, 2048, 4096}))
	var set []string
	for _, name := range timeoutNames {
		if chance(r, 0.3) {
			set = append(set, fmt.Sprintf("    %s = %q\n", name, pick(r, poolTimeouts)))
		}
	}
	if len(set) > 0 {
		g.b.WriteString("  timeouts = {\n")
		for _, s := range set {
			g.b.WriteString(s)
		}
		g.b.WriteString("  }\n")
	}
	g.b.WriteString("}\n\n")
}
