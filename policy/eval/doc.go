// Package eval is the reference evaluator: it decides what a policy does with
// one Ethernet frame, in plain Go, by the algorithm of docs/datapath.md.
//
// It works on the checked model (policy.Policy) and raw frame bytes, never on
// the compiler's IR, so it stays an independent oracle that the compiled XDP
// program is tested against packet by packet.
//
// Parse reads a frame into a Packet or says why it is malformed; Evaluate
// gives the verdict, the deciding rule and the counter slots a frame touches;
// Explain gives the same decision with the reason each rule did or did not
// match. Malformed frames are not errors of the evaluator: they are a verdict
// of the policy. Nothing in this package panics on any frame.
//
// A policy that matches ct_state decides by a connection table
// (docs/conntrack.md). A Session keeps one, frame after frame, with the
// frames' timestamps as its clock: Ingress decides an arriving frame and
// records what the policy lets through, Egress records a frame the host
// sends, Flows shows the table. Track says what the table reads of a frame.
// Evaluate and Explain keep no state: they decide as a fresh session would.
//
// A Host is a network namespace with policies on several interfaces and
// NAT between them (docs/nat.md): one connection table and one NAT state
// for all of them. Its Ingress returns, beside the decision, the frame as
// NAT rewrites it and what translated it.
package eval
