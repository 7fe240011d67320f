package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/artifact"
)

// ErrBadElement is returned for a set element that is not of the set's type.
var ErrBadElement = errors.New("not an element of this set's type")

// setEntry is one key to insert into one map.
type setEntry struct {
	Map string
	Key []byte
}

// setEntries returns the map keys holding set's declared elements:
//   - cidr: an LPM key {prefixlen u32 little-endian, address bytes} in the
//     family's map (v4_map or v6_map);
//   - port: one u16 key in host order per port of each port or range;
//   - mac: the six address bytes.
func setEntries(set artifact.SetMap) ([]setEntry, error) {
	var entries []setEntry
	for _, el := range set.Elements {
		var err error
		switch set.Type {
		case "cidr":
			entries, err = appendPrefixEntry(entries, set, el)
		case "port":
			entries, err = appendPortEntries(entries, set, el)
		case "mac":
			entries, err = appendMACEntry(entries, set, el)
		default:
			return nil, fmt.Errorf("set %s: unknown set type %q", set.Set, set.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", set.Set, err)
		}
	}
	return entries, nil
}

func appendPrefixEntry(entries []setEntry, set artifact.SetMap, el string) ([]setEntry, error) {
	prefix, err := netip.ParsePrefix(el)
	if err != nil {
		addr, aerr := netip.ParseAddr(el)
		if aerr != nil {
			return nil, fmt.Errorf("%q: %w (want an IPv4 or IPv6 address or CIDR)", el, ErrBadElement)
		}
		prefix = netip.PrefixFrom(addr, addr.BitLen())
	}
	prefix = prefix.Masked()
	m := set.V4Map
	if prefix.Addr().Is6() && !prefix.Addr().Is4In6() {
		m = set.V6Map
	}
	if m == "" {
		return nil, fmt.Errorf("prefix %s: the set has no map for its family", prefix)
	}
	key := binary.LittleEndian.AppendUint32(nil, uint32(prefix.Bits()))
	key = append(key, prefix.Addr().AsSlice()...)
	return append(entries, setEntry{m, key}), nil
}

func appendPortEntries(entries []setEntry, set artifact.SetMap, el string) ([]setEntry, error) {
	first, last, isRange := strings.Cut(el, "-")
	if !isRange {
		last = first
	}
	lo, err := strconv.ParseUint(strings.TrimSpace(first), 10, 16)
	if err != nil {
		return nil, fmt.Errorf("%q: %w (want a port 0-65535 or a range LO-HI)", el, ErrBadElement)
	}
	hi, err := strconv.ParseUint(strings.TrimSpace(last), 10, 16)
	if err != nil {
		return nil, fmt.Errorf("%q: %w (want a port 0-65535 or a range LO-HI)", el, ErrBadElement)
	}
	if lo > hi {
		return nil, fmt.Errorf("%q: %w (the range runs backwards)", el, ErrBadElement)
	}
	if set.Map == "" {
		return nil, fmt.Errorf("port %s: the set has no map", el)
	}
	for p := lo; p <= hi; p++ {
		entries = append(entries, setEntry{set.Map, binary.NativeEndian.AppendUint16(nil, uint16(p))})
	}
	return entries, nil
}

func appendMACEntry(entries []setEntry, set artifact.SetMap, el string) ([]setEntry, error) {
	mac, err := net.ParseMAC(el)
	if err != nil {
		return nil, fmt.Errorf("%q: %w (want a MAC address such as 02:00:00:00:00:01)", el, ErrBadElement)
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("%q: %w (want a 6-byte MAC address, got %d bytes)", el, ErrBadElement, len(mac))
	}
	if set.Map == "" {
		return nil, fmt.Errorf("mac %s: the set has no map", el)
	}
	return append(entries, setEntry{set.Map, []byte(mac)}), nil
}

// fillSets inserts every set's declared elements into its loaded maps.
func fillSets(maps map[string]*ebpf.Map, sets []artifact.SetMap) error {
	for _, set := range sets {
		entries, err := setEntries(set)
		if err != nil {
			return err
		}
		for _, e := range entries {
			m := maps[e.Map]
			if m == nil {
				return fmt.Errorf("set %s: no map %s", set.Set, e.Map)
			}
			if err := m.Put(e.Key, artifact.SetMember); err != nil {
				return fmt.Errorf("insert into set %s (map %s): %w", set.Set, e.Map, err)
			}
		}
	}
	return nil
}
