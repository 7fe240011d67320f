// Package checksum recomputes Internet checksums from scratch (RFC 1071)
// for tests: what NAT's incremental updates (package nat for the
// reference, the compiler's BPF for the datapath) must agree with. It
// shares no code with either.
package checksum

import "encoding/binary"

// Sum is the folded one's complement sum of b, added to initial: 0xffff
// over a span that holds its own valid checksum.
func Sum(b []byte, initial uint32) uint32 {
	s := initial
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return s
}

// Pseudo is the folded sum of the pseudo-header of the IPv4 packet ip for
// a layer-4 segment of l4len bytes: what a partial checksum holds.
func Pseudo(ip []byte, l4len int) uint32 {
	ph := append(append([]byte(nil), ip[12:20]...), 0, ip[9])
	return Sum(binary.BigEndian.AppendUint16(ph, uint16(l4len)), 0)
}

// Errors says which checksums of the IPv4 packet ip (its total length
// long) do not verify: the header's; unless the packet is a fragment, its
// TCP, UDP (a UDP checksum of 0 is none) or ICMP checksum; and an ICMP
// error's carried IPv4 header's.
func Errors(ip []byte) []string {
	var errs []string
	hl := int(ip[0]&0x0f) * 4
	if Sum(ip[:hl], 0) != 0xffff {
		errs = append(errs, "ipv4 header checksum does not verify")
	}
	if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return errs
	}
	l4 := ip[hl:]
	switch ip[9] {
	case 6:
		if Sum(l4, Pseudo(ip, len(l4))) != 0xffff {
			errs = append(errs, "tcp checksum does not verify")
		}
	case 17:
		if binary.BigEndian.Uint16(l4[6:]) != 0 && Sum(l4, Pseudo(ip, len(l4))) != 0xffff {
			errs = append(errs, "udp checksum does not verify")
		}
	case 1:
		if Sum(l4, 0) != 0xffff {
			errs = append(errs, "icmp checksum does not verify")
		}
		if t := l4[0]; (t == 3 || t == 11 || t == 12) && len(l4) >= 8+20 {
			in := l4[8:]
			if Sum(in[:int(in[0]&0x0f)*4], 0) != 0xffff {
				errs = append(errs, "embedded ipv4 header checksum does not verify")
			}
		}
	}
	return errs
}
