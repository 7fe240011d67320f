// Package corpus generates the differential test corpus: random but
// deterministic policies and Ethernet frames drawn from shared value pools, so
// that generated packets hit generated rules often.
//
// Policies returns HCL policy sources that the policy package must accept.
// Packets returns frames built with gopacket from well-formed layer stacks,
// plus structural mutations of them (truncation at and inside every header,
// corrupted lengths and versions, IPv4 options, IPv6 extension chains,
// fragments, VLAN stacks, Ethernet padding, non-IP frames) that cover every
// parsing pitfall of the design. Every frame carries a Class naming what was
// built, so coverage tests can assert that no class silently disappears.
//
// Everything is a pure function of the seed: the same seed gives the same
// corpus on every host. Nothing here panics on any seed; a failure to
// serialize a layer stack is an internal invariant break and panics.
package corpus

// DifferentialSeed seeds the policies and frames of the differential test
// (lab.TestDifferential); tests that check what that corpus holds use it
// too.
const DifferentialSeed = 20260601
