package conntrack

import (
	"fmt"
	"sort"
	"time"
)

// Timeouts are how long an entry lives without packets, by state. The
// zero value of a field means its default (netfilter's).
type Timeouts struct {
	TCPSynSent, TCPSynRecv, TCPEstablished, TCPFinWait, TCPCloseWait,
	TCPLastAck, TCPTimeWait, TCPClose time.Duration
	// UDP is an unreplied UDP flow's, UDPStream one with packets both ways.
	UDP, UDPStream time.Duration
	// ICMP is an echo request's and its reply's.
	ICMP time.Duration
	// Other is any other protocol's, unreplied or replied.
	Other time.Duration
}

// DefaultTimeouts are netfilter's defaults.
var DefaultTimeouts = Timeouts{
	TCPSynSent:     2 * time.Minute,
	TCPSynRecv:     60 * time.Second,
	TCPEstablished: 5 * 24 * time.Hour,
	TCPFinWait:     2 * time.Minute,
	TCPCloseWait:   60 * time.Second,
	TCPLastAck:     30 * time.Second,
	TCPTimeWait:    2 * time.Minute,
	TCPClose:       10 * time.Second,
	UDP:            30 * time.Second,
	UDPStream:      2 * time.Minute,
	ICMP:           30 * time.Second,
	Other:          10 * time.Minute,
}

// fields names the timeouts as a policy's conntrack block does, each with
// a pointer to its field.
func (t *Timeouts) fields() map[string]*time.Duration {
	return map[string]*time.Duration{
		"tcp_syn_sent":    &t.TCPSynSent,
		"tcp_syn_recv":    &t.TCPSynRecv,
		"tcp_established": &t.TCPEstablished,
		"tcp_fin_wait":    &t.TCPFinWait,
		"tcp_close_wait":  &t.TCPCloseWait,
		"tcp_last_ack":    &t.TCPLastAck,
		"tcp_time_wait":   &t.TCPTimeWait,
		"tcp_close":       &t.TCPClose,
		"udp":             &t.UDP,
		"udp_stream":      &t.UDPStream,
		"icmp":            &t.ICMP,
		"other":           &t.Other,
	}
}

// TimeoutNames lists the names a conntrack block's timeouts take, sorted.
func TimeoutNames() []string {
	var t Timeouts
	var names []string
	for n := range t.fields() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Named returns the timeout called name (0 when there is none).
func (t Timeouts) Named(name string) time.Duration {
	if p, ok := t.fields()[name]; ok {
		return *p
	}
	return 0
}

// Set sets the timeout called name; false when there is none of that name.
func (t *Timeouts) Set(name string, d time.Duration) bool {
	p, ok := t.fields()[name]
	if ok {
		*p = d
	}
	return ok
}

// Limits of a configured timeout: shorter ones would expire entries
// between a packet and its answer; longer ones keep dead flows for more
// than a month.
const (
	MinTimeout = time.Second
	MaxTimeout = 30 * 24 * time.Hour
)

// WithDefaults returns t with every unset timeout set to its default.
func (t Timeouts) WithDefaults() Timeouts {
	d := DefaultTimeouts
	got, def := t.fields(), d.fields()
	for name, p := range got {
		if *p == 0 {
			*p = *def[name]
		}
	}
	return t
}

// Of returns the timeout of an entry in state s (defaults for unset ones).
// It allocates nothing: the table calls it for every packet it records.
func (t Timeouts) Of(s State) time.Duration {
	if d := t.of(s); d != 0 {
		return d
	}
	return DefaultTimeouts.of(s)
}

// of returns the field of t that holds state s's timeout.
func (t *Timeouts) of(s State) time.Duration {
	switch s {
	case TCPSynSent, TCPSynSent2:
		return t.TCPSynSent
	case TCPSynRecv:
		return t.TCPSynRecv
	case TCPEstablished:
		return t.TCPEstablished
	case TCPFinWait:
		return t.TCPFinWait
	case TCPCloseWait:
		return t.TCPCloseWait
	case TCPLastAck:
		return t.TCPLastAck
	case TCPTimeWait:
		return t.TCPTimeWait
	case TCPClose:
		return t.TCPClose
	case UDPUnreplied:
		return t.UDP
	case UDPReplied:
		return t.UDPStream
	case ICMPRequested, ICMPReplied:
		return t.ICMP
	case OtherUnreplied, OtherReplied:
		return t.Other
	}
	panic(fmt.Sprintf("conntrack: no timeout for state %s", s))
}

// States lists every state an entry can be in, in numeric order.
func States() []State {
	var out []State
	for s := range stateNames {
		if s != StateNone {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
