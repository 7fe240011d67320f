package policy

import (
	"bytes"
	"errors"
	"math/big"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/wire"
)

// item is one scalar value (string or number) with the range it came from.
type item struct {
	val cty.Value
	rng hcl.Range
}

func (it item) str() (string, bool) {
	if it.val.IsNull() || it.val.Type() != cty.String {
		return "", false
	}
	return it.val.AsString(), true
}

// items evaluates expr as a single value or a list of values. Elements of
// a literal list keep their own ranges; elements of a list that comes from
// a variable share the range of the reference.
func (l *loader) items(what string, expr hcl.Expression) (its []item, list bool, ok bool) {
	if tuple, isTuple := expr.(*hclsyntax.TupleConsExpr); isTuple {
		ok = true
		for _, e := range tuple.Exprs {
			val, valid := l.eval(e)
			if !valid {
				ok = false
				continue
			}
			if !l.checkScalar(what, val, e.Range()) {
				ok = false
				continue
			}
			its = append(its, item{val, e.Range()})
		}
		if len(tuple.Exprs) == 0 {
			l.add(diagEmptyList(what, expr.Range()))
			return nil, true, false
		}
		return its, true, ok
	}
	val, valid := l.eval(expr)
	if !valid {
		return nil, false, false
	}
	if t := val.Type(); !val.IsNull() && (t.IsTupleType() || t.IsListType() || t.IsSetType()) {
		if val.LengthInt() == 0 {
			l.add(diagEmptyList(what, expr.Range()))
			return nil, true, false
		}
		ok = true
		for it := val.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if !l.checkScalar(what, e, expr.Range()) {
				ok = false
				continue
			}
			its = append(its, item{e, expr.Range()})
		}
		return its, true, ok
	}
	if !l.checkScalar(what, val, expr.Range()) {
		return nil, false, false
	}
	return []item{{val, expr.Range()}}, false, true
}

func (l *loader) checkScalar(what string, val cty.Value, rng hcl.Range) bool {
	if !val.IsNull() {
		t := val.Type()
		if t == cty.String || t == cty.Number {
			return true
		}
		if t.IsTupleType() || t.IsListType() || t.IsSetType() {
			l.add(diagNestedList(what, rng))
			return false
		}
	}
	l.add(diagWrongType("A value of "+what, "a string or a number", typeName(val), rng))
	return false
}

// numSpec describes a numeric field: its largest value, whether "lo-hi"
// ranges are allowed, and its symbolic names.
type numSpec struct {
	max    uint32
	ranges bool
	names  wire.Names
}

// maxLength is the largest IP packet length: IPv6's 40 + 65535.
const maxLength = 40 + 65535

var numSpecs = map[Field]numSpec{
	FieldEtherType: {max: 0xffff, names: wire.EtherTypes},
	FieldVLAN:      {max: 4095, ranges: true},
	FieldInnerVLAN: {max: 4095, ranges: true},
	FieldProto:     {max: 255, names: wire.Protocols},
	FieldSrcPort:   {max: 65535, ranges: true},
	FieldDstPort:   {max: 65535, ranges: true},
	FieldICMPType:  {max: 255},
	FieldICMPCode:  {max: 255, ranges: true},
	FieldTTL:       {max: 255, ranges: true},
	FieldLength:    {max: maxLength, ranges: true},
}

// wholeNumber converts a cty number to a uint64 if it is whole and not negative.
func wholeNumber(v cty.Value) (uint64, bool) {
	f := v.AsBigFloat()
	if f.Sign() < 0 || !f.IsInt() {
		return 0, false
	}
	n, acc := f.Uint64()
	if acc != big.Exact {
		return 1<<64 - 1, true // too large: reported as out of range
	}
	return n, true
}

// parseNumItem parses one value of a numeric field: a number, a name, a
// decimal or hex number in a string, or a "lo-hi" range where allowed.
func (l *loader) parseNumItem(f Field, spec numSpec, it item) (Range, bool) {
	field := f.String()
	names := spec.names.List()
	if it.val.Type() == cty.Number {
		n, ok := wholeNumber(it.val)
		if !ok {
			l.add(diagNotWhole(field, it.val.AsBigFloat().Text('g', -1), it.rng))
			return Range{}, false
		}
		if n > uint64(spec.max) {
			l.add(diagOutOfRange(field, n, spec.max, it.rng))
			return Range{}, false
		}
		return Range{uint32(n), uint32(n)}, true
	}
	s, _ := it.str()
	s = strings.TrimSpace(s)
	if v, ok := spec.names.Number(strings.ToLower(s)); ok {
		return Range{uint32(v), uint32(v)}, true
	}
	want := "a number from 0 to " + strconv.Itoa(int(spec.max))
	if spec.ranges {
		want += ` or a range "lo-hi"`
	}
	// The number text rules are the datapath contract's, so that an
	// operator's `xdpc set add` reads a port exactly as a policy does.
	lo, hi, err := artifact.ParseNumberRange(s, spec.max, spec.ranges)
	if ne, ok := errors.AsType[*artifact.NumberError](err); ok {
		switch ne.Problem {
		case artifact.NumberNoRanges:
			l.add(diagNoRanges(field, it.rng))
		case artifact.NumberTooLarge:
			l.add(diagOutOfRange(field, ne.Lo, spec.max, it.rng))
		case artifact.NumberReversed:
			l.add(diagReversedRange(field, ne.Lo, ne.Hi, it.rng))
		default:
			l.add(diagBadNumber(field, s, want, names, it.rng))
		}
		return Range{}, false
	}
	return Range{lo, hi}, true
}

// MergeRanges sorts rs and merges overlapping and adjacent ranges.
func MergeRanges(rs []Range) []Range {
	if len(rs) == 0 {
		return nil
	}
	s := append([]Range(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].Lo < s[j].Lo || (s[i].Lo == s[j].Lo && s[i].Hi < s[j].Hi) })
	out := []Range{s[0]}
	for _, r := range s[1:] {
		last := &out[len(out)-1]
		if uint64(r.Lo) <= uint64(last.Hi)+1 {
			last.Hi = max(last.Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// parsePrefixItem parses an address (a full-length prefix) or a CIDR prefix
// by the datapath contract's rules (artifact.ParsePrefix): host bits are an
// error, IPv4-mapped IPv6 addresses stay IPv6, as written.
func (l *loader) parsePrefixItem(what string, it item) (netip.Prefix, bool) {
	s, ok := it.str()
	if !ok {
		l.add(diagBadAddress(what, it.val.AsBigFloat().Text('g', -1), it.rng))
		return netip.Prefix{}, false
	}
	p, err := artifact.ParsePrefix(s)
	if hb, ok := errors.AsType[*artifact.HostBitsError](err); ok {
		l.add(diagHostBits(strings.TrimSpace(s), hb.Masked().String(), it.rng))
		return netip.Prefix{}, false
	}
	if err != nil {
		l.add(diagBadAddress(what, strings.TrimSpace(s), it.rng))
		return netip.Prefix{}, false
	}
	return p, true
}

// normPrefixes sorts prefixes (IPv4 first, then by address and length)
// and drops duplicates and prefixes covered by a shorter one.
func normPrefixes(ps []netip.Prefix) []netip.Prefix {
	s := append([]netip.Prefix(nil), ps...)
	sort.Slice(s, func(i, j int) bool { return lessPrefix(s[i], s[j]) })
	var out []netip.Prefix
	for _, p := range s {
		if n := len(out); n > 0 && out[n-1].Overlaps(p) && out[n-1].Bits() <= p.Bits() {
			continue
		}
		out = append(out, p)
	}
	return out
}

func lessPrefix(a, b netip.Prefix) bool {
	if a.Addr().Is4() != b.Addr().Is4() {
		return a.Addr().Is4()
	}
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}

func (l *loader) parseMACItem(what string, it item) (MAC, bool) {
	s, ok := it.str()
	if !ok {
		l.add(diagBadMAC(what, it.val.AsBigFloat().Text('g', -1), it.rng))
		return MAC{}, false
	}
	m, err := artifact.ParseMAC(s)
	if err != nil {
		l.add(diagBadMAC(what, s, it.rng))
		return MAC{}, false
	}
	return m, true
}

func normMACs(ms []MAC) []MAC {
	s := append([]MAC(nil), ms...)
	sort.Slice(s, func(i, j int) bool { return bytes.Compare(s[i][:], s[j][:]) < 0 })
	var out []MAC
	for i, m := range s {
		if i == 0 || m != s[i-1] {
			out = append(out, m)
		}
	}
	return out
}

// parseTCPFlags parses "syn,!ack": named flags must be set, !flags clear.
func (l *loader) parseTCPFlags(it item) (TCPFlags, bool) {
	s, ok := it.str()
	if !ok {
		l.add(diagWrongType("tcp_flags", `a string such as "syn,!ack"`, typeName(it.val), it.rng))
		return TCPFlags{}, false
	}
	var f TCPFlags
	ok = true
	seen := false
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		clear := strings.HasPrefix(part, "!")
		name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(part, "!")))
		n, known := wire.TCPFlagNames.Number(name)
		bit := uint8(n)
		if !known {
			l.add(diagBadTCPFlag(name, it.rng))
			ok = false
			continue
		}
		seen = true
		if clear {
			f.Clear |= bit
		} else {
			f.Set |= bit
		}
		if f.Set&f.Clear&bit != 0 {
			l.add(diagTCPFlagConflict(name, it.rng))
			ok = false
		}
	}
	return f, ok && seen
}

var fragmentNames = map[string]FragmentMask{
	"none":  FragmentMask(FragNone),
	"first": FragmentMask(FragFirst),
	"later": FragmentMask(FragLater),
	"any":   FragmentMask(FragFirst | FragLater),
}

// ctStateNames are ct_state's values in the order docs list them.
var ctStateNames = []string{"new", "established", "related", "invalid"}

func (l *loader) parseCTStateItem(it item) (CTStateMask, bool) {
	s, ok := it.str()
	if !ok {
		l.add(diagWrongType("ct_state", "one of "+quoteList(ctStateNames), typeName(it.val), it.rng))
		return 0, false
	}
	st, ok := conntrack.StatusNames[strings.TrimSpace(s)]
	if !ok {
		l.add(diagBadKeyword("ct_state", s, ctStateNames, it.rng))
		return 0, false
	}
	return 1 << st, true
}

func (l *loader) parseFragmentItem(it item) (FragmentMask, bool) {
	allowed := []string{"none", "first", "later", "any"}
	s, ok := it.str()
	if !ok {
		l.add(diagWrongType("fragment", "one of "+quoteList(allowed), typeName(it.val), it.rng))
		return 0, false
	}
	m, ok := fragmentNames[strings.TrimSpace(s)]
	if !ok {
		l.add(diagBadKeyword("fragment", s, allowed, it.rng))
	}
	return m, ok
}
