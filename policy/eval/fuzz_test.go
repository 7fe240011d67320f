package eval

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

// fuzzPolicy names every field, negated and not, with count rules between.
var fuzzPolicy = newPolicy(policy.ActionPass, policy.ActionDrop,
	newRule("count", policy.ActionCount, not(is(policy.FieldEtherType, 0x88cc))),
	newRule("ct", policy.ActionCount, ctState(conntrack.StatusNew, conntrack.StatusInvalid)),
	newRule("vlans", policy.ActionCount, is(policy.FieldVLAN, 1, 10), not(is(policy.FieldInnerVLAN, 0))),
	newRule("macs", policy.ActionCount, inSet(policy.FieldSrcMAC, macSet), not(macList(policy.FieldDstMAC, otherMAC))),
	newRule("block", policy.ActionDrop, inSet(policy.FieldSrc, cidrSet), not(cidrs(policy.FieldDst, "10.0.0.0/8", "2001:db8::/32"))),
	newRule("ssh", policy.ActionPass, is(policy.FieldProto, 6), not(inSet(policy.FieldSrcPort, portSet)), is(policy.FieldDstPort, 22), flags(wire.TCPSyn, wire.TCPAck)),
	newRule("icmp", policy.ActionPass, not(is(policy.FieldICMPType, 8)), is(policy.FieldICMPCode, 0)),
	newRule("frag", policy.ActionDrop, values(policy.FieldTTL, policy.Range{Lo: 0, Hi: 10}), not(values(policy.FieldLength, policy.Range{Lo: 0, Hi: 100})), fragments(policy.FragLater)),
	newRule("v6", policy.ActionDrop, not(cidrs(policy.FieldSrc, "::/0"))),
)

// FuzzEvaluate checks that no frame makes the evaluator panic, that Explain
// and Parse agree with Evaluate, and that parsed fields respect their
// presence rules.
func FuzzEvaluate(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		got := Evaluate(fuzzPolicy, frame)
		e := Explain(fuzzPolicy, frame)
		if diff := cmp.Diff(got, e.Result); diff != "" {
			t.Fatalf("Explain differs from Evaluate (-evaluate +explain):\n%s", diff)
		}
		_ = e.String()
		p, bad := Parse(frame)
		if (bad != nil) != (got.Rule == RuleMalformed) || (p == nil) == (bad == nil) {
			t.Fatalf("Parse gives %v, %v; Evaluate %+v", p, bad, got)
		}
		if p == nil {
			return
		}
		if p.Summary() == "" {
			t.Fatal("empty summary")
		}
		later := p.Fragment == policy.FragLater
		switch {
		case p.HasPorts && (later || p.Proto != wire.ProtoTCP && p.Proto != wire.ProtoUDP),
			p.HasTCPFlags && (later || p.Proto != wire.ProtoTCP),
			p.HasICMP && (later || p.Proto != wire.ProtoICMP && p.Proto != wire.ProtoICMPv6),
			p.Family == 0 && (p.Src.IsValid() || p.Length != 0),
			p.Family == 4 && !p.Src.Is4(),
			p.Family == 6 && !p.Src.Is6():
			t.Fatalf("fields break their presence rules: %+v", p)
		}
	})
}

// A fuzzed session's input is a list of frames, each a header byte, a
// two-byte length, a byte of how much to cut off the frame's end, and the
// frame. Bit 0 of the header marks a frame the host sends, the other bits
// say how long after the previous frame it comes (0, or 2^(n mod 64) ns:
// up to 292 years). A frame cut short gets its IP length set to fit
// (fitLength), so that it stays well formed and shows what an ICMP error
// carrying too little does.
func encodeFrames(steps []ctStep) []byte {
	var b []byte
	prev := time.Duration(0)
	for _, st := range steps {
		hdr := byte(0)
		if d := st.at - prev; d > 0 {
			hdr = byte(bits.Len64(uint64(d))) << 1
		}
		if st.out {
			hdr |= 1
		}
		prev = st.at
		b = append(b, hdr)
		b = binary.BigEndian.AppendUint16(b, uint16(len(st.frame)))
		b = append(b, 0)
		b = append(b, st.frame...)
	}
	return b
}

// FuzzSession feeds frames in both directions to a session, and to a twin
// through Explain, and checks that nothing panics, that both agree, and
// that the table stays one the datapath could hold: every live entry
// encodes and decodes to itself, with a known state of its protocol and a
// timeout no longer than its state's.
func FuzzSession(f *testing.F) {
	// Whole conversations, and each of their frames alone: a short input
	// is where one mutation reaches one header field.
	for i, c := range conversations() {
		f.Add(byte(i), encodeFrames(c.steps))
		for _, st := range c.steps {
			f.Add(byte(i), encodeFrames([]ctStep{st}))
		}
	}
	policies := []*policy.Policy{hostPolicy(), loosePolicy()}
	f.Fuzz(func(t *testing.T, which byte, input []byte) {
		p := policies[int(which)%len(policies)]
		s, twin := NewSession(p, policy.Conntrack{}), NewSession(p, policy.Conntrack{})
		now := uint64(0)
		for len(input) >= 4 {
			hdr, n, cut := input[0], int(binary.BigEndian.Uint16(input[1:])), int(input[3])
			input = input[4:]
			frame := input[:min(n, len(input))]
			input = input[len(frame):]
			if cut != 0 {
				frame = fitLength(frame[:len(frame)-min(cut, len(frame))])
			}
			if e := hdr >> 1; e != 0 {
				now += 1 << (e % 64)
			}
			before := len(s.Flows(now))
			tracked := Track(frame).Kind != conntrack.KindUntracked
			var st conntrack.Status
			if hdr&1 != 0 {
				res := s.Egress(frame, now)
				x := twin.ExplainEgress(frame, now)
				if diff := cmp.Diff(res, x.Result); diff != "" {
					t.Fatalf("ExplainEgress differs from Egress:\n%s", diff)
				}
				_ = x.String()
				if res.Malformed != "" && (res.CTState != conntrack.StatusNone || res.Commit != CommitNone) {
					t.Fatalf("a malformed egress frame was tracked: %+v", res)
				}
				st = res.CTState
				checkCommit(t, res.Commit, st, true)
			} else {
				res := s.Ingress(frame, now)
				x := twin.Explain(frame, now)
				if diff := cmp.Diff(res, x.Result); diff != "" {
					t.Fatalf("Explain differs from Ingress:\n%s", diff)
				}
				_ = x.String()
				if res.Verdict == policy.ActionDrop && res.CTCommit != CommitNone {
					t.Fatalf("a dropped frame changed the table: %+v", res)
				}
				st = res.CTState
				checkCommit(t, res.CTCommit, st, false)
			}
			if st > conntrack.StatusInvalid || (st != conntrack.StatusNone) != tracked {
				t.Fatalf("ct_state %s of a frame the tracker reads as %+v", st, Track(frame))
			}
			flows := s.Flows(now)
			if len(flows) > before+1 {
				t.Fatalf("one frame added %d flows", len(flows)-before)
			}
			if diff := cmp.Diff(flows, twin.Flows(now), cmpAddr); diff != "" {
				t.Fatalf("the twin's table differs:\n%s", diff)
			}
			checkFlows(t, flows, now)
		}
	})
}

// fitLength returns a copy of frame whose IPv4 total length or IPv6
// payload length (after up to two VLAN tags) is what the frame holds.
func fitLength(frame []byte) []byte {
	f := bytes.Clone(frame)
	off := ethernetHeaderLength
	for i := 0; i < 2 && off+4 <= len(f) && (be16(f, off-2) == wire.EtherTypeVLAN || be16(f, off-2) == wire.EtherTypeQinQ); i++ {
		off += 4
	}
	if off > len(f) {
		return f
	}
	switch be16(f, off-2) {
	case wire.EtherTypeIPv4:
		if off+ipv4HeaderLength <= len(f) {
			binary.BigEndian.PutUint16(f[off+2:], uint16(len(f)-off))
		}
	case wire.EtherTypeIPv6:
		if off+ipv6HeaderLength <= len(f) {
			binary.BigEndian.PutUint16(f[off+4:], uint16(len(f)-off-ipv6HeaderLength))
		}
	}
	return f
}

// checkCommit checks that commit c is one a packet of status st can have.
func checkCommit(t *testing.T, c Commit, st conntrack.Status, egress bool) {
	t.Helper()
	ok := c == CommitNone ||
		c == CommitCreate && st == conntrack.StatusNew ||
		c == CommitUpdate && st == conntrack.StatusEstablished ||
		c == CommitPickup && st == conntrack.StatusInvalid && egress
	if !ok {
		t.Fatalf("commit %s of a packet %s (egress %v)", c, st, egress)
	}
}

// checkFlows checks that the live flows at now are sorted, distinct and
// each an entry the datapath's table could hold.
func checkFlows(t *testing.T, flows []conntrack.Flow, now uint64) {
	t.Helper()
	for i, fl := range flows {
		k, e := fl.Key, fl.Entry
		if i > 0 && bytes.Compare(flows[i-1].Key.Encode(), k.Encode()) >= 0 {
			t.Fatalf("flows out of order: %v then %v", flows[i-1].Key, k)
		}
		if back, err := conntrack.DecodeKey(k.Encode()); err != nil || back != k {
			t.Fatalf("key %v decodes to %v, %v", k, back, err)
		}
		if back, err := conntrack.DecodeEntry(e.Encode()); err != nil || back != e {
			t.Fatalf("entry %+v decodes to %+v, %v", e, back, err)
		}
		fam4 := k.Family == 4 && k.Lo.Addr.Is4() && k.Hi.Addr.Is4()
		fam6 := k.Family == 6 && k.Lo.Addr.Is6() && k.Hi.Addr.Is6()
		if !fam4 && !fam6 || conntrack.Less(k.Hi, k.Lo) {
			t.Fatalf("key %+v: family or order broken", k)
		}
		echo := k.Family == 4 && k.Proto == wire.ProtoICMP || k.Family == 6 && k.Proto == wire.ProtoICMPv6
		var fits bool
		switch {
		case k.Proto == wire.ProtoTCP:
			fits = e.State.IsTCP()
		case k.Proto == wire.ProtoUDP:
			fits = e.State == conntrack.UDPUnreplied || e.State == conntrack.UDPReplied
		case echo:
			fits = (e.State == conntrack.ICMPRequested || e.State == conntrack.ICMPReplied) && k.Lo.Port == k.Hi.Port
		default:
			fits = (e.State == conntrack.OtherUnreplied || e.State == conntrack.OtherReplied) && k.Lo.Port == 0 && k.Hi.Port == 0
		}
		if !fits || !e.State.Known() {
			t.Fatalf("entry %+v of flow %+v: state does not fit its protocol", e, k)
		}
		const known = conntrack.FlagOrigLo | conntrack.FlagEgress | conntrack.FlagPickedUp
		if e.Flags&^known != 0 || e.Flags&conntrack.FlagPickedUp != 0 && e.Flags&conntrack.FlagEgress == 0 {
			t.Fatalf("entry %+v: flags %b", e, e.Flags)
		}
		if e.Created > now || e.Expires <= now || e.Expires-now > uint64(conntrack.DefaultTimeouts.Of(e.State)) {
			t.Fatalf("entry %+v at %d: times broken", e, now)
		}
	}
}
