package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/xdpc/xdpc/conntrack"
)

// Dump renders the checked model as stable, readable text: variables,
// sets, interfaces, policies and tests in declaration order, every match in
// canonical field order with its normalised values. It holds no source
// positions, so reformatting a file does not change it.
func (c *Config) Dump() string {
	var b strings.Builder
	for _, v := range c.Variables {
		src := "default"
		if v.Overridden {
			src = "-var"
		}
		fmt.Fprintf(&b, "variable %q = %s (%s)\n", v.Name, ctyText(v.Value), src)
	}
	for _, s := range c.Sets {
		dumpSet(&b, s)
	}
	for _, i := range c.Interfaces {
		pn := ""
		if i.Policy != nil {
			pn = i.Policy.Name
		}
		fmt.Fprintf(&b, "interface %q policy=%q mode=%s\n", i.Name, pn, i.Mode)
	}
	tracks := c.Conntrack.DeclRange != (hcl.Range{})
	for _, p := range c.Policies {
		tracks = tracks || p.TracksConnections()
	}
	if tracks {
		dumpConntrack(&b, c.Conntrack)
	}
	for _, n := range c.NATs {
		dumpNAT(&b, n)
	}
	for _, p := range c.Policies {
		dumpPolicy(&b, p)
	}
	for _, t := range c.Tests {
		dumpTest(&b, t)
	}
	return b.String()
}

// dumpTest renders a test block: its policy, then one line per step with
// the expectations it states.
func dumpTest(b *strings.Builder, t *Test) {
	fmt.Fprintf(b, "test %q policy=%q\n", t.Name, t.Policy.Name)
	for i, s := range t.Steps {
		dir := ""
		if s.Out {
			dir = "out "
		}
		fmt.Fprintf(b, "  %d %s%q expect=%s", i+1, dir, s.Packet, s.Expect)
		if s.Rule != "" {
			fmt.Fprintf(b, " rule=%q", s.Rule)
		}
		if s.CTState != "" {
			fmt.Fprintf(b, " ct_state=%s", s.CTState)
		}
		if s.To != "" {
			fmt.Fprintf(b, " to=%q", s.To)
		}
		if s.Wait != 0 {
			fmt.Fprintf(b, " wait=%s", s.Wait)
		}
		b.WriteByte('\n')
	}
}

// dumpNAT renders a nat block: its interfaces, then its masquerade,
// forward and static blocks in order.
func dumpNAT(b *strings.Builder, n *NAT) {
	name := func(i *Interface) string {
		if i == nil {
			return ""
		}
		return i.Name
	}
	fmt.Fprintf(b, "nat %q outside=%q inside=%q\n", n.Name, name(n.Outside), name(n.Inside))
	for _, m := range n.Masquerades {
		var src []string
		for _, p := range m.Src {
			src = append(src, p.String())
		}
		fmt.Fprintf(b, "  masquerade src=%s to=%s ports=%s\n", strings.Join(src, ","), m.To, m.Ports)
	}
	for _, f := range n.Forwards {
		to := f.To.String()
		if f.ToPort != 0 {
			to += fmt.Sprintf(":%d", f.ToPort)
		}
		fmt.Fprintf(b, "  forward %q proto=%d dst=%s dst_port=%s to=%s\n", f.Name, f.Proto, f.Dst, f.DstPorts, to)
	}
	for _, st := range n.Statics {
		fmt.Fprintf(b, "  static inside=%s outside=%s\n", st.Inside, st.Outside)
	}
}

// dumpConntrack renders the connection table's settings, timeouts by name.
func dumpConntrack(b *strings.Builder, ct Conntrack) {
	fmt.Fprintf(b, "conntrack max_entries=%d\n", ct.MaxEntries)
	for _, name := range conntrack.TimeoutNames() {
		fmt.Fprintf(b, "  %s %s\n", name, ct.Timeouts.Named(name))
	}
}

// PolicyHash returns the hex SHA-256 of the canonical dump of p and of the
// sets it references (in name order). Equal hashes mean equal behaviour.
func (c *Config) PolicyHash(p *Policy) string {
	var b strings.Builder
	dumpPolicy(&b, p)
	sets := map[string]*Set{}
	for _, r := range p.Rules {
		for _, m := range r.Matches {
			if m.Set != nil {
				sets[m.Set.Name] = m.Set
			}
		}
	}
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		dumpSet(&b, sets[n])
	}
	if p.TracksConnections() {
		dumpConntrack(&b, c.Conntrack)
	}
	seen := map[*NAT]bool{}
	for _, nb := range c.NATBindings(p) {
		if !seen[nb.NAT] {
			seen[nb.NAT] = true
			fmt.Fprintf(&b, "role %s\n", nb.Role)
			dumpNAT(&b, nb.NAT)
		}
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

func dumpSet(b *strings.Builder, s *Set) {
	dyn := ""
	if s.Dynamic {
		dyn = " dynamic"
	}
	fmt.Fprintf(b, "set %q %s%s max_elements=%d\n", s.Name, s.Type, dyn, s.MaxElements)
	for _, p := range s.Prefixes {
		fmt.Fprintf(b, "  %s\n", p)
	}
	for _, r := range s.Ports {
		fmt.Fprintf(b, "  %s\n", r)
	}
	for _, m := range s.MACs {
		fmt.Fprintf(b, "  %s\n", m)
	}
}

func dumpPolicy(b *strings.Builder, p *Policy) {
	fmt.Fprintf(b, "policy %q default=%s malformed=%s\n", p.Name, p.Default, p.Malformed)
	for _, r := range p.Rules {
		if r.Action == ActionRedirect {
			fmt.Fprintf(b, "  rule %d %q %s to %q\n", r.Index, r.Name, r.Action, r.To)
		} else {
			fmt.Fprintf(b, "  rule %d %q %s\n", r.Index, r.Name, r.Action)
		}
		for i := range r.Matches {
			fmt.Fprintf(b, "    %s\n", r.Matches[i].String())
		}
	}
}

// String renders m as "field = values" or "field != values" when negated.
func (m *Match) String() string {
	op := "="
	if m.Negate {
		op = "!="
	}
	var vals []string
	switch {
	case m.Set != nil:
		vals = []string{"set." + m.Set.Name}
	case m.Field == FieldEtherType:
		for _, r := range m.Values {
			if r.Lo == r.Hi {
				vals = append(vals, fmt.Sprintf("0x%04x", r.Lo))
			} else {
				vals = append(vals, fmt.Sprintf("0x%04x-0x%04x", r.Lo, r.Hi))
			}
		}
	case m.Field.Kind() == KindRange:
		for _, r := range m.Values {
			vals = append(vals, r.String())
		}
	case m.Field.Kind() == KindPrefix:
		for _, p := range m.Prefixes {
			vals = append(vals, p.String())
		}
	case m.Field.Kind() == KindMAC:
		for _, mac := range m.MACs {
			vals = append(vals, mac.String())
		}
	case m.Field.Kind() == KindFlags:
		vals = []string{m.Flags.String()}
	case m.Field.Kind() == KindFragment:
		for _, f := range []Fragment{FragNone, FragFirst, FragLater} {
			if m.Fragments.Has(f) {
				vals = append(vals, f.String())
			}
		}
	case m.Field.Kind() == KindCTState:
		for _, st := range m.CTStates.Statuses() {
			vals = append(vals, st.String())
		}
	}
	return fmt.Sprintf("%s %s %s", m.Field, op, strings.Join(vals, ", "))
}

// ctyText renders a variable value (string, number or list of those).
func ctyText(v cty.Value) string {
	switch {
	case v == cty.NilVal || v.IsNull():
		return "null"
	case v.Type() == cty.String:
		return strconv.Quote(v.AsString())
	case v.Type() == cty.Number:
		return v.AsBigFloat().Text('f', -1)
	case v.CanIterateElements():
		var parts []string
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			parts = append(parts, ctyText(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return v.GoString()
}
