package eval

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/wire"
)

type explainStep struct {
	name  string
	at    time.Duration
	out   bool
	frame []byte
}

func newExplainSession() *Session { return NewSession(hostPolicy(), policy.Conntrack{}) }

// explainSteps are a conversation that shows each kind of ct_state reason
// and table change.
func explainSteps() []explainStep {
	return []explainStep{
		{name: "syn", frame: sshIn(syn)},
		{name: "syn+ack out", at: ms, out: true, frame: sshOut(synAck)},
		{name: "ack", at: 2 * ms, frame: sshIn(ack)},
		{name: "dropped", at: 2 * ms, frame: tcp4(peer4, host4, 1, 80, syn)},
		{name: "related", at: 3 * ms, frame: err4(3, 3, v4{src: host4, dst: peer4, proto: wire.ProtoTCP}.build(tcp(22, 40000, synAck, 0)))},
		{name: "error about no flow", at: 3 * ms, frame: err4(3, 3, v4{src: host4, dst: peer4, proto: wire.ProtoUDP}.build(udp(1, 2)))},
		{name: "error carrying too little", at: 3 * ms, frame: err6(1, 3, tcp6(host6, peer6, 22, 40000, ack)[14:50])},
		{name: "untracked", at: 3 * ms, frame: ether(0x86dd, v6{nh: wire.ProtoICMPv6}.build(icmp(135, 0), zeros(16)))},
		{name: "fin", at: 4 * ms, frame: sshIn(finAck)},
		{name: "fin out", at: 5 * ms, out: true, frame: sshOut(finAck)},
		{name: "last ack", at: 6 * ms, frame: sshIn(ack)},
		{name: "reopen", at: 7 * ms, frame: sshIn(syn)},
		{name: "mid-stream", at: 8 * ms, frame: webIn(pshAck)},
		{name: "pickup", at: 9 * ms, out: true, frame: webOut(pshAck)},
		{name: "kept", at: 10 * ms, frame: webIn(pshAck | wire.TCPSyn)},
		{name: "expired", at: 10*ms + 5*day + 3*sec, frame: webIn(pshAck)},
		{name: "malformed out", at: 6 * day, out: true, frame: badFrame},
		{name: "echo out", at: 6 * day, out: true, frame: echo4(host4, peer4, 8, 7)},
		{name: "echo reply", at: 6 * day, frame: echo4(peer4, host4, 0, 7)},
		{name: "lone echo reply", at: 6 * day, frame: echo4(peer4, host4, 0, 8)},
		{name: "invalid out", at: 6 * day, out: true, frame: webOut(rst)},
	}
}

// TestExplainConntrack checks the text of a session's explanations: the
// ct_state with the entry it came from, and what recording the frame did.
func TestExplainConntrack(t *testing.T) {
	want := map[string]string{
		"syn": `packet: tcp 10.0.0.2:40000 > 10.0.0.1:22 flags S
ct_state: new (no entry, and a tcp SYN starts one)
rule "invalid": no match: ct_state new not in invalid
rule "replies": no match: ct_state new not in [established, related]
rule "ssh": match -> pass
verdict: pass by rule "ssh"
conntrack: creates entry tcp 10.0.0.2:40000 > 10.0.0.1:22 in syn_sent for 2m0s
`,
		"syn+ack out": `packet (out): tcp 10.0.0.1:22 > 10.0.0.2:40000 flags SA
ct_state: established (entry tcp 10.0.0.2:40000 > 10.0.0.1:22 in syn_sent, this packet the reply way)
conntrack: moves the entry from syn_sent to syn_recv, for 1m0s
`,
		"ack": `packet: tcp 10.0.0.2:40000 > 10.0.0.1:22 flags A
ct_state: established (entry tcp 10.0.0.2:40000 > 10.0.0.1:22 in syn_recv, this packet the original way)
rule "invalid": no match: ct_state established not in invalid
rule "replies": match -> pass
verdict: pass by rule "replies"
conntrack: moves the entry from syn_recv to established, for 120h0m0s
`,
		"dropped": `packet: tcp 10.0.0.2:1 > 10.0.0.1:80 flags S
ct_state: new (no entry, and a tcp SYN starts one)
rule "invalid": no match: ct_state new not in invalid
rule "replies": no match: ct_state new not in [established, related]
rule "ssh": no match: dst_port 80 not in 22
rule "ping": no match: icmp_type: packet has no icmp header (proto tcp)
verdict: drop by default
conntrack: nothing recorded (the packet is dropped)
`,
		"related": `packet: icmp 192.0.2.254 > 10.0.0.1 type dest-unreachable code 3 about tcp 10.0.0.1:22 > 10.0.0.2:40000 carry 20
ct_state: related (an icmp error about tcp 10.0.0.1:22 > 10.0.0.2:40000, whose entry is established)
rule "invalid": no match: ct_state related not in invalid
rule "replies": match -> pass
verdict: pass by rule "replies"
conntrack: no change (a related packet changes nothing)
`,
		"error about no flow": `packet: icmp 192.0.2.254 > 10.0.0.1 type dest-unreachable code 3 about udp 10.0.0.1:1 > 10.0.0.2:2
ct_state: invalid (an icmp error about udp 10.0.0.1:1 > 10.0.0.2:2, no entry)
rule "invalid": match -> drop
verdict: drop by rule "invalid"
conntrack: nothing recorded (the packet is dropped)
`,
		"error carrying too little": `packet: icmpv6 2001:db8:ff::1 > 2001:db8::1 type dest-unreachable code 3 len 36
ct_state: invalid (an icmpv6 error that carries too little of its packet to know its flow)
rule "invalid": match -> drop
verdict: drop by rule "invalid"
conntrack: nothing recorded (the packet is dropped)
`,
		"untracked": `packet: icmpv6 2001:db8::1 > 2001:db8::2 type neighbor-solicitation len 16
ct_state: untracked (icmpv6 neighbor-solicitation is neither an echo nor an error)
rule "invalid": no match: ct_state: packet is not tracked (icmpv6 neighbor-solicitation is neither an echo nor an error)
rule "replies": no match: ct_state: packet is not tracked (icmpv6 neighbor-solicitation is neither an echo nor an error)
rule "ssh": no match: proto icmpv6 not in tcp
rule "ping": no match: icmp_type 135 not in 8
verdict: drop by default
conntrack: nothing recorded (the packet is dropped)
`,
		"fin": `packet: tcp 10.0.0.2:40000 > 10.0.0.1:22 flags FA
ct_state: established (entry tcp 10.0.0.2:40000 > 10.0.0.1:22 in established, this packet the original way)
rule "invalid": no match: ct_state established not in invalid
rule "replies": match -> pass
verdict: pass by rule "replies"
conntrack: moves the entry from established to fin_wait, for 2m0s
`,
		"fin out": `packet (out): tcp 10.0.0.1:22 > 10.0.0.2:40000 flags FA
ct_state: established (entry tcp 10.0.0.2:40000 > 10.0.0.1:22 in fin_wait, this packet the reply way)
conntrack: moves the entry from fin_wait to last_ack, for 30s
`,
		"last ack": `packet: tcp 10.0.0.2:40000 > 10.0.0.1:22 flags A
ct_state: established (entry tcp 10.0.0.2:40000 > 10.0.0.1:22 in last_ack, this packet the original way)
rule "invalid": no match: ct_state established not in invalid
rule "replies": match -> pass
verdict: pass by rule "replies"
conntrack: moves the entry from last_ack to time_wait, for 2m0s
`,
		"reopen": `packet: tcp 10.0.0.2:40000 > 10.0.0.1:22 flags S
ct_state: new (entry tcp 10.0.0.2:40000 > 10.0.0.1:22 in time_wait: a SYN from its originator reopens the connection)
rule "invalid": no match: ct_state new not in invalid
rule "replies": no match: ct_state new not in [established, related]
rule "ssh": match -> pass
verdict: pass by rule "ssh"
conntrack: creates entry tcp 10.0.0.2:40000 > 10.0.0.1:22 in syn_sent for 2m0s, replacing the one in time_wait
`,
		"mid-stream": `packet: tcp 10.0.0.2:443 > 10.0.0.1:50000 flags PA
ct_state: invalid (no entry, and a tcp ACK cannot start one)
rule "invalid": match -> drop
verdict: drop by rule "invalid"
conntrack: nothing recorded (the packet is dropped)
`,
		"pickup": `packet (out): tcp 10.0.0.1:50000 > 10.0.0.2:443 flags PA
ct_state: invalid (no entry, and a tcp ACK cannot start one)
conntrack: picks up the connection the host is in: entry tcp 10.0.0.1:50000 > 10.0.0.2:443 in established for 120h0m0s
`,
		"kept": `packet: tcp 10.0.0.2:443 > 10.0.0.1:50000 flags SPA
ct_state: established (entry tcp 10.0.0.1:50000 > 10.0.0.2:443 in established, this packet the reply way)
rule "invalid": no match: ct_state established not in invalid
rule "replies": match -> pass
verdict: pass by rule "replies"
conntrack: keeps the entry in established, for 120h0m0s
`,
		"expired": `packet: tcp 10.0.0.2:443 > 10.0.0.1:50000 flags PA
ct_state: invalid (its entry (established) expired 3s ago, and a tcp ACK cannot start one)
rule "invalid": match -> drop
verdict: drop by rule "invalid"
conntrack: nothing recorded (the packet is dropped)
`,
		"malformed out": `packet (out): malformed: ipv4 total length < header length at offset 14
conntrack: no change (malformed)
`,
		"echo out": `packet (out): icmp 10.0.0.1 > 10.0.0.2 type echo-request id 7
ct_state: new (no entry, and an echo request starts one)
conntrack: creates entry icmp 10.0.0.1 > 10.0.0.2 id 7 in requested for 30s
`,
		"echo reply": `packet: icmp 10.0.0.2 > 10.0.0.1 type echo-reply id 7
ct_state: established (entry icmp 10.0.0.1 > 10.0.0.2 id 7 in requested, this packet the reply way)
rule "invalid": no match: ct_state established not in invalid
rule "replies": match -> pass
verdict: pass by rule "replies"
conntrack: moves the entry from requested to replied, for 30s
`,
		"lone echo reply": `packet: icmp 10.0.0.2 > 10.0.0.1 type echo-reply id 8
ct_state: invalid (no entry, and an echo reply cannot start one)
rule "invalid": match -> drop
verdict: drop by rule "invalid"
conntrack: nothing recorded (the packet is dropped)
`,
		"invalid out": `packet (out): tcp 10.0.0.1:50000 > 10.0.0.2:443 flags R
ct_state: invalid (its entry (established) expired 23h59m59.99s ago, and a tcp RST cannot start one)
conntrack: no change (an invalid packet changes nothing)
`,
	}
	s := newExplainSession()
	for _, st := range explainSteps() {
		var got string
		if st.out {
			got = s.ExplainEgress(st.frame, conversationStart+uint64(st.at)).String()
		} else {
			got = s.Explain(st.frame, conversationStart+uint64(st.at)).String()
		}
		w, ok := want[st.name]
		if !ok {
			t.Errorf("%s: no text to compare with; got\n%s", st.name, got)
			continue
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", st.name, diff)
		}
	}
}
