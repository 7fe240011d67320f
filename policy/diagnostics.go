package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/xdpc/xdpc/wire"
)

// Every diagnostic the checker emits is built here, so that the wording
// stays consistent: a terse Summary, a Detail that is a full sentence, and
// a Subject that points at the offending value.

func errorAt(rng hcl.Range, summary, detail string, args ...any) *hcl.Diagnostic {
	r := rng
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: &r}
}

func warningAt(rng hcl.Range, summary, detail string, args ...any) *hcl.Diagnostic {
	r := rng
	return &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: &r}
}

// didYouMean returns " Did you mean "x"?" when a close suggestion exists.
func didYouMean(got string, candidates []string) string {
	if s := suggest(got, candidates); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	switch len(q) {
	case 0:
		return "nothing"
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func lineOf(r hcl.Range) int { return r.Start.Line }

// Files and command line.

func diagReadFile(path string, err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read policy file",
		Detail: fmt.Sprintf("Reading %s failed: %v.", path, err)}
}

func diagFileTooLarge(path string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Policy file too large",
		Detail: fmt.Sprintf("%s is larger than %d MiB, more than any policy needs; is it the right file? Put long lists of addresses in a dynamic set.", path, MaxFileSize>>20)}
}

func diagNotText(rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Not a text file",
		"The file holds a NUL byte, so it is not a policy but binary data (an artifact, a capture?); give the policy's .hcl file.")
}

func diagTooManyErrors() *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Too many errors",
		Detail: fmt.Sprintf("Stopped after %d errors; fix these and check again.", MaxErrors)}
}

func diagUnknownVarOverride(name string, known []string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown variable in -var",
		Detail: fmt.Sprintf("The policy declares no variable %q, so -var %s=... cannot set it.%s", name, name, didYouMean(name, known))}
}

func diagBadVarOverride(name, raw, why string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid -var value",
		Detail: fmt.Sprintf("The value %q given for variable %q with -var %s.", raw, name, why)}
}

// Declarations.

func diagNoPolicy(filename string) *hcl.Diagnostic {
	start := hcl.Pos{Line: 1, Column: 1, Byte: 0}
	return errorAt(hcl.Range{Filename: filename, Start: start, End: start}, "No policy",
		"The file declares no policy block, so there is nothing to check, build or apply; add policy \"NAME\" { default = \"drop\" ... }.")
}

func diagDuplicate(kind, name string, rng, first hcl.Range) *hcl.Diagnostic {
	article := "A"
	if strings.IndexByte("aeiou", kind[0]) >= 0 {
		article = "An"
	}
	return errorAt(rng, "Duplicate "+kind,
		"%s %s named %q is already declared on line %d; names must be unique.", article, kind, name, lineOf(first))
}

func diagDuplicateRule(name, policy string, rng, first hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Duplicate rule",
		"Policy %q already has a rule named %q on line %d; rule names must be unique within a policy.", policy, name, lineOf(first))
}

func diagReservedRuleName(name string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Reserved rule name",
		"%q names the policy's built-in %s counter in stats, replay and the manifest, so a rule cannot be called that; choose another name.", name, name)
}

func diagMissingVarValue(name string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Variable has no value",
		"Variable %q has no default; give it one or set it with -var %s=VALUE.", name, name)
}

func diagBadVarType(name, typ string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid variable value",
		"Variable %q is %s; a variable holds a string, a number, or a list of strings and numbers.", name, typ)
}

func diagNotSupported(what string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Not supported yet",
		"%s is part of the language but not implemented in this release; it arrives in a later release.", what)
}

// References.

func diagUnknownVariable(name string, known []string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Unknown variable",
		"There is no variable named %q.%s", name, didYouMean(name, known))
}

func diagUnknownSet(name string, known []string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Unknown set",
		"There is no set named %q.%s", name, didYouMean(name, known))
}

func diagUnknownPolicy(name string, known []string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Unknown policy",
		"There is no policy named %q.%s", name, didYouMean(name, known))
}

func diagBadReference(root string, rng hcl.Range) *hcl.Diagnostic {
	if root == "var" || root == "set" {
		return errorAt(rng, "Invalid reference", "A %s reference names one %s, as %s.NAME.", root, map[string]string{"var": "variable", "set": "set"}[root], root)
	}
	return errorAt(rng, "Invalid reference",
		"A reference must be var.NAME or set.NAME, not %q.%s", root, didYouMean(root, []string{"var", "set"}))
}

func diagSetNotAlone(rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Set reference inside an expression",
		"A set reference must be the whole value of a field (src = set.NAME); it cannot be part of a list or a string.")
}

func diagSetNegated(rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Set cannot be negated",
		"A set reference cannot be negated; match the set in a rule with the opposite action placed before this one.")
}

func diagSetNotAllowed(field string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Set not allowed here",
		"Field %s cannot take a set; sets are allowed for src, dst (cidr), src_mac, dst_mac (mac), src_port and dst_port (port).", field)
}

func diagSetType(field string, set *Set, want SetType, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Wrong set type",
		"Field %s needs a set of type %q, but set %q has type %q.", field, want, set.Name, set.Type)
}

// fieldOutsideRule is appended to hcl's "Unsupported argument" when a
// match field is written directly in a policy.
const fieldOutsideRule = " Match fields belong inside a rule block."

// Values.

func diagWrongType(what, want, got string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid value type", "%s must be %s, not %s.", what, want, got)
}

func diagEmptyList(field string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Empty list", "The list given for %s is empty and would never match; give at least one value.", field)
}

func diagNestedList(field string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Nested list", "The values of %s must be strings or numbers; a list cannot contain another list.", field)
}

func diagNegatedListElement(field string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Negation inside a list",
		"Only a single value of %s can be negated; a list cannot be negated element by element. Split the rule, or negate one value.", field)
}

func diagBadKeyword(what, got string, allowed []string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid "+what,
		"%q is not a valid %s; use %s.%s", got, what, quoteList(allowed), didYouMean(got, allowed))
}

func diagBadNumber(field, got, want string, names []string, rng hcl.Range) *hcl.Diagnostic {
	extra := ""
	if len(names) > 0 {
		extra = ", or one of " + quoteList(names) + "." + didYouMean(got, names)
	} else {
		extra = "."
	}
	return errorAt(rng, "Invalid "+field, "%q is not a valid %s value; it must be %s%s", got, field, want, extra)
}

func diagOutOfRange(field string, v uint64, max uint32, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Value out of range", "%d is out of range for %s, which takes 0 to %d.", v, field, max)
}

func diagNotWhole(field, got string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid "+field, "%s is not a whole non-negative number, which %s needs.", got, field)
}

func diagReversedRange(field string, lo, hi uint64, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Reversed range", "The range %d-%d of %s ends before it starts. Did you mean \"%d-%d\"?", lo, hi, field, hi, lo)
}

func diagNoRanges(field string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Range not allowed", "Field %s takes single values, not ranges; list the values instead.", field)
}

func diagHostBits(got string, masked string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Host bits set in prefix", "%q has bits set after the prefix length. Did you mean %s?", got, masked)
}

func diagBadAddress(field, got string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid address", "%q is not an IPv4 or IPv6 address or CIDR prefix, which %s needs.", got, field)
}

func diagBadMAC(field, got string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid MAC address", "%q is not a MAC address like \"02:00:00:00:00:01\", which %s needs.", got, field)
}

func diagBadTCPFlag(flag string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Unknown TCP flag",
		"%q is not a TCP flag; use fin, syn, rst, psh, ack, urg, ece or cwr, each optionally preceded by !.%s", flag, didYouMean(flag, wire.TCPFlagNames.List()))
}

func diagTCPFlagConflict(flag string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Contradictory TCP flags",
		"Flag %q is required both set and clear, so the rule can never match.", flag)
}

func diagTCPFlagsList(rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid tcp_flags",
		"tcp_flags is one string such as \"syn,!ack\", not a list; to match any of several combinations, write one rule per combination.")
}

// Rule semantics.

func diagFamilyConflict(rng hcl.Range, srcFam, dstFam string) *hcl.Diagnostic {
	return errorAt(rng, "Rule can never match",
		"src holds only %s prefixes and dst only %s prefixes; no packet has both.", srcFam, dstFam)
}

func diagNeedsIP(field string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Rule can never match",
		"Field %s exists only in IPv4 and IPv6 packets, but the rule's ether_type excludes both.", field)
}

func diagEtherTypeFamily(field, fam string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Rule can never match",
		"Field %s holds only %s prefixes, but the rule's ether_type excludes %s.", field, fam, fam)
}

func diagNeedsProto(field, want string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, field+" needs proto "+want,
		"Field %s exists only in %s packets, so the rule must also say proto = %s (not negated, and nothing else in the list).", field, want, protoSpelling(want))
}

func protoSpelling(want string) string {
	switch want {
	case "tcp":
		return `"tcp"`
	case "tcp or udp":
		return `"tcp", "udp" or ["tcp", "udp"]`
	}
	return `"icmp" or "icmpv6"`
}

func diagICMPNameNeedsProto(name string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Ambiguous ICMP type name",
		"The type name %q means different numbers in ICMP and ICMPv6, so it needs proto exactly \"icmp\" or exactly \"icmpv6\"; use a number otherwise.", name)
}

func diagBadICMPName(name, proto string, names []string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Unknown ICMP type",
		"%q is not an %s type name; use a number or one of %s.%s", name, proto, quoteList(names), didYouMean(name, names))
}

// Sets and interfaces.

func diagEmptySet(name string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Empty set", "Set %q has no elements; a static set needs at least one (only a dynamic set may start empty).", name)
}

func diagMaxElements(name string, max, count int, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "max_elements too small", "Set %q holds %d elements but max_elements is %d.", name, count, max)
}

func diagMaxElementsRange(name string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid max_elements", "max_elements of set %q must be a whole number from 1 to %d.", name, maxSetElements)
}

// Lints.

func warnARPDropped(policy string, rng hcl.Range) *hcl.Diagnostic {
	return warningAt(rng, "ARP is dropped",
		"Policy %q drops by default and no pass rule can match ARP, so hosts behind it cannot resolve addresses; add a rule with ether_type = \"arp\" and action = \"pass\".", policy)
}

func warnNDDropped(policy string, rng hcl.Range) *hcl.Diagnostic {
	return warningAt(rng, "IPv6 neighbour discovery is dropped",
		"Policy %q handles IPv6 and drops by default, but no pass rule can match ICMPv6 neighbour discovery (types 133-136), so IPv6 neighbours cannot be resolved; add a pass rule with proto = \"icmpv6\" and icmp_type = [133, 134, 135, 136].", policy)
}

func warnUnreachable(rule, shadow string, shadowRng, rng hcl.Range) *hcl.Diagnostic {
	return warningAt(rng, "Rule is unreachable",
		"Rule %q on line %d matches every packet and decides its verdict, so rule %q is never reached.", shadow, lineOf(shadowRng), rule)
}

func diagRedirectWithoutTarget(rule string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Missing redirect target",
		"Rule %q redirects but names no interface; add to = \"IFNAME\".", rule)
}

func diagTargetWithoutRedirect(rule string, action Action, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Target without redirect",
		"Rule %q has action %q; only action = \"redirect\" takes a target interface (to).", rule, action)
}

func diagBadIfname(name string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid interface name",
		"%q is not a Linux interface name: it must have 1 to %d characters and no '/', ':' or white space.", name, maxIfnameLen)
}

func diagDuplicateConntrack(rng, first hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Duplicate conntrack block",
		"The file already has a conntrack block on line %d; the connection table has one set of settings.", lineOf(first))
}

func diagConntrackEntries(rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid max_entries",
		"max_entries must be a whole number from %d to %d: the most connections the table holds.", MinConntrackEntries, MaxConntrackEntries)
}

func diagTimeoutsNotMap(rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid timeouts",
		"timeouts must be a map of state to duration, such as { tcp_established = \"5d\", udp = \"30s\" }.")
}

func diagDuplicateTimeout(name string, rng, first hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Duplicate timeout", "The timeout of %s is already set on line %d.", name, lineOf(first))
}

func diagBadDuration(name, got string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid timeout",
		"%q is not a duration for %s; write one such as \"30s\", \"2m\", \"1h30m\" or \"5d\".", got, name)
}

func diagTimeoutRange(name, got string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Timeout out of range",
		"The timeout of %s, %s, must be from 1s to 30d: shorter ones expire entries between a packet and its answer, longer ones keep dead flows for months.", name, got)
}

func diagTrackingUnbound(policy string, rng hcl.Range) *hcl.Diagnostic {
	return warningAt(rng, "Connection tracking attached nowhere",
		"Policy %q matches ct_state, but no interface block attaches it: applied, nothing would record its interfaces' traffic. Add an interface block with policy = %q.", policy, policy)
}

func diagConntrackUnused(rng hcl.Range) *hcl.Diagnostic {
	return warningAt(rng, "Conntrack block has no effect",
		"No rule of the file matches ct_state, so no policy tracks connections and these settings are not used.")
}

// NAT blocks.

func diagNATUnknownInterface(name, role string, known []string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Unknown NAT interface",
		"No interface block names %q, so no policy is bound to it and xdpc would not attach there; a nat block's %s must be an interface of the file.%s", name, role, didYouMean(name, known))
}

func diagNATSameInterface(name string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Same NAT interface",
		"%q is both the outside and the inside interface; NAT translates between two interfaces.", name)
}

func diagNATInterfaceTwice(name string, rng, first hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "NAT interface used twice",
		"Interface %q already plays a part in NAT on line %d; an interface is the outside or the inside of one nat block.", name, lineOf(first))
}

func diagNATIPv6(rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "IPv6 address in NAT",
		"NAT translates IPv4 only: NAT66 and NPTv6 are out of scope, and IPv6 traffic passes untranslated. Use an IPv4 address here.")
}

func diagNATBadTo(got string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid forward target",
		"%q is not a forward target; write \"ADDRESS\" or \"ADDRESS:PORT\" with an IPv4 address and a port from 1 to 65535.", got)
}

func diagNATPortForRange(got string, r Range, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Forward target port for a range",
		"%q names a port, but dst_port is the range %d-%d: every port of it would go to one. Name no port in to (each keeps its own), or forward one dst_port.", got, r.Lo, r.Hi)
}

func diagNATPortList(what string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid "+what, "%s is one port or one \"LO-HI\" range, not a list; write a block per range.", what)
}

func diagNATBadPorts(what, got string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid "+what,
		"%q is not a port range: %s is a port from 1 to 65535 or \"LO-HI\" with LO at most HI.", got, what)
}

func diagNATForwardOverlap(name, first string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Overlapping forward blocks",
		"forward %q can match the same packets as forward %q (same protocol and destination, overlapping ports); the first match would take them all. Give them ports apart.", name, first)
}

func diagNATStaticShared(addr netip.Addr, other string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Static address shared",
		"The static outside address %s is also %s; replies could not be told apart. Give the static mapping an address of its own.", addr, other)
}

func diagNATStaticTwice(which string, addr netip.Addr, rng, first hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Static address twice",
		"%s is already a static %s address on line %d; a 1:1 mapping needs one address on each side.", addr, which, lineOf(first))
}

func diagNATPolicyRoles(policy, first, firstRole, other, otherRole string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Policy in two NAT parts",
		"Policy %q is bound to %s, %s, and to %s, %s; its one program translates as one part. Give each NAT interface a policy of its own (a copy of the rules).", policy, first, firstRole, other, otherRole)
}

// Tests.

func diagTestNeedsPolicy(test string, policies []string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Test needs a policy",
		"The file has several policies, so test %q must say which one it runs: policy = %s.", test, quoteList(policies))
}

func diagTestBothForms(test string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Test has both packet and steps",
		"Test %q gives a packet and step blocks; give one packet with its expect, or a step block for each packet of a conversation.", test)
}

func diagTestNoPacket(test string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Test without packet",
		"Test %q needs a packet = \"tcp 10.0.0.1:1234 > 10.0.0.2:22 flags S\" (docs/packets.md) with its expect, or a step block for each packet.", test)
}

func diagTestAttrOutsideStep(attr string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Expectation outside a step",
		"A test with step blocks gives its %s in each step, beside the packet it is about.", attr)
}

func diagTestTooLong(test string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Test too long",
		"Test %q has more than %d steps; split it, or replay a capture with a golden lab case.", test, MaxTestSteps)
}

func diagTestNoExpect(test string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Missing expect",
		"Test %q must say what becomes of each arriving packet: expect = %s.", test, quoteList(testVerdicts))
}

func diagTestRuleOnOut(test string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Rule on a sent packet",
		"In test %q, a packet marked out is one the host sends: no rule decides it, so it cannot name one.", test)
}

func diagTestUnknownRule(name, policy string, known []string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Unknown rule",
		"Policy %q has no rule named %q; a test names one of its rules, \"default\" or \"malformed\".%s", policy, name, didYouMean(name, known))
}

func diagTestCountRule(name string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Count rule never decides",
		"Rule %q counts and goes on to the next rule, so it never decides a packet; name the rule that decides.", name)
}

func diagTestRuleVerdict(test, rule string, action Action, expect string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Test contradicts its rule",
		"Test %q expects %s from %q, whose verdict is %s; one of the two is wrong.", test, expect, rule, action)
}

func diagTestUntracked(policy string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Policy does not track connections",
		"Policy %q has no ct_state rule and no nat block, so its packets have no ct_state to test.", policy)
}

func diagTestToWithoutRedirect(expect string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Interface without redirect",
		"A packet that is expected to %s goes out of no interface; to names where a redirect sends it (expect = \"redirect\").", expect)
}

func diagTestBadWait(got string, rng hcl.Range) *hcl.Diagnostic {
	return errorAt(rng, "Invalid wait",
		"%q is not a wait; write a duration from 1ns to 31d such as \"31s\", \"2m\" or \"5d\".", got)
}
