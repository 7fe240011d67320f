package wire

import (
	"strings"
	"testing"
)

// TestNamesAreAVocabulary checks every vocabulary: lower-case names, each
// name and each number once, in ascending order of number (the order
// diagnostics list them in).
func TestNamesAreAVocabulary(t *testing.T) {
	vocabularies := map[string]Names{
		"EtherTypes": EtherTypes, "Protocols": Protocols, "ICMPTypes": ICMPTypes,
		"ICMPv6Types": ICMPv6Types, "TCPFlagNames": TCPFlagNames,
	}
	for name, v := range vocabularies {
		t.Run(name, func(t *testing.T) {
			all := v.All()
			if len(all) == 0 {
				t.Fatal("empty vocabulary")
			}
			seen := map[string]bool{}
			for i, e := range all {
				if e.Name == "" || e.Name != strings.ToLower(e.Name) || seen[e.Name] {
					t.Errorf("name %q: empty, not lower case or twice", e.Name)
				}
				seen[e.Name] = true
				if i > 0 && all[i-1].Number >= e.Number {
					t.Errorf("%s (%d) after %s (%d): not ascending", e.Name, e.Number, all[i-1].Name, all[i-1].Number)
				}
				if n, ok := v.Number(e.Name); !ok || n != e.Number {
					t.Errorf("Number(%q) = %d, %v; want %d", e.Name, n, ok, e.Number)
				}
				if got, ok := v.Name(e.Number); !ok || got != e.Name {
					t.Errorf("Name(%d) = %q, %v; want %q", e.Number, got, ok, e.Name)
				}
			}
		})
	}
}

// TestTCPFlags checks that the flag names and the tcpdump letters both
// name bit i at position i.
func TestTCPFlags(t *testing.T) {
	names := TCPFlagNames.All()
	if len(names) != 8 || len(TCPFlagLetters) != 8 {
		t.Fatalf("%d flag names and %d letters, want 8 each", len(names), len(TCPFlagLetters))
	}
	for i, n := range names {
		if n.Number != 1<<i {
			t.Errorf("flag %s is bit %#x, want %#x", n.Name, n.Number, 1<<i)
		}
		if want := strings.ToUpper(n.Name[:1]); string(TCPFlagLetters[i]) != want {
			t.Errorf("letter %d is %c, want %s (%s)", i, TCPFlagLetters[i], want, n.Name)
		}
	}
	if TCPSyn|TCPAck != 0x12 {
		t.Errorf("syn|ack = %#x, want 0x12", TCPSyn|TCPAck)
	}
}

// TestLookups pins the numbers the datapath depends on.
func TestLookups(t *testing.T) {
	checks := []struct {
		v    Names
		name string
		want uint16
	}{
		{Protocols, "tcp", ProtoTCP}, {Protocols, "icmpv6", ProtoICMPv6}, {Protocols, "ah", ProtoAH},
		{EtherTypes, "ipv6", EtherTypeIPv6}, {EtherTypes, "arp", EtherTypeARP},
		{ICMPTypes, "echo-request", ICMPEchoRequest}, {ICMPv6Types, "echo-request", ICMPv6EchoRequest},
		{ICMPv6Types, "neighbor-solicitation", 135}, {ICMPTypes, "time-exceeded", 11},
	}
	for _, c := range checks {
		if got, ok := c.v.Number(c.name); !ok || got != c.want {
			t.Errorf("Number(%q) = %d, %v; want %d", c.name, got, ok, c.want)
		}
	}
	if _, ok := Protocols.Number("TCP"); ok {
		t.Error(`Number("TCP") found a name: names are lower case and compared exactly`)
	}
	if _, ok := ICMPTypes.Name(ICMPv6EchoRequest); ok {
		t.Error("ICMP (IPv4) names type 128: the families' vocabularies are separate")
	}
}
