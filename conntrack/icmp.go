package conntrack

// ICMP and ICMPv6 message types the tracker tells apart
// (docs/conntrack.md, "Which packets are tracked").
const (
	icmpEchoReply      = 0
	icmpDestUnreach    = 3
	icmpEchoRequest    = 8
	icmpTimeExceeded   = 11
	icmpParamProblem   = 12
	icmpv6DestUnreach  = 1
	icmpv6PacketTooBig = 2
	icmpv6TimeExceeded = 3
	icmpv6ParamProblem = 4
	icmpv6EchoRequest  = 128
	icmpv6EchoReply    = 129
)

// ICMPKind returns what an ICMP message (family 4) or ICMPv6 message
// (family 6) of type typ is to the tracker: an echo request or reply, an
// error (destination unreachable, time exceeded, parameter problem, and
// for ICMPv6 packet too big), or KindUntracked for every other message
// (neighbour discovery, router advertisements, redirects, timestamps,
// source quench, ...).
func ICMPKind(family, typ uint8) Kind {
	if family == 6 {
		switch typ {
		case icmpv6EchoRequest:
			return KindEchoRequest
		case icmpv6EchoReply:
			return KindEchoReply
		case icmpv6DestUnreach, icmpv6PacketTooBig, icmpv6TimeExceeded, icmpv6ParamProblem:
			return KindICMPError
		}
		return KindUntracked
	}
	switch typ {
	case icmpEchoRequest:
		return KindEchoRequest
	case icmpEchoReply:
		return KindEchoReply
	case icmpDestUnreach, icmpTimeExceeded, icmpParamProblem:
		return KindICMPError
	}
	return KindUntracked
}
