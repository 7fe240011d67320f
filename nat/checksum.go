package nat

// Internet checksums (RFC 1071) and their incremental update (RFC 1624),
// as the datapath computes them on a rewritten packet.

// add is one's complement addition of 16-bit words, with end-around carry.
// It is 0 only when both are 0.
func add(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// Sum is the one's complement sum of b as 16-bit big-endian words, an odd
// last byte padded with 0, added to initial.
func Sum(initial uint16, b []byte) uint16 {
	s := initial
	for i := 0; i+1 < len(b); i += 2 {
		s = add(s, uint16(b[i])<<8|uint16(b[i+1]))
	}
	if len(b)%2 == 1 {
		s = add(s, uint16(b[len(b)-1])<<8)
	}
	return s
}

// Update returns checksum hc after the 16-bit words old became new
// (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')), word by word. Words that
// did not change take no part.
func Update(hc uint16, old, new []uint16) uint16 {
	s := ^hc
	for i := range old {
		if old[i] != new[i] {
			s = add(add(s, ^old[i]), new[i])
		}
	}
	return ^s
}

// UpdatePartial returns a partial checksum field (the pseudo-header's sum,
// not complemented, that a device completes) after the words old became
// new: field + ~m + m', as the kernel's inet_proto_csum_replace4 does for
// CHECKSUM_PARTIAL.
func UpdatePartial(field uint16, old, new []uint16) uint16 {
	s := field
	for i := range old {
		if old[i] != new[i] {
			s = add(add(s, ^old[i]), new[i])
		}
	}
	return s
}

// Words returns the 16-bit big-endian words of b (even length).
func Words(b ...[]byte) []uint16 {
	var w []uint16
	for _, p := range b {
		for i := 0; i+1 < len(p); i += 2 {
			w = append(w, uint16(p[i])<<8|uint16(p[i+1]))
		}
	}
	return w
}

// PseudoSum is the folded one's complement sum of an IPv4 pseudo-header:
// source and destination, protocol, and layer-4 length.
func PseudoSum(src, dst [4]byte, proto uint8, length uint16) uint16 {
	s := Sum(0, src[:])
	s = Sum(s, dst[:])
	return add(add(s, uint16(proto)), length)
}
