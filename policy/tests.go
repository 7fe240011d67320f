package policy

import (
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Test is a test block: packets sent through one policy in order, a
// conversation, and what the policy must decide for each. Packets are
// kept as text: package lab parses them (docs/packets.md) and runs the
// test on a backend.
type Test struct {
	Name   string
	Policy *Policy
	// Steps are the packets in order; a test without step blocks has one,
	// from its own packet, expect, rule and ct_state attributes.
	Steps     []*TestStep
	DeclRange hcl.Range
}

// TestStep is one packet of a test and what must become of it.
type TestStep struct {
	// Packet is the packet's one-line text without the "out" mark.
	Packet string
	// Out marks a packet the host itself sends: tracked, never filtered;
	// its verdict is "out".
	Out bool
	// Wait is how long the clock runs before the packet, beyond the 1 ms
	// between consecutive packets.
	Wait time.Duration
	// Expect is the verdict: "pass", "drop", "redirect", or "out" for an
	// Out packet.
	Expect string
	// Rule is the deciding rule's name, "default" or "malformed"; empty
	// when the test does not say.
	Rule string
	// CTState is the ct_state the rules must see ("new", "established",
	// "related", "invalid", "untracked"); empty when the test does not say.
	CTState string
	// To is the interface a redirect must send the packet out of; empty
	// when the test does not say.
	To string
	// Ranges of the attributes, for diagnostics: a failed expectation is
	// reported at the attribute that states it. ExpectRange, RuleRange,
	// CTStateRange and ToRange are the PacketRange when the attribute is
	// absent.
	PacketRange, ExpectRange, RuleRange, CTStateRange, ToRange hcl.Range
}

// VerdictOut is the verdict of a packet the host sends.
const VerdictOut = "out"

// MaxTestSteps bounds the packets of one test.
const MaxTestSteps = 1000

// maxTestWait is the longest wait of a step: longer than any timeout.
const maxTestWait = 31 * 24 * time.Hour

var testVerdicts = []string{"pass", "drop", "redirect"}

// testCTStates are the ct_state values a step may expect.
var testCTStates = append(append([]string(nil), ctStateNames...), "untracked")

var testSchema = &hcl.BodySchema{
	Attributes: append([]hcl.AttributeSchema{{Name: "policy"}}, stepSchema.Attributes...),
	Blocks:     []hcl.BlockHeaderSchema{{Type: "step"}},
}

// stepExpectations are the attributes of a step besides its packet.
var stepExpectations = []string{"expect", "rule", "ct_state", "to", "wait"}

var stepSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "packet"}, {Name: "expect"}, {Name: "rule"}, {Name: "ct_state"}, {Name: "to"}, {Name: "wait"},
	},
}

// declareTests decodes the test blocks: each names its policy (or the
// file has one), and says, for each packet, the verdict and optionally
// the rule, the redirect's interface and the ct_state, all checked
// against that policy.
func (l *loader) declareTests(blocks []*hcl.Block) {
	seen := map[string]hcl.Range{}
	for _, b := range blocks {
		name := b.Labels[0]
		content, diags := b.Body.Content(testSchema)
		l.add(explainPacketLists(diags)...)
		if !l.checkDuplicate("test", name, labelRange(b), seen) {
			continue
		}
		t := &Test{Name: name, DeclRange: b.DefRange}
		p, ok := l.testPolicy(t, content.Attributes["policy"])
		if !ok {
			continue
		}
		t.Policy = p
		t.Steps = l.decodeTestSteps(t, content)
		l.cfg.Tests = append(l.cfg.Tests, t)
	}
}

// explainPacketLists adds, to the error about a packets = [...] list, how
// a conversation is written.
func explainPacketLists(diags hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range diags {
		if d.Summary == "Unsupported argument" && strings.Contains(d.Detail, `"packets"`) {
			d.Detail += " A conversation is a step block per packet, each with its expectations: step { packet = \"...\", expect = \"pass\" }."
		}
	}
	return diags
}

// testPolicy is the policy test t runs: the one its policy attribute
// names, required when the file has more than one.
func (l *loader) testPolicy(t *Test, a *hcl.Attribute) (*Policy, bool) {
	if a == nil {
		if len(l.cfg.Policies) == 1 {
			return l.cfg.Policies[0], true
		}
		if len(l.cfg.Policies) > 1 {
			l.add(diagTestNeedsPolicy(t.Name, l.policyNames(), t.DeclRange))
		}
		return nil, false
	}
	pn, ok := l.evalString(a.Expr, "policy")
	if !ok {
		return nil, false
	}
	p := l.cfg.Policy(pn)
	if p == nil {
		l.add(diagUnknownPolicy(pn, l.policyNames(), a.Expr.Range()))
		return nil, false
	}
	return p, true
}

func (l *loader) policyNames() []string {
	var names []string
	for _, p := range l.cfg.Policies {
		names = append(names, p.Name)
	}
	return names
}

// decodeTestSteps decodes a test's packets: its step blocks, or the
// packet attributes of the test itself, never both.
func (l *loader) decodeTestSteps(t *Test, content *hcl.BodyContent) []*TestStep {
	_, single := content.Attributes["packet"]
	switch {
	case single && len(content.Blocks) > 0:
		l.add(diagTestBothForms(t.Name, content.Blocks[0].DefRange))
		return nil
	case single:
		if s, ok := l.decodeTestStep(t, content.Attributes, t.DeclRange); ok {
			return []*TestStep{s}
		}
		return nil
	case len(content.Blocks) == 0:
		for _, attr := range stepExpectations {
			if a, ok := content.Attributes[attr]; ok {
				l.add(diagTestNoPacket(t.Name, a.NameRange))
				return nil
			}
		}
		l.add(diagTestNoPacket(t.Name, t.DeclRange))
		return nil
	case len(content.Blocks) > MaxTestSteps:
		l.add(diagTestTooLong(t.Name, content.Blocks[MaxTestSteps].DefRange))
		return nil
	}
	for _, attr := range stepExpectations {
		if a, ok := content.Attributes[attr]; ok {
			l.add(diagTestAttrOutsideStep(attr, a.NameRange))
		}
	}
	var steps []*TestStep
	for _, b := range content.Blocks {
		sc, diags := b.Body.Content(stepSchema)
		l.add(diags...)
		if s, ok := l.decodeTestStep(t, sc.Attributes, b.DefRange); ok {
			steps = append(steps, s)
		}
	}
	return steps
}

// decodeTestStep decodes one packet and its expectations; at is where a
// missing attribute is reported.
func (l *loader) decodeTestStep(t *Test, attrs hcl.Attributes, at hcl.Range) (*TestStep, bool) {
	a, ok := attrs["packet"]
	if !ok {
		l.add(diagTestNoPacket(t.Name, at))
		return nil, false
	}
	text, ok := l.evalString(a.Expr, "packet")
	s := &TestStep{PacketRange: a.Expr.Range()}
	s.ExpectRange, s.RuleRange, s.CTStateRange, s.ToRange = s.PacketRange, s.PacketRange, s.PacketRange, s.PacketRange
	s.Packet, s.Out = cutOut(text)
	ok = l.decodeTestExpect(t, s, attrs["expect"], at) && ok
	ok = l.decodeTestRule(t, s, attrs["rule"]) && ok
	ok = l.decodeTestCTState(t, s, attrs["ct_state"]) && ok
	ok = l.decodeTestTo(s, attrs["to"]) && ok
	ok = l.decodeTestWait(s, attrs["wait"]) && ok
	return s, ok
}

// cutOut splits the "out" mark of a packet the host sends off its text.
func cutOut(text string) (string, bool) {
	trimmed := strings.TrimSpace(text)
	if rest, ok := strings.CutPrefix(trimmed, "out"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
		return strings.TrimSpace(rest), true
	}
	return trimmed, false
}

// decodeTestExpect reads the verdict: required for an arriving packet,
// "out" (and so optional) for one the host sends.
func (l *loader) decodeTestExpect(t *Test, s *TestStep, a *hcl.Attribute, at hcl.Range) bool {
	if a == nil {
		if s.Out {
			s.Expect = VerdictOut
			return true
		}
		l.add(diagTestNoExpect(t.Name, at))
		return false
	}
	s.ExpectRange = a.Expr.Range()
	allowed := testVerdicts
	if s.Out {
		allowed = []string{VerdictOut}
	}
	v, ok := l.evalKeyword(a.Expr, "expect", allowed)
	s.Expect = v
	return ok
}

// decodeTestRule reads the deciding rule: one of the policy's terminal
// rules, "default" or "malformed", whose verdict is the one expected.
func (l *loader) decodeTestRule(t *Test, s *TestStep, a *hcl.Attribute) bool {
	if a == nil {
		return true
	}
	s.RuleRange = a.Expr.Range()
	if s.Out {
		l.add(diagTestRuleOnOut(t.Name, s.RuleRange))
		return false
	}
	name, ok := l.evalString(a.Expr, "rule")
	if !ok {
		return false
	}
	s.Rule = name
	action, ok := deciding(t.Policy, name)
	if !ok {
		names := []string{"default", "malformed"}
		for _, r := range t.Policy.Rules {
			names = append(names, r.Name)
		}
		l.add(diagTestUnknownRule(name, t.Policy.Name, names, s.RuleRange))
		return false
	}
	switch {
	case action == ActionCount:
		l.add(diagTestCountRule(name, s.RuleRange))
		return false
	case s.Expect != "" && action.String() != s.Expect:
		l.add(diagTestRuleVerdict(t.Name, name, action, s.Expect, s.ExpectRange))
		return false
	}
	return true
}

// deciding returns the action of the rule name of p, or of its default
// or malformed verdict.
func deciding(p *Policy, name string) (Action, bool) {
	switch name {
	case "default":
		return p.Default, true
	case "malformed":
		return p.Malformed, true
	}
	for _, r := range p.Rules {
		if r.Name == name {
			return r.Action, true
		}
	}
	return 0, false
}

// decodeTestCTState reads the ct_state the rules must see; the policy
// must track connections.
func (l *loader) decodeTestCTState(t *Test, s *TestStep, a *hcl.Attribute) bool {
	if a == nil {
		return true
	}
	s.CTStateRange = a.Expr.Range()
	if !t.Policy.TracksConnections() {
		l.add(diagTestUntracked(t.Policy.Name, s.CTStateRange))
		return false
	}
	v, ok := l.evalKeyword(a.Expr, "ct_state", testCTStates)
	s.CTState = v
	return ok
}

// decodeTestTo reads the interface a redirect must go to; only a step
// that expects a redirect names one.
func (l *loader) decodeTestTo(s *TestStep, a *hcl.Attribute) bool {
	if a == nil {
		return true
	}
	s.ToRange = a.Expr.Range()
	to, ok := l.evalString(a.Expr, "to")
	if !ok {
		return false
	}
	if s.Expect != "" && s.Expect != ActionRedirect.String() {
		l.add(diagTestToWithoutRedirect(s.Expect, s.ToRange))
		return false
	}
	s.To = to
	return true
}

// decodeTestWait reads how long the clock runs before the packet.
func (l *loader) decodeTestWait(s *TestStep, a *hcl.Attribute) bool {
	if a == nil {
		return true
	}
	text, ok := l.evalString(a.Expr, "wait")
	if !ok {
		return false
	}
	d, err := parseDuration(text)
	if err != nil || d <= 0 || d > maxTestWait {
		l.add(diagTestBadWait(text, a.Expr.Range()))
		return false
	}
	s.Wait = d
	return true
}
