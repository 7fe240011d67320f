package corpus

import (
	"math/rand"
	"net/netip"
)

// The shared pools: policies draw match values from them and packets draw
// header values from them, so rules and packets meet often. Each pool has a
// few values outside every prefix or range the policies use, so that
// non-matching packets are frequent too.

var poolMACs = []string{
	"02:00:00:00:00:01",
	"02:00:00:00:00:02",
	"02:00:00:00:00:03",
	"0a:bc:de:f0:12:34",
	"ff:ff:ff:ff:ff:ff",
	"01:80:c2:00:00:0e", // LLDP nearest bridge
	"33:33:00:00:00:01", // IPv6 all-nodes
}

var poolV4Addrs = []string{
	"10.0.0.1", "10.0.0.2", "10.0.1.5", "10.255.255.255",
	"192.168.1.1", "192.168.7.9",
	"192.0.2.9", "198.51.100.7", "198.51.100.200",
	"203.0.113.1", "0.0.0.0", "255.255.255.255", "172.16.3.4",
}

var poolV4Prefixes = []string{
	"10.0.0.1", "10.0.0.2", "192.0.2.9", "203.0.113.1",
	"10.0.0.0/24", "10.0.0.0/8", "10.0.0.0/31", "192.168.0.0/16",
	"198.51.100.0/24", "198.51.100.128/25", "0.0.0.0/0", "255.255.255.255/32",
	"172.16.0.0/12",
}

var poolV6Addrs = []string{
	"2001:db8::1", "2001:db8::2", "2001:db8:1::5", "2001:db8:bad::9",
	"fe80::1", "fe80::2:3", "ff02::1", "::1", "::", "2001:db8:ffff::ffff",
	"64:ff9b::a00:1", "2001:db8::8000:0:0:1",
}

var poolV6Prefixes = []string{
	"2001:db8::1", "2001:db8::2", "fe80::1",
	"2001:db8::/32", "2001:db8::/64", "2001:db8:bad::/48", "fe80::/10",
	"::/0", "ff00::/8", "2001:db8::/127", "::1/128", "64:ff9b::/96",
	"2001:db8::8000:0:0:0/65",
}

var poolPorts = []uint16{0, 1, 22, 53, 80, 123, 443, 1023, 1024, 3389, 8000, 8080, 8099, 8100, 49152, 65535}

var poolPortRanges = []string{"0-1023", "1024-65535", "8000-8099", "80-80", "20-23", "443-8443", "0-65535", "49152-65535"}

var poolVLANs = []uint16{0, 1, 2, 10, 100, 4094, 4095}

var poolTTLs = []uint8{0, 1, 2, 63, 64, 65, 128, 255}

var poolTTLRanges = []string{"0-1", "1-1", "2-64", "64-255", "0-255", "65-128"}

var poolLengthRanges = []string{"0-19", "20-40", "20-60", "40-100", "0-64", "61-1500", "100-65535", "28-28", "48-48"}

var poolICMPTypes = []uint8{0, 3, 8, 11, 5, 13}

var poolICMPv6Types = []uint8{1, 2, 3, 128, 129, 133, 134, 135, 136, 143}

var poolICMPCodes = []uint8{0, 1, 3, 4}

// pick returns a random element of xs.
func pick[T any](r *rand.Rand, xs []T) T { return xs[r.Intn(len(xs))] }

// chance reports true with probability p.
func chance(r *rand.Rand, p float64) bool { return r.Float64() < p }

// poolV4 returns an IPv4 address: usually from the pool, sometimes random.
func poolV4(r *rand.Rand) netip.Addr {
	if chance(r, 0.1) {
		var b [4]byte
		r.Read(b[:])
		return netip.AddrFrom4(b)
	}
	return netip.MustParseAddr(pick(r, poolV4Addrs))
}

// poolV6 returns an IPv6 address: usually from the pool, sometimes random.
func poolV6(r *rand.Rand) netip.Addr {
	if chance(r, 0.1) {
		var b [16]byte
		r.Read(b[:])
		return netip.AddrFrom16(b)
	}
	return netip.MustParseAddr(pick(r, poolV6Addrs))
}

// poolPort returns a port: usually from the pool, sometimes random.
func poolPort(r *rand.Rand) uint16 {
	if chance(r, 0.15) {
		return uint16(r.Intn(65536))
	}
	return pick(r, poolPorts)
}

// poolMAC returns a MAC: usually from the pool, sometimes random.
func poolMAC(r *rand.Rand) []byte {
	if chance(r, 0.1) {
		b := make([]byte, 6)
		r.Read(b)
		return b
	}
	m := pick(r, poolMACs)
	b := make([]byte, 6)
	for i := range 6 {
		b[i] = hexByte(m[3*i:])
	}
	return b
}

func hexByte(s string) byte {
	v := func(c byte) byte {
		switch {
		case c >= '0' && c <= '9':
			return c - '0'
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10
		}
		panic("corpus: bad hex digit in MAC pool")
	}
	return v(s[0])<<4 | v(s[1])
}

// poolVLAN returns a VLAN id: usually from the pool, sometimes random.
func poolVLAN(r *rand.Rand) uint16 {
	if chance(r, 0.1) {
		return uint16(r.Intn(4096))
	}
	return pick(r, poolVLANs)
}

// poolTTL returns a TTL or hop limit.
func poolTTL(r *rand.Rand) uint8 {
	if chance(r, 0.15) {
		return uint8(r.Intn(256))
	}
	return pick(r, poolTTLs)
}
