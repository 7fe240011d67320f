package conntrack

import "fmt"

// State is the state of a table entry. TCP entries follow netfilter's
// state machine (NextTCP); the others are unreplied until a packet goes the
// other way, then replied.
type State uint8

// Entry states. The numbers are stored in the datapath's table entries.
const (
	// StateNone is no entry.
	StateNone State = 0

	// TCPSynSent: a SYN was seen from the originator.
	TCPSynSent State = 1
	// TCPSynRecv: the responder answered with SYN+ACK.
	TCPSynRecv State = 2
	// TCPEstablished: the handshake completed (or the host's own packet
	// of a connection older than the table picked it up).
	TCPEstablished State = 3
	// TCPFinWait: a FIN was seen.
	TCPFinWait State = 4
	// TCPCloseWait: the first FIN was acknowledged.
	TCPCloseWait State = 5
	// TCPLastAck: FINs were seen both ways.
	TCPLastAck State = 6
	// TCPTimeWait: the last ACK was seen.
	TCPTimeWait State = 7
	// TCPClose: a RST was seen.
	TCPClose State = 8
	// TCPSynSent2: a SYN came back from the responder (simultaneous open).
	TCPSynSent2 State = 9

	// UDPUnreplied: packets went one way only.
	UDPUnreplied State = 16
	// UDPReplied: packets went both ways (a stream).
	UDPReplied State = 17

	// ICMPRequested: an echo request was seen.
	ICMPRequested State = 32
	// ICMPReplied: its echo reply was seen.
	ICMPReplied State = 33

	// OtherUnreplied: packets of another protocol went one way only.
	OtherUnreplied State = 48
	// OtherReplied: packets of another protocol went both ways.
	OtherReplied State = 49
)

var stateNames = map[State]string{
	StateNone:      "none",
	TCPSynSent:     "syn_sent",
	TCPSynRecv:     "syn_recv",
	TCPEstablished: "established",
	TCPFinWait:     "fin_wait",
	TCPCloseWait:   "close_wait",
	TCPLastAck:     "last_ack",
	TCPTimeWait:    "time_wait",
	TCPClose:       "close",
	TCPSynSent2:    "syn_sent2",
	UDPUnreplied:   "unreplied",
	UDPReplied:     "replied",
	ICMPRequested:  "requested",
	ICMPReplied:    "replied",
	OtherUnreplied: "unreplied",
	OtherReplied:   "replied",
}

// String names the state as `xdpc ct list` shows it ("established",
// "time_wait", "unreplied", ...).
func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Known reports whether s is a state of this table.
func (s State) Known() bool {
	_, ok := stateNames[s]
	return ok && s != StateNone
}

// IsTCP reports whether s is a TCP state.
func (s State) IsTCP() bool { return s >= TCPSynSent && s <= TCPSynSent2 }

// Replied reports whether an entry in state s has seen a packet in the
// reply direction.
func (s State) Replied() bool {
	switch s {
	case TCPSynSent, TCPSynSent2, UDPUnreplied, ICMPRequested, OtherUnreplied:
		return false
	}
	return s != StateNone
}

// Assured reports whether an entry in state s is a connection worth
// keeping under a flood of new flows: a TCP connection whose handshake
// completed and that is not closing down, or a UDP, ICMP or other flow
// with traffic both ways. The datapath keeps assured entries in a table
// of their own, which new flows never evict (docs/conntrack.md).
func (s State) Assured() bool {
	switch s {
	case TCPEstablished, TCPFinWait, TCPCloseWait, TCPLastAck, UDPReplied, ICMPReplied, OtherReplied:
		return true
	}
	return false
}

// Dir is the direction of a packet relative to its entry.
type Dir uint8

const (
	// Original is the direction of the packet that created the entry.
	Original Dir = 0
	// Reply is the other direction.
	Reply Dir = 1
)

func (d Dir) String() string {
	if d == Reply {
		return "reply"
	}
	return "original"
}

// TCPClass is what a TCP segment's flags say to the state machine,
// netfilter's get_conntrack_index: RST before SYN before FIN before ACK.
type TCPClass uint8

const (
	ClassSyn    TCPClass = iota // SYN without ACK
	ClassSynAck                 // SYN and ACK
	ClassFin                    // FIN (no SYN, no RST)
	ClassAck                    // ACK only of the four
	ClassRst                    // RST
	ClassNone                   // none of SYN, FIN, ACK, RST
	numTCPClasses
)

var classNames = [...]string{"syn", "synack", "fin", "ack", "rst", "none"}

func (c TCPClass) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("TCPClass(%d)", uint8(c))
}

// TCP flag bits of the header's flags byte.
const (
	flagFin = 0x01
	flagSyn = 0x02
	flagRst = 0x04
	flagAck = 0x10
)

// ClassifyTCP returns the class of a segment with the flags byte flags.
func ClassifyTCP(flags uint8) TCPClass {
	switch {
	case flags&flagRst != 0:
		return ClassRst
	case flags&flagSyn != 0 && flags&flagAck != 0:
		return ClassSynAck
	case flags&flagSyn != 0:
		return ClassSyn
	case flags&flagFin != 0:
		return ClassFin
	case flags&flagAck != 0:
		return ClassAck
	}
	return ClassNone
}

// TCPStates lists the TCP states in the order of TCPTable's columns.
var TCPStates = [...]State{StateNone, TCPSynSent, TCPSynRecv, TCPEstablished, TCPFinWait,
	TCPCloseWait, TCPLastAck, TCPTimeWait, TCPClose, TCPSynSent2}

// stay marks a transition that leaves the state as it is: netfilter's
// sIV (invalid) and sIG (ignored). A packet that belongs to an entry is
// established either way (LANGUAGE.md); only the state does not move.
const stay = State(255)

// TCPTable is netfilter's tcp_conntracks: the next state for a segment of
// class c in direction d when the entry is in TCPStates[i], or stay.
// Column StateNone (no entry) is used only for what may create one: a SYN
// in the original direction, and an ACK picked up from the host's own
// traffic (Pickup).
var TCPTable = [2][numTCPClasses][len(TCPStates)]State{
	Original: {
		//            sNO         sSS         sSR             sES             sFW           sCW           sLA           sTW          sCL         sS2
		ClassSyn:    {TCPSynSent, TCPSynSent, stay, stay, stay, stay, stay, TCPSynSent, TCPSynSent, TCPSynSent2},
		ClassSynAck: {stay, stay, stay, stay, stay, stay, stay, stay, stay, TCPSynRecv},
		ClassFin:    {stay, stay, TCPFinWait, TCPFinWait, TCPLastAck, TCPLastAck, TCPLastAck, TCPTimeWait, TCPClose, stay},
		ClassAck:    {TCPEstablished, stay, TCPEstablished, TCPEstablished, TCPCloseWait, TCPCloseWait, TCPTimeWait, TCPTimeWait, TCPClose, stay},
		ClassRst:    {stay, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose},
		ClassNone:   {stay, stay, stay, stay, stay, stay, stay, stay, stay, stay},
	},
	Reply: {
		ClassSyn:    {stay, TCPSynSent2, stay, stay, stay, stay, stay, stay, stay, TCPSynSent2},
		ClassSynAck: {stay, TCPSynRecv, stay, stay, stay, stay, stay, stay, stay, TCPSynRecv},
		ClassFin:    {stay, stay, TCPFinWait, TCPFinWait, TCPLastAck, TCPLastAck, TCPLastAck, TCPTimeWait, TCPClose, stay},
		ClassAck:    {stay, stay, TCPSynRecv, TCPEstablished, TCPCloseWait, TCPCloseWait, TCPTimeWait, TCPTimeWait, TCPClose, stay},
		ClassRst:    {stay, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose},
		ClassNone:   {stay, stay, stay, stay, stay, stay, stay, stay, stay, stay},
	},
}

// tcpColumn is s's column in TCPTable.
func tcpColumn(s State) int {
	for i, c := range TCPStates {
		if c == s {
			return i
		}
	}
	panic(fmt.Sprintf("conntrack: %s is not a TCP state", s))
}

// NextTCP returns the state an entry in state s (StateNone: no entry)
// moves to on a segment of class c in direction d, and false when the
// state stays as it is.
func NextTCP(s State, d Dir, c TCPClass) (State, bool) {
	n := TCPTable[d][c][tcpColumn(s)]
	if n == stay {
		return s, false
	}
	return n, true
}

// Reopens reports whether a segment of class c in direction d starts a
// new connection over an entry in state s: a SYN from the originator of a
// connection in TIME_WAIT or CLOSE (RFC 1122's reopening; netfilter kills
// the old entry). The packet is then new, as if there were no entry.
func Reopens(s State, d Dir, c TCPClass) bool {
	return d == Original && c == ClassSyn && (s == TCPTimeWait || s == TCPClose)
}
