package artifact

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// SetType is the element type of a set: what its elements are and which
// kinds of map hold them.
type SetType uint8

const (
	// SetCIDR holds IPv4 and IPv6 prefixes (Elements.Prefixes), each in
	// the trie of its family (MapCIDRv4, MapCIDRv6). An IPv4-mapped IPv6
	// prefix such as ::ffff:192.0.2.1/128 is IPv6: it matches IPv6 packets
	// from that address, never IPv4 ones.
	SetCIDR SetType = iota + 1
	// SetPort holds ports and inclusive port ranges (Elements.Ports), one
	// map key per port (MapPorts).
	SetPort
	// SetMAC holds MAC addresses (Elements.MACs) in MapMACs.
	SetMAC
)

var setTypeNames = [...]string{SetCIDR: "cidr", SetPort: "port", SetMAC: "mac"}

func (t SetType) known() bool { return t > 0 && int(t) < len(setTypeNames) }

// String is the type's name in the policy language: "cidr", "port", "mac".
func (t SetType) String() string {
	if t.known() {
		return setTypeNames[t]
	}
	return fmt.Sprintf("SetType(%d)", uint8(t))
}

// SetTypeNamed returns the set type of a name in the policy language.
func SetTypeNamed(name string) (SetType, bool) {
	i := slices.Index(setTypeNames[:], name)
	if i <= 0 {
		return 0, false
	}
	return SetType(i), true
}

// SetTypes lists every set type.
func SetTypes() []SetType { return []SetType{SetCIDR, SetPort, SetMAC} }

// MarshalText encodes the type by name.
func (t SetType) MarshalText() ([]byte, error) {
	if !t.known() {
		return nil, fmt.Errorf("encode set type: unknown type %d", uint8(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText decodes a type name.
func (t *SetType) UnmarshalText(text []byte) error {
	st, ok := SetTypeNamed(string(text))
	if !ok {
		return fmt.Errorf("decode set type: unknown type %q", text)
	}
	*t = st
	return nil
}

// MAC is an Ethernet address.
type MAC [6]byte

// String renders m as six lower-case hex pairs separated by colons.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// MarshalText encodes m as String does.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText decodes a MAC as ParseMAC reads it.
func (m *MAC) UnmarshalText(text []byte) error {
	v, err := ParseMAC(string(text))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// PortRange is an inclusive range of TCP or UDP ports; a single port has
// Lo == Hi.
type PortRange struct{ Lo, Hi uint16 }

// String renders r as the language writes it: "80" or "8000-8099".
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// Ports is the number of ports in r (0 when Lo > Hi).
func (r PortRange) Ports() int {
	if r.Lo > r.Hi {
		return 0
	}
	return int(r.Hi) - int(r.Lo) + 1
}

// MarshalText encodes r as String does.
func (r PortRange) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes a range as ParsePortRange reads it.
func (r *PortRange) UnmarshalText(text []byte) error {
	v, err := ParsePortRange(string(text))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Elements are the contents of a set, typed: the field of the set's type
// holds them and the others are empty. In a manifest, prefixes are
// masked (no host bits).
type Elements struct {
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`
	Ports    []PortRange    `json:"ports,omitempty"`
	MACs     []MAC          `json:"macs,omitempty"`
}

// Len is the number of elements (a port range counts once).
func (e Elements) Len() int { return len(e.Prefixes) + len(e.Ports) + len(e.MACs) }

// Strings renders every element as the language writes it.
func (e Elements) Strings() []string {
	out := make([]string, 0, e.Len())
	for _, p := range e.Prefixes {
		out = append(out, p.String())
	}
	for _, r := range e.Ports {
		out = append(out, r.String())
	}
	for _, m := range e.MACs {
		out = append(out, m.String())
	}
	return out
}

// Without returns the elements of e that old does not hold (an element is
// held when old has the same prefix, range or address).
func (e Elements) Without(old Elements) Elements {
	var out Elements
	for _, p := range e.Prefixes {
		if !slices.Contains(old.Prefixes, p) {
			out.Prefixes = append(out.Prefixes, p)
		}
	}
	for _, r := range e.Ports {
		if !slices.Contains(old.Ports, r) {
			out.Ports = append(out.Ports, r)
		}
	}
	for _, m := range e.MACs {
		if !slices.Contains(old.MACs, m) {
			out.MACs = append(out.MACs, m)
		}
	}
	return out
}

// Sort orders the elements: prefixes IPv4 first, by address then length;
// ranges by their first port, then their last; MACs by their bytes.
func (e *Elements) Sort() {
	slices.SortFunc(e.Prefixes, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	slices.SortFunc(e.Ports, func(a, b PortRange) int {
		if a.Lo != b.Lo {
			return int(a.Lo) - int(b.Lo)
		}
		return int(a.Hi) - int(b.Hi)
	})
	slices.SortFunc(e.MACs, func(a, b MAC) int { return bytes.Compare(a[:], b[:]) })
}

// ErrBadElement is what every error of the element parsers and encoders
// wraps: text, or a value, that is not an element of the set's type.
var ErrBadElement = errors.New("not an element of this set's type")

// ElementError is an element that is not one of its set's type: Text as
// given, Set the set's name when the caller knows it, Err the detail when
// there is one (a *HostBitsError or a *NumberError). Its message is the
// policy language's for the same text (the Detail of its diagnostic), the
// set named where the language names it, so that `xdpc set add` and a
// policy refuse an element in the same words. errors.Is finds
// ErrBadElement in it, errors.As its Err.
type ElementError struct {
	Type SetType
	Text string
	Set  string
	Err  error
}

func (e *ElementError) Error() string {
	text := strings.TrimSpace(e.Text)
	what := fmt.Sprintf("set %q", e.Set)
	if e.Set == "" {
		what = "a " + e.Type.String() + " set"
	}
	var hb *HostBitsError
	var ne *NumberError
	switch {
	case errors.As(e.Err, &hb):
		return fmt.Sprintf("%q has bits set after the prefix length. Did you mean %s?", text, hb.Masked())
	case errors.As(e.Err, &ne) && ne.Problem == NumberTooLarge:
		return fmt.Sprintf("%d is out of range for %s, which takes 0 to %d.", ne.Lo, what, ne.Max)
	case errors.As(e.Err, &ne) && ne.Problem == NumberReversed:
		return fmt.Sprintf("The range %d-%d of %s ends before it starts. Did you mean \"%d-%d\"?", ne.Lo, ne.Hi, what, ne.Hi, ne.Lo)
	}
	switch e.Type {
	case SetCIDR:
		return fmt.Sprintf("%q is not an IPv4 or IPv6 address or CIDR prefix, which %s needs.", text, what)
	case SetPort:
		return fmt.Sprintf("%q is not a valid %s value; it must be a number from 0 to 65535 or a range \"lo-hi\".", text, what)
	case SetMAC:
		return fmt.Sprintf("%q is not a MAC address like \"02:00:00:00:00:01\", which %s needs.", text, what)
	}
	return fmt.Sprintf("%q: %v", text, ErrBadElement)
}

func (e *ElementError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrBadElement}
	}
	return []error{ErrBadElement, e.Err}
}

// ElementErrors are every element of a list that is not one of its set's
// type, in the order given: ParseElements reports them all, as the policy
// language does, not only the first.
type ElementErrors []*ElementError

// Error gives one element's message per line.
func (es ElementErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives the element errors, so errors.Is finds ErrBadElement and
// errors.As the first *ElementError.
func (es ElementErrors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// InSet names the set in every error, for its message.
func (es ElementErrors) InSet(set string) ElementErrors {
	out := make(ElementErrors, len(es))
	for i, e := range es {
		c := *e
		c.Set = set
		out[i] = &c
	}
	return out
}

// HostBitsError is a prefix with bits set after its length, such as
// 10.1.2.3/8: the language refuses it rather than guess whether the
// network (Masked) or the address was meant.
type HostBitsError struct {
	Prefix netip.Prefix
}

// Masked is the prefix without its host bits.
func (e *HostBitsError) Masked() netip.Prefix { return e.Prefix.Masked() }

func (e *HostBitsError) Error() string {
	return fmt.Sprintf("%s has host bits set; the network is %s", e.Prefix, e.Masked())
}

// ParsePrefix reads an element of a cidr set as the policy language does:
// an IPv4 or IPv6 address (a prefix of its full length) or a CIDR prefix,
// surrounding spaces ignored. A prefix with host bits set is refused
// (*HostBitsError), and so is an IPv6 zone. An IPv4-mapped IPv6 address
// stays IPv6.
func ParsePrefix(s string) (netip.Prefix, error) {
	text := strings.TrimSpace(s)
	bad := func(err error) (netip.Prefix, error) {
		return netip.Prefix{}, &ElementError{Type: SetCIDR, Text: s, Err: err}
	}
	if strings.Contains(text, "/") {
		p, err := netip.ParsePrefix(text)
		if err != nil {
			return bad(nil)
		}
		if p.Masked() != p {
			return bad(&HostBitsError{Prefix: p})
		}
		return p, nil
	}
	a, err := netip.ParseAddr(text)
	if err != nil || a.Zone() != "" {
		return bad(nil)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParsePortRange reads an element of a port set as the policy language
// reads it in a string: a port or a range "LO-HI", each a decimal or
// 0x-hexadecimal number up to 65535 (ParseNumberRange), surrounding spaces
// ignored.
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, err := ParseNumberRange(strings.TrimSpace(s), 65535, true)
	if err != nil {
		return PortRange{}, &ElementError{Type: SetPort, Text: s, Err: err}
	}
	return PortRange{uint16(lo), uint16(hi)}, nil
}

// ParseMAC reads an element of a mac set as the policy language does: a
// 6-byte MAC address in any form net.ParseMAC reads (02:00:00:00:00:01,
// 02-00-00-00-00-01, 0200.0000.0001), surrounding spaces ignored.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return MAC{}, &ElementError{Type: SetMAC, Text: s}
	}
	return MAC(hw), nil
}

// ParseElements reads elements of a set of type t from their text, as an
// operator gives them to `xdpc set add`, by the rules of the policy
// language (ParsePrefix, ParsePortRange, ParseMAC). Every element that is
// not one is reported, in order, as ElementErrors.
func ParseElements(t SetType, texts []string) (Elements, error) {
	if !t.known() {
		return Elements{}, fmt.Errorf("parse elements: unknown set type %s", t)
	}
	var e Elements
	var bad ElementErrors
	for _, s := range texts {
		var err error
		switch t {
		case SetCIDR:
			var p netip.Prefix
			if p, err = ParsePrefix(s); err == nil {
				e.Prefixes = append(e.Prefixes, p)
			}
		case SetPort:
			var r PortRange
			if r, err = ParsePortRange(s); err == nil {
				e.Ports = append(e.Ports, r)
			}
		case SetMAC:
			var m MAC
			if m, err = ParseMAC(s); err == nil {
				e.MACs = append(e.MACs, m)
			}
		}
		if err != nil {
			bad = append(bad, err.(*ElementError))
		}
	}
	if len(bad) > 0 {
		return Elements{}, bad
	}
	return e, nil
}

// LPMKey is the key of prefix p in the trie of its family (PrefixMap): the
// prefix length as a little-endian u32, then the address in network order,
// 4 bytes for IPv4 and 16 for IPv6 (IPv4-mapped addresses included).
func LPMKey(p netip.Prefix) []byte {
	key := binary.LittleEndian.AppendUint32(nil, uint32(p.Bits()))
	return append(key, p.Addr().AsSlice()...)
}

// PrefixMap is the kind of map that holds p: the IPv4 trie for an IPv4
// prefix, the IPv6 trie for any other, IPv4-mapped ones included.
func PrefixMap(p netip.Prefix) MapKind {
	if p.Addr().Is4() {
		return MapCIDRv4
	}
	return MapCIDRv6
}

// PortKey is the key of one port in a port map: a u16 in host order, as
// the program stores the port it parsed.
func PortKey(port uint16) []byte { return binary.NativeEndian.AppendUint16(nil, port) }

// MACKey is the key of a MAC address in a mac map: its six bytes.
func MACKey(m MAC) []byte { return bytes.Clone(m[:]) }

// AddKey adds the element that key stands for in a map of kind k: a
// prefix, a single port or a MAC.
func (e *Elements) AddKey(k MapKind, key []byte) error {
	if uint32(len(key)) != k.Layout().KeySize {
		return fmt.Errorf("decode %s key %x: %d bytes, want %d", k, key, len(key), k.Layout().KeySize)
	}
	switch k {
	case MapCIDRv4, MapCIDRv6:
		addr, _ := netip.AddrFromSlice(key[4:])
		p := netip.PrefixFrom(addr, int(binary.LittleEndian.Uint32(key)))
		if !p.IsValid() {
			return fmt.Errorf("decode %s key %x: no prefix", k, key)
		}
		e.Prefixes = append(e.Prefixes, p)
	case MapPorts:
		port := binary.NativeEndian.Uint16(key)
		e.Ports = append(e.Ports, PortRange{port, port})
	case MapMACs:
		e.MACs = append(e.MACs, MAC(key))
	default:
		return fmt.Errorf("decode %s key: not a set map", k)
	}
	return nil
}

// SetEntry is one key to put into one map of a set.
type SetEntry struct {
	Map string
	Key []byte
}

// Entries returns the map keys that hold e in the set's maps: an LPM key
// per prefix in its family's trie, a key per port of every range, a key
// per MAC. Elements not of the set's type, prefixes with host bits set,
// reversed ranges and prefixes of a family the set has no map for are
// errors that wrap ErrBadElement.
func (s SetMap) Entries(e Elements) ([]SetEntry, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("set %s: %w: "+format, append([]any{s.Set, ErrBadElement}, args...)...)
	}
	var entries []SetEntry
	switch s.Type {
	case SetCIDR:
		if len(e.Ports)+len(e.MACs) > 0 {
			return nil, bad("ports or MACs in a cidr set")
		}
		for _, p := range e.Prefixes {
			if !p.IsValid() || p.Masked() != p {
				return nil, bad("prefix %s has host bits set", p)
			}
			m := s.V6Map
			if PrefixMap(p) == MapCIDRv4 {
				m = s.V4Map
			}
			if m == "" {
				return nil, bad("the set has no map for prefix %s's family", p)
			}
			entries = append(entries, SetEntry{m, LPMKey(p)})
		}
	case SetPort:
		if len(e.Prefixes)+len(e.MACs) > 0 {
			return nil, bad("prefixes or MACs in a port set")
		}
		if s.Map == "" && len(e.Ports) > 0 {
			return nil, bad("the set has no map")
		}
		for _, r := range e.Ports {
			if r.Lo > r.Hi {
				return nil, bad("port range %d-%d runs backwards", r.Lo, r.Hi)
			}
			for p := int(r.Lo); p <= int(r.Hi); p++ {
				entries = append(entries, SetEntry{s.Map, PortKey(uint16(p))})
			}
		}
	case SetMAC:
		if len(e.Prefixes)+len(e.Ports) > 0 {
			return nil, bad("prefixes or ports in a mac set")
		}
		if s.Map == "" && len(e.MACs) > 0 {
			return nil, bad("the set has no map")
		}
		for _, m := range e.MACs {
			entries = append(entries, SetEntry{s.Map, MACKey(m)})
		}
	default:
		return nil, fmt.Errorf("set %s: unknown set type %s", s.Set, s.Type)
	}
	return entries, nil
}
