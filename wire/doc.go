// Package wire is the one vocabulary of the protocols xdpc parses: ether
// types, IP protocol numbers, IPv6 extension-header numbers, ICMP and
// ICMPv6 message types and TCP flag bits, with the names the policy
// language (docs/language.md) and the packet syntax (docs/packets.md) give
// them. The policy checker, the reference evaluator, the compiler's packet
// parser, the lab's packet builder and the corpus generator all read these
// numbers from here, so a number or a name is defined once.
//
// It imports only the standard library and has no errors: a lookup that
// finds nothing says so with its second result.
package wire
