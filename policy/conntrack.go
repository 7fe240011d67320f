package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/xdpc/xdpc/conntrack"
)

var conntrackSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "max_entries"}, {Name: "timeouts"}},
}

// declareConntrack decodes the conntrack block, if any: its capacity and
// timeouts, each checked against its bounds. Without one the defaults
// apply.
func (l *loader) declareConntrack(blocks []*hcl.Block) {
	l.cfg.Conntrack = Conntrack{MaxEntries: DefaultConntrackEntries, Timeouts: conntrack.DefaultTimeouts}
	for i, b := range blocks {
		if i > 0 {
			l.add(diagDuplicateConntrack(b.DefRange, blocks[0].DefRange))
			continue
		}
		l.cfg.Conntrack.DeclRange = b.DefRange
		content, diags := b.Body.Content(conntrackSchema)
		l.add(diags...)
		if a, ok := content.Attributes["max_entries"]; ok {
			l.decodeConntrackEntries(a)
		}
		if a, ok := content.Attributes["timeouts"]; ok {
			l.decodeTimeouts(a)
		}
	}
}

func (l *loader) decodeConntrackEntries(a *hcl.Attribute) {
	v, ok := l.eval(a.Expr)
	if !ok {
		return
	}
	n, whole := uint64(0), false
	if !v.IsNull() && v.Type() == cty.Number {
		n, whole = wholeNumber(v)
	}
	if !whole || n < MinConntrackEntries || n > MaxConntrackEntries {
		l.add(diagConntrackEntries(a.Expr.Range()))
		return
	}
	l.cfg.Conntrack.MaxEntries = int(n)
}

func (l *loader) decodeTimeouts(a *hcl.Attribute) {
	pairs, diags := hcl.ExprMap(a.Expr)
	if diags.HasErrors() {
		l.add(diagTimeoutsNotMap(a.Expr.Range()))
		return
	}
	names := conntrack.TimeoutNames()
	seen := map[string]hcl.Range{}
	for _, kv := range pairs {
		name := hcl.ExprAsKeyword(kv.Key)
		if name == "" {
			if k, ok := l.eval(kv.Key); ok && k.Type() == cty.String {
				name = k.AsString()
			}
		}
		if first, dup := seen[name]; dup && name != "" {
			l.add(diagDuplicateTimeout(name, kv.Key.Range(), first))
			continue
		}
		seen[name] = kv.Key.Range()
		var t conntrack.Timeouts
		if !t.Set(name, time.Second) {
			l.add(diagBadKeyword("timeout name", name, names, kv.Key.Range()))
			continue
		}
		text, ok := l.evalString(kv.Value, "timeout "+name)
		if !ok {
			continue
		}
		d, err := parseDuration(text)
		switch {
		case err != nil:
			l.add(diagBadDuration(name, text, kv.Value.Range()))
		case d < conntrack.MinTimeout || d > conntrack.MaxTimeout:
			l.add(diagTimeoutRange(name, text, kv.Value.Range()))
		default:
			l.cfg.Conntrack.Timeouts.Set(name, d)
		}
	}
}

var dayTerm = regexp.MustCompile(`^(\d+)d`)

// parseDuration reads a duration as Go writes them ("90s", "2m30s",
// "1h"), with days allowed first ("5d", "1d12h").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days time.Duration
	if m := dayTerm.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 1000 {
			return 0, fmt.Errorf("bad day count %q", m[1])
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[len(m[0]):]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return days + d, nil
}

// lintConntrack warns about a conntrack block no policy uses and about a
// policy that tracks connections on no interface (its egress program would
// attach nowhere, so nothing records the host's own traffic).
func (l *loader) lintConntrack() {
	tracking := false
	for _, p := range l.cfg.Policies {
		if !p.TracksConnections() {
			continue
		}
		tracking = true
		bound := false
		for _, i := range l.cfg.Interfaces {
			bound = bound || i.Policy == p
		}
		if !bound && len(l.cfg.Interfaces) > 0 {
			l.add(diagTrackingUnbound(p.Name, p.DeclRange))
		}
	}
	if !tracking && l.cfg.Conntrack.DeclRange != (hcl.Range{}) {
		l.add(diagConntrackUnused(l.cfg.Conntrack.DeclRange))
	}
}
