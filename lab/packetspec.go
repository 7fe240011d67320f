package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// ParsePacket builds an Ethernet frame from the one-line packet syntax, the
// syntax eval.Packet.Summary prints and `xdpc explain` reads
// (docs/packets.md):
//
//	[ether SRCMAC > DSTMAC] [vlan ID [vlan ID]] BODY [OPTION...]
//
//	BODY:   tcp SRC:PORT > DST:PORT
//	        udp SRC:PORT > DST:PORT
//	        icmp SRC > DST               (IPv4)
//	        icmpv6 SRC > DST             (IPv6)
//	        ip SRC > DST proto N|NAME    (an IP header and len bytes of zeros)
//	        arp [SRC > DST]              (an ARP message, IPv4 sender and target)
//	        ether 0xTYPE                 (len bytes of zeros, e.g. LLDP 0x88cc)
//
//	OPTION: flags LETTERS    TCP flags in tcpdump letters F S R P A U E C, "." for none
//	        type NAME|N      ICMP or ICMPv6 type, e.g. echo-request
//	        code N           ICMP code
//	        id N             an ICMP or ICMPv6 echo's identifier
//	        ttl N            IPv4 TTL or IPv6 hop limit
//	        frag first|later IPv4 flags and offset, or an IPv6 fragment header
//	        len N            payload bytes after the headers
//	        op request|reply|N  ARP operation
//	        csum partial|none  IPv4 tcp or udp: the checksum field holds the
//	                         folded pseudo-header sum (transmit offload's
//	                         partial checksum), or for udp 0 (none)
//	        about CARRIED    last, on an ICMP error: the packet it carries, a
//	                         tcp, udp, icmp, icmpv6 or ip body and its options,
//	                         and carry N: how many bytes after its fixed IP
//	                         header (20, or 40 for IPv6) it carries (default 8)
//
// IPv6 addresses with a port go in brackets: [2001:db8::1]:443. Defaults:
// MACs 02:00:00:00:00:01 > 02:00:00:00:00:02, ttl 64, flags S, type
// echo-request, code 0, id 0, len 0, carry 8, ARP addresses 10.0.0.1 >
// 10.0.0.2, op request. One tag
// is 802.1Q; two are 802.1ad then 802.1Q. A later fragment of a tcp, udp or
// icmp body carries the layer-4 header's bytes as fragment data. Frames are
// padded with zeros to 60 bytes, IP lengths and checksums are computed.
//
// The frame ParsePacket builds from a summary of a well-formed packet is
// treated by every rule as the packet itself.
func ParsePacket(spec string) ([]byte, error) {
	s, err := parsePacketSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("parse packet %q: %w", spec, err)
	}
	frame, err := s.build()
	if err != nil {
		return nil, fmt.Errorf("build packet %q: %w", spec, err)
	}
	return frame, nil
}

// packetSpec is a parsed packet line.
type packetSpec struct {
	srcMAC, dstMAC   net.HardwareAddr
	vlans            []uint16
	body             string // tcp, udp, icmp, icmpv6, ip, arp, ether
	src, dst         netip.Addr
	srcPort, dstPort uint16
	proto            uint8  // ip body
	etherType        uint16 // ether body
	flags            uint8
	icmpType         uint8
	icmpCode         uint8
	ttl              uint8
	frag             policy.Fragment
	payload          int
	arpOp            uint16
	echoID           uint16
	// csum is "partial" or "none" when the csum option sets the TCP or
	// UDP checksum; empty: computed.
	csum string
	// about is the packet an ICMP error carries (its about clause); carry
	// is, in that packet's spec, how many of its bytes after its fixed IP
	// header (20 bytes, or 40 for IPv6) the error holds.
	about *packetSpec
	carry int
	// carried is the bytes of about the error holds, once built.
	carried []byte
}

// Defaults of the packet syntax.
var (
	specSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	specDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	specARPSrc = netip.MustParseAddr("10.0.0.1")
	specARPDst = netip.MustParseAddr("10.0.0.2")
)

const (
	specMinFrame   = 60    // Ethernet minimum without FCS
	specMaxIPv4    = 65535 // largest IPv4 total length
	specMaxPayload = 65535 // largest IPv6 payload length, and ether body payload
	specLaterUnits = 185   // offset of a later fragment: 1480 bytes in 8-byte units
)

// specWords scans the words of a packet line and words errors by position.
type specWords struct {
	words []string
	i     int
}

func (w *specWords) more() bool   { return w.i < len(w.words) }
func (w *specWords) peek() string { return w.at(w.i) }

func (w *specWords) at(i int) string {
	if i < len(w.words) {
		return w.words[i]
	}
	return ""
}

func (w *specWords) next() string {
	s := w.peek()
	w.i++
	return s
}

// errorf says what was expected at the word just read (or at the end).
func (w *specWords) errorf(format string, args ...any) error {
	i := w.i - 1
	if i < len(w.words) && i >= 0 {
		return &specWordError{Word: i, msg: fmt.Sprintf("word %d %q: "+format, append([]any{i + 1, w.words[i]}, args...)...)}
	}
	return fmt.Errorf("at end of line: "+format, args...)
}

// specWordError is an error at one word of a packet line, so that a
// caller holding the line's source can point at that word.
type specWordError struct {
	// Word is the word's index among the line's words, ">" being one.
	Word int
	msg  string
}

func (e *specWordError) Error() string { return e.msg }

// parsePacketSpec reads a packet line into a spec with defaults filled in.
func parsePacketSpec(line string) (*packetSpec, error) {
	w := &specWords{words: strings.Fields(strings.ReplaceAll(line, ">", " > "))}
	s := &packetSpec{srcMAC: specSrcMAC, dstMAC: specDstMAC, ttl: 64, flags: wire.TCPSyn, frag: policy.FragNone, arpOp: layers.ARPRequest}
	if len(w.words) == 0 {
		return nil, errors.New("empty packet: expected a body such as tcp, udp, icmp, icmpv6, ip, arp or ether 0xTYPE")
	}
	if w.peek() == "ether" && !strings.HasPrefix(w.at(w.i+1), "0x") {
		w.next()
		if err := s.parseMACs(w); err != nil {
			return nil, err
		}
	}
	for w.peek() == "vlan" {
		w.next()
		if len(s.vlans) == 2 {
			return nil, w.errorf("at most two vlan tags (802.1ad + 802.1Q)")
		}
		id, err := specNumber(w, "a vlan id", 4095)
		if err != nil {
			return nil, err
		}
		s.vlans = append(s.vlans, uint16(id))
	}
	if err := s.parseBody(w); err != nil {
		return nil, err
	}
	if err := s.parseOptions(w); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *packetSpec) parseMACs(w *specWords) error {
	mac := func() (net.HardwareAddr, error) {
		m, err := net.ParseMAC(w.next())
		if err != nil || len(m) != 6 {
			return nil, w.errorf("expected a MAC address like 02:00:00:00:00:01")
		}
		return m, nil
	}
	var err error
	if s.srcMAC, err = mac(); err != nil {
		return err
	}
	if err := specArrow(w); err != nil {
		return err
	}
	s.dstMAC, err = mac()
	return err
}

func (s *packetSpec) parseBody(w *specWords) error {
	s.body = w.next()
	switch s.body {
	case "tcp", "udp":
		return s.parseAddrPorts(w)
	case "icmp", "icmpv6", "ip":
		if err := s.parseAddrs(w); err != nil {
			return err
		}
		switch {
		case s.body == "icmp" && !s.src.Is4():
			return w.errorf("icmp takes IPv4 addresses; use icmpv6 for IPv6")
		case s.body == "icmpv6" && !s.src.Is6():
			return w.errorf("icmpv6 takes IPv6 addresses; use icmp for IPv4")
		case s.body == "icmp":
			s.icmpType = wire.ICMPEchoRequest
		case s.body == "icmpv6":
			s.icmpType = wire.ICMPv6EchoRequest
		case s.body == "ip":
			return s.parseProto(w)
		}
		return nil
	case "arp":
		s.src, s.dst = specARPSrc, specARPDst
		if w.more() && !specIsOption(w.peek()) {
			if err := s.parseAddrs(w); err != nil {
				return err
			}
			if !s.src.Is4() {
				return w.errorf("arp takes IPv4 addresses")
			}
		}
		return nil
	case "ether":
		t := w.next()
		v, err := strconv.ParseUint(strings.TrimPrefix(t, "0x"), 16, 16)
		if err != nil || !strings.HasPrefix(t, "0x") {
			return w.errorf("expected an ether type in hex, like 0x88cc")
		}
		s.etherType = uint16(v)
		return s.checkEtherType(w)
	case "":
		return w.errorf("expected a body: tcp, udp, icmp, icmpv6, ip, arp or ether 0xTYPE")
	}
	return w.errorf("expected a body: tcp, udp, icmp, icmpv6, ip, arp or ether 0xTYPE")
}

// checkEtherType refuses ether bodies the frame could not carry as given:
// IP has its own bodies, and a VLAN type would be read as one more tag
// unless two tags come before it.
func (s *packetSpec) checkEtherType(w *specWords) error {
	switch s.etherType {
	case wire.EtherTypeIPv4, wire.EtherTypeIPv6:
		return w.errorf("an IP ether type needs an IP body: tcp, udp, icmp, icmpv6 or ip")
	case wire.EtherTypeVLAN, wire.EtherTypeQinQ:
		if len(s.vlans) < 2 {
			return w.errorf("a vlan ether type is read as a tag: write vlan ID instead")
		}
	}
	return nil
}

func (s *packetSpec) parseAddrPorts(w *specWords) error {
	addrPort := func() (netip.AddrPort, error) {
		ap, err := netip.ParseAddrPort(w.next())
		if err != nil || ap.Addr().Zone() != "" {
			return ap, w.errorf("expected ADDRESS:PORT, like 10.0.0.1:1234 or [2001:db8::1]:443")
		}
		return ap, nil
	}
	src, err := addrPort()
	if err != nil {
		return err
	}
	if err := specArrow(w); err != nil {
		return err
	}
	dst, err := addrPort()
	if err != nil {
		return err
	}
	if src.Addr().Is4() != dst.Addr().Is4() {
		return w.errorf("source and destination must both be IPv4 or both IPv6")
	}
	s.src, s.srcPort, s.dst, s.dstPort = src.Addr(), src.Port(), dst.Addr(), dst.Port()
	return nil
}

func (s *packetSpec) parseAddrs(w *specWords) error {
	addr := func() (netip.Addr, error) {
		a, err := netip.ParseAddr(w.next())
		if err != nil || a.Zone() != "" {
			return a, w.errorf("expected an IP address, like 10.0.0.1 or 2001:db8::1")
		}
		return a, nil
	}
	var err error
	if s.src, err = addr(); err != nil {
		return err
	}
	if err := specArrow(w); err != nil {
		return err
	}
	if s.dst, err = addr(); err != nil {
		return err
	}
	if s.src.Is4() != s.dst.Is4() {
		return w.errorf("source and destination must both be IPv4 or both IPv6")
	}
	return nil
}

func (s *packetSpec) parseProto(w *specWords) error {
	if w.next() != "proto" {
		return w.errorf("expected proto N after the addresses of an ip body")
	}
	if n, ok := wire.Protocols.Number(w.peek()); ok {
		w.next()
		s.proto = uint8(n)
		return nil
	}
	n, err := specNumber(w, "a protocol number or name (tcp, udp, icmp, icmpv6, sctp, gre, esp, ah)", 255)
	s.proto = uint8(n)
	return err
}

func specIsOption(word string) bool {
	switch word {
	case "flags", "type", "code", "id", "ttl", "frag", "len", "op", "about", "carry", "csum":
		return true
	}
	return false
}

// Bounds of an about clause.
const (
	// specCarryDefault is what an error carries of its packet's layer 4
	// unless carry says otherwise: the 8 bytes RFC 792 promises.
	specCarryDefault = 8
	// specMaxCarry bounds carry: more than an error holds within the
	// IPv6 minimum MTU.
	specMaxCarry = 1200
)

// parseOptions reads the options after the body, each at most once and
// only where the body has the header it sets. An about clause ends the
// line: the rest is the packet the error carries.
func (s *packetSpec) parseOptions(w *specWords) error {
	return s.parseOptionsOf(w, false)
}

// parseOptionsOf reads the options of a packet line's body, or with
// carried those of the packet an about clause gives, which take carry
// and no about.
func (s *packetSpec) parseOptionsOf(w *specWords, carried bool) error {
	seen := map[string]bool{}
	lenAt, idAt, aboutAt := 0, 0, 0
	ip := s.body != "arp" && s.body != "ether"
	for w.more() {
		name := w.next()
		if !specIsOption(name) || (carried && (name == "about" || name == "op" || name == "csum")) || (!carried && name == "carry") {
			if carried {
				return w.errorf("expected an option of the carried packet: flags, type, code, id, ttl, frag, len or carry")
			}
			return w.errorf("expected an option: flags, type, code, id, ttl, frag, len, op, csum or about")
		}
		if seen[name] {
			return w.errorf("option given twice")
		}
		seen[name] = true
		var err error
		switch {
		case name == "about":
			aboutAt = w.i
			err = s.parseAbout(w)
		case name == "carry":
			var n uint64
			n, err = specNumber(w, "how many bytes after its IP header the error carries", specMaxCarry)
			s.carry = int(n)
		case name == "id" && s.body != "icmp" && s.body != "icmpv6":
			return w.errorf("id applies only to an icmp or icmpv6 echo")
		case name == "id":
			var n uint64
			n, err = specNumber(w, "an echo identifier", 65535)
			s.echoID = uint16(n)
			idAt = w.i
		case name == "flags" && s.body != "tcp":
			return w.errorf("flags apply only to a tcp body")
		case (name == "type" || name == "code") && s.body != "icmp" && s.body != "icmpv6":
			return w.errorf("%s applies only to an icmp or icmpv6 body", name)
		case (name == "ttl" || name == "frag") && !ip:
			return w.errorf("%s applies only to an IP body", name)
		case name == "csum" && (s.body != "tcp" && s.body != "udp" || !s.src.Is4()):
			return w.errorf("csum applies only to an IPv4 tcp or udp body")
		case name == "csum":
			switch s.csum = w.next(); {
			case s.csum == "partial", s.csum == "none" && s.body == "udp":
			default:
				err = w.errorf("expected csum partial (or for udp csum none)")
			}
		case name == "op" && s.body != "arp":
			return w.errorf("op applies only to an arp body")
		case name == "op":
			err = s.parseARPOp(w)
		case name == "flags":
			s.flags, err = specFlags(w)
		case name == "type":
			err = s.parseICMPType(w)
		case name == "code":
			var n uint64
			n, err = specNumber(w, "an icmp code", 255)
			s.icmpCode = uint8(n)
		case name == "ttl":
			var n uint64
			n, err = specNumber(w, "a ttl", 255)
			s.ttl = uint8(n)
		case name == "frag":
			switch w.next() {
			case "first":
				s.frag = policy.FragFirst
			case "later":
				s.frag = policy.FragLater
			default:
				err = w.errorf("expected frag first or frag later")
			}
		case name == "len":
			var n uint64
			n, err = specNumber(w, "a payload length in bytes", specMaxPayload)
			s.payload = int(n)
			lenAt = w.i
		}
		if err != nil {
			return err
		}
	}
	if seen["id"] {
		if k := s.icmpKind(); k != conntrack.KindEchoRequest && k != conntrack.KindEchoReply {
			w.i = idAt
			return w.errorf("id applies only to an echo request or reply")
		}
	}
	if s.about != nil {
		w.i = aboutAt
		switch {
		case s.icmpKind() != conntrack.KindICMPError:
			return w.errorf("about applies only to an ICMP error: dest-unreachable, time-exceeded, parameter-problem (or packet-too-big)")
		case seen["len"]:
			return w.errorf("an error with an about clause carries that packet: give carry in the clause, not len")
		}
	}
	if max := s.maxPayload(); s.payload > max {
		w.i = lenAt
		return w.errorf("len too large: the packet can carry at most %d payload bytes", max)
	}
	return nil
}

// icmpKind is what connection tracking makes of an icmp or icmpv6 body's
// type (KindUntracked for other bodies).
func (s *packetSpec) icmpKind() conntrack.Kind {
	switch s.body {
	case "icmp":
		return conntrack.ICMPKind(4, s.icmpType)
	case "icmpv6":
		return conntrack.ICMPKind(6, s.icmpType)
	}
	return conntrack.KindUntracked
}

// parseAbout reads an about clause, the rest of the line: the body of the
// packet the error carries (tcp, udp, icmp, icmpv6 or ip, of the error's
// family) and its options.
func (s *packetSpec) parseAbout(w *specWords) error {
	in := &packetSpec{ttl: 64, flags: wire.TCPSyn, frag: policy.FragNone, carry: specCarryDefault}
	in.body = w.peek()
	switch in.body {
	case "tcp", "udp", "icmp", "icmpv6", "ip":
	default:
		w.next()
		return w.errorf("expected the packet the error carries: tcp, udp, icmp, icmpv6 or ip")
	}
	if err := in.parseBody(w); err != nil {
		return err
	}
	if in.src.Is4() != s.src.Is4() {
		if s.src.Is4() {
			return w.errorf("an icmp error carries an IPv4 packet")
		}
		return w.errorf("an icmpv6 error carries an IPv6 packet")
	}
	if err := in.parseOptionsOf(w, true); err != nil {
		return err
	}
	s.about = in
	return nil
}

// parseARPOp reads an ARP operation: request, reply or a number.
func (s *packetSpec) parseARPOp(w *specWords) error {
	switch w.peek() {
	case "request":
		w.next()
		s.arpOp = layers.ARPRequest
		return nil
	case "reply":
		w.next()
		s.arpOp = layers.ARPReply
		return nil
	}
	n, err := specNumber(w, "an arp operation: request, reply or a number", 65535)
	s.arpOp = uint16(n)
	return err
}

// specFlags reads TCP flags in tcpdump letters.
func specFlags(w *specWords) (uint8, error) {
	word := w.next()
	if word == "." {
		return 0, nil
	}
	if word == "" {
		return 0, w.errorf("expected TCP flags in letters F S R P A U E C, or . for none")
	}
	var flags uint8
	for _, c := range word {
		i := strings.IndexRune(wire.TCPFlagLetters, c)
		if i < 0 {
			return 0, w.errorf("unknown TCP flag %q: expected letters F S R P A U E C, or . alone for none (write A for ack)", c)
		}
		flags |= 1 << i
	}
	return flags, nil
}

func (s *packetSpec) parseICMPType(w *specWords) error {
	names := wire.ICMPTypes
	if s.body == "icmpv6" {
		names = wire.ICMPv6Types
	}
	if t, ok := names.Number(w.peek()); ok {
		w.next()
		s.icmpType = uint8(t)
		return nil
	}
	n, err := specNumber(w, fmt.Sprintf("an %s type name (like echo-request) or number", s.body), 255)
	s.icmpType = uint8(n)
	return err
}

// specNumber reads a decimal number up to max.
func specNumber(w *specWords, what string, max uint64) (uint64, error) {
	n, err := strconv.ParseUint(w.next(), 10, 64)
	if err != nil {
		return 0, w.errorf("expected %s", what)
	}
	if n > max {
		return 0, w.errorf("expected %s, at most %d", what, max)
	}
	return n, nil
}

func specArrow(w *specWords) error {
	if w.next() != ">" {
		return w.errorf(`expected ">" between source and destination`)
	}
	return nil
}

// headerBytes is the length of the headers the spec builds above layer 2:
// IP, IPv6 fragment header and layer 4.
func (s *packetSpec) headerBytes() int {
	n := 0
	switch s.body {
	case "arp":
		return 28
	case "ether":
		return 0
	case "tcp":
		n = 20
	case "udp", "icmp", "icmpv6":
		n = 8
	}
	if s.src.Is6() && s.frag != policy.FragNone {
		n += 8
	}
	return n
}

// maxPayload is the largest len the IP length fields can carry.
func (s *packetSpec) maxPayload() int {
	if s.src.Is4() && s.body != "arp" {
		return specMaxIPv4 - 20 - s.headerBytes()
	}
	return specMaxPayload - s.headerBytes()
}

// build serializes the spec with gopacket, fixing lengths and checksums.
func (s *packetSpec) build() ([]byte, error) {
	if s.about != nil {
		b, err := s.about.carriedBytes()
		if err != nil {
			return nil, err
		}
		s.carried = b
	}
	ls := s.linkLayers()
	ls = append(ls, s.networkLayers()...)
	ls = append(ls, gopacket.Payload(make([]byte, s.payload)))
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		return nil, err
	}
	frame := buf.Bytes()
	if s.csum != "" {
		s.setChecksum(frame)
	}
	for len(frame) < specMinFrame {
		frame = append(frame, 0)
	}
	return frame, nil
}

// setChecksum writes the TCP or UDP checksum csum asks for into the
// built IPv4 frame: partial, the folded pseudo-header sum a sender with
// transmit checksum offload leaves (its length the IP packet's payload);
// none, a UDP checksum of 0. A later fragment has no layer 4 to write.
func (s *packetSpec) setChecksum(frame []byte) {
	if s.frag == policy.FragLater {
		return
	}
	l3 := 14 + 4*len(s.vlans)
	l4 := l3 + int(frame[l3]&0x0f)*4
	field := l4 + 6
	if s.body == "tcp" {
		field = l4 + 16
	}
	var v uint16
	if s.csum == "partial" {
		length := int(binary.BigEndian.Uint16(frame[l3+2:])) - (l4 - l3)
		v = nat.PseudoSum([4]byte(frame[l3+12:]), [4]byte(frame[l3+16:]), frame[l3+9], uint16(length))
	}
	binary.BigEndian.PutUint16(frame[field:], v)
}

// carriedBytes is what an ICMP error holds of the packet s: its IP header
// (and IPv6 fragment header) and layer 4 as they would be sent, with
// lengths and checksums of the whole packet, cut to s.carry bytes after
// the fixed IP header, or filled up to them with zeros.
func (s *packetSpec) carriedBytes() ([]byte, error) {
	ls := append(s.networkLayers(), gopacket.Payload(make([]byte, s.payload)))
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		return nil, fmt.Errorf("the carried packet: %w", err)
	}
	fixed := 20
	if s.src.Is6() {
		fixed = 40
	}
	b := append([]byte(nil), buf.Bytes()...)
	want := fixed + s.carry
	if len(b) >= want {
		return b[:want], nil
	}
	return append(b, make([]byte, want-len(b))...), nil
}

// linkLayers are the Ethernet header and VLAN tags.
func (s *packetSpec) linkLayers() []gopacket.SerializableLayer {
	eth := &layers.Ethernet{SrcMAC: s.srcMAC, DstMAC: s.dstMAC, EthernetType: s.payloadType()}
	switch len(s.vlans) {
	case 1:
		inner := eth.EthernetType
		eth.EthernetType = layers.EthernetTypeDot1Q
		return []gopacket.SerializableLayer{eth, &layers.Dot1Q{VLANIdentifier: s.vlans[0], Type: inner}}
	case 2:
		inner := eth.EthernetType
		eth.EthernetType = layers.EthernetTypeQinQ
		return []gopacket.SerializableLayer{eth,
			&layers.Dot1Q{VLANIdentifier: s.vlans[0], Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: s.vlans[1], Type: inner}}
	}
	return []gopacket.SerializableLayer{eth}
}

// payloadType is the ether type after the tags.
func (s *packetSpec) payloadType() layers.EthernetType {
	switch {
	case s.body == "ether":
		return layers.EthernetType(s.etherType)
	case s.body == "arp":
		return layers.EthernetTypeARP
	case s.src.Is4():
		return layers.EthernetTypeIPv4
	}
	return layers.EthernetTypeIPv6
}

// networkLayers are the ARP, IP and layer-4 headers.
func (s *packetSpec) networkLayers() []gopacket.SerializableLayer {
	switch s.body {
	case "ether":
		return nil
	case "arp":
		return []gopacket.SerializableLayer{&layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: s.arpOp,
			SourceHwAddress: s.srcMAC, SourceProtAddress: s.src.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: s.dst.AsSlice(),
		}}
	}
	proto := s.proto
	switch s.body {
	case "tcp":
		proto = wire.ProtoTCP
	case "udp":
		proto = wire.ProtoUDP
	case "icmp":
		proto = wire.ProtoICMP
	case "icmpv6":
		proto = wire.ProtoICMPv6
	}
	var ip gopacket.NetworkLayer
	var ls []gopacket.SerializableLayer
	if s.src.Is4() {
		ip4 := &layers.IPv4{Version: 4, TTL: s.ttl, Protocol: layers.IPProtocol(proto),
			SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
		switch s.frag {
		case policy.FragFirst:
			ip4.Flags = layers.IPv4MoreFragments
		case policy.FragLater:
			ip4.FragOffset = specLaterUnits
		}
		ip, ls = ip4, []gopacket.SerializableLayer{ip4}
	} else {
		ip6 := &layers.IPv6{Version: 6, HopLimit: s.ttl, NextHeader: layers.IPProtocol(proto),
			SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
		ip, ls = ip6, []gopacket.SerializableLayer{ip6}
		if s.frag != policy.FragNone {
			fh := &layers.IPv6Fragment{NextHeader: ip6.NextHeader, MoreFragments: s.frag == policy.FragFirst}
			if s.frag == policy.FragLater {
				fh.FragmentOffset = specLaterUnits
			}
			ip6.NextHeader = layers.IPProtocolIPv6Fragment
			ls = append(ls, fh)
		}
	}
	return append(ls, s.transportLayers(ip)...)
}

// transportLayers are the layer-4 header of a tcp, udp, icmp or icmpv6 body.
func (s *packetSpec) transportLayers(ip gopacket.NetworkLayer) []gopacket.SerializableLayer {
	switch s.body {
	case "tcp":
		t := &layers.TCP{SrcPort: layers.TCPPort(s.srcPort), DstPort: layers.TCPPort(s.dstPort), Window: 65535,
			FIN: s.flags&wire.TCPFin != 0, SYN: s.flags&wire.TCPSyn != 0, RST: s.flags&wire.TCPRst != 0,
			PSH: s.flags&wire.TCPPsh != 0, ACK: s.flags&wire.TCPAck != 0, URG: s.flags&wire.TCPUrg != 0,
			ECE: s.flags&wire.TCPEce != 0, CWR: s.flags&wire.TCPCwr != 0}
		_ = t.SetNetworkLayerForChecksum(ip)
		return []gopacket.SerializableLayer{t}
	case "udp":
		u := &layers.UDP{SrcPort: layers.UDPPort(s.srcPort), DstPort: layers.UDPPort(s.dstPort)}
		_ = u.SetNetworkLayerForChecksum(ip)
		return []gopacket.SerializableLayer{u}
	case "icmp":
		return []gopacket.SerializableLayer{
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(s.icmpType, s.icmpCode), Id: s.echoID},
			gopacket.Payload(s.carried)}
	case "icmpv6":
		// ICMPv6 is 4 bytes in gopacket; the first word of the message body
		// follows (an echo's identifier and sequence number), so that the
		// header is the 8 bytes every ICMPv6 message has.
		i := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(s.icmpType, s.icmpCode)}
		_ = i.SetNetworkLayerForChecksum(ip)
		word := []byte{byte(s.echoID >> 8), byte(s.echoID), 0, 0}
		return []gopacket.SerializableLayer{i, gopacket.Payload(append(word, s.carried...))}
	}
	return nil
}
