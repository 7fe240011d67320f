package artifact_test

import (
	"encoding/json"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/artifact"
)

func TestParsePrefix(t *testing.T) {
	good := map[string]string{
		"10.0.0.0/8":           "10.0.0.0/8",
		" 192.0.2.7 ":          "192.0.2.7/32",
		"2001:db8::/32":        "2001:db8::/32",
		"2001:db8::1":          "2001:db8::1/128",
		"::ffff:192.0.2.1":     "::ffff:192.0.2.1/128",
		"::ffff:192.0.2.0/120": "::ffff:192.0.2.0/120",
		"0.0.0.0/0":            "0.0.0.0/0",
	}
	for text, want := range good {
		p, err := artifact.ParsePrefix(text)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %s, %v; want %s", text, p, err, want)
		}
	}
	if p, _ := artifact.ParsePrefix("::ffff:192.0.2.1"); p.Addr().Is4() || artifact.PrefixMap(p) != artifact.MapCIDRv6 {
		t.Errorf("::ffff:192.0.2.1 became %s in %s: an IPv4-mapped address stays IPv6", p, artifact.PrefixMap(p))
	}
	bad := []string{"10.0.0.0/33", "10.1.2.3/8", "2001:db8::1/32", "fe80::1%eth0", "10.0.0", "", "host", "10.0.0.0/8/8"}
	for _, text := range bad {
		_, err := artifact.ParsePrefix(text)
		if !errors.Is(err, artifact.ErrBadElement) {
			t.Errorf("ParsePrefix(%q) error %v, want ErrBadElement", text, err)
		}
	}
	_, err := artifact.ParsePrefix("10.1.2.3/8")
	if hb, ok := errors.AsType[*artifact.HostBitsError](err); !ok || hb.Masked().String() != "10.0.0.0/8" {
		t.Errorf("ParsePrefix(10.1.2.3/8) error %v, want host bits with network 10.0.0.0/8", err)
	}
}

func TestParsePortRange(t *testing.T) {
	good := map[string]artifact.PortRange{
		"22": {22, 22}, " 8000-8099 ": {8000, 8099}, "0x50": {80, 80}, "1 - 2": {1, 2},
		"0": {0, 0}, "65535": {65535, 65535}, "0-65535": {0, 65535},
	}
	for text, want := range good {
		r, err := artifact.ParsePortRange(text)
		if err != nil || r != want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v", text, r, err, want)
		}
	}
	bad := map[string]artifact.NumberProblem{
		"80-70": artifact.NumberReversed, "65536": artifact.NumberTooLarge, "1-70000": artifact.NumberTooLarge,
		"http": artifact.NumberNotANumber, "-1": artifact.NumberNotANumber, "+1": artifact.NumberNotANumber,
		"1_000": artifact.NumberNotANumber, "": artifact.NumberNotANumber, "1-": artifact.NumberNotANumber,
	}
	for text, want := range bad {
		_, err := artifact.ParsePortRange(text)
		ne, ok := errors.AsType[*artifact.NumberError](err)
		if !errors.Is(err, artifact.ErrBadElement) || !ok || ne.Problem != want {
			t.Errorf("ParsePortRange(%q) error %v, want ErrBadElement with number problem %d", text, err, want)
		}
	}
}

func TestParseMAC(t *testing.T) {
	want := artifact.MAC{0x02, 0, 0, 0, 0, 0xfe}
	for _, text := range []string{"02:00:00:00:00:fe", " 02-00-00-00-00-FE", "0200.0000.00fe"} {
		if m, err := artifact.ParseMAC(text); err != nil || m != want {
			t.Errorf("ParseMAC(%q) = %s, %v; want %s", text, m, err, want)
		}
	}
	for _, text := range []string{"aa:bb", "02:00:00:00:00:00:00:01", "zz:00:00:00:00:00", ""} {
		if _, err := artifact.ParseMAC(text); !errors.Is(err, artifact.ErrBadElement) {
			t.Errorf("ParseMAC(%q) error %v, want ErrBadElement", text, err)
		}
	}
}

// TestEntries checks the keys of every element type in the kernel's
// encoding, and which map each goes to.
func TestEntries(t *testing.T) {
	cidr := artifact.SetMap{Set: "nets", Type: artifact.SetCIDR, V4Map: "v4", V6Map: "v6"}
	els, err := artifact.ParseElements(artifact.SetCIDR, []string{"10.1.2.0/24", "::ffff:192.0.2.1", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cidr.Entries(els)
	if err != nil {
		t.Fatal(err)
	}
	want := []artifact.SetEntry{
		{"v4", []byte{24, 0, 0, 0, 10, 1, 2, 0}},
		{"v6", []byte{128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1}},
		{"v6", []byte{32, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cidr entries (-want +got):\n%s", diff)
	}

	ports := artifact.SetMap{Set: "p", Type: artifact.SetPort, Map: "ports"}
	got, err = ports.Entries(artifact.Elements{Ports: []artifact.PortRange{{53, 53}, {65534, 65535}}})
	if err != nil {
		t.Fatal(err)
	}
	want = []artifact.SetEntry{
		{"ports", artifact.PortKey(53)}, {"ports", artifact.PortKey(65534)}, {"ports", artifact.PortKey(65535)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("port entries (-want +got):\n%s", diff)
	}
	if k := artifact.PortKey(0x1234); len(k) != 2 {
		t.Errorf("port key %x, want 2 bytes", k)
	}

	macs := artifact.SetMap{Set: "m", Type: artifact.SetMAC, Map: "macs"}
	got, err = macs.Entries(artifact.Elements{MACs: []artifact.MAC{{2, 0, 0, 0, 0, 0xfe}}})
	if err != nil || len(got) != 1 || string(got[0].Key) != "\x02\x00\x00\x00\x00\xfe" {
		t.Errorf("mac entries %v, %v", got, err)
	}

	refused := map[string]struct {
		set artifact.SetMap
		els artifact.Elements
	}{
		"host bits":           {cidr, artifact.Elements{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}}},
		"mapped without v6":   {artifact.SetMap{Set: "s", Type: artifact.SetCIDR, V4Map: "v4"}, artifact.Elements{Prefixes: []netip.Prefix{netip.MustParsePrefix("::ffff:192.0.2.1/128")}}},
		"port in cidr set":    {cidr, artifact.Elements{Ports: []artifact.PortRange{{1, 1}}}},
		"reversed range":      {ports, artifact.Elements{Ports: []artifact.PortRange{{2, 1}}}},
		"prefix in mac set":   {macs, artifact.Elements{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}},
		"port set, no map":    {artifact.SetMap{Set: "s", Type: artifact.SetPort}, artifact.Elements{Ports: []artifact.PortRange{{1, 1}}}},
		"invalid prefix":      {cidr, artifact.Elements{Prefixes: []netip.Prefix{{}}}},
		"mac set, no map":     {artifact.SetMap{Set: "s", Type: artifact.SetMAC}, artifact.Elements{MACs: []artifact.MAC{{}}}},
		"ipv4 in v6-only set": {artifact.SetMap{Set: "s", Type: artifact.SetCIDR, V6Map: "v6"}, artifact.Elements{Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}}},
	}
	for name, tt := range refused {
		if _, err := tt.set.Entries(tt.els); !errors.Is(err, artifact.ErrBadElement) {
			t.Errorf("%s: Entries error %v, want ErrBadElement", name, err)
		}
	}
}

// TestElementsFromKeys reads keys back into elements, as `xdpc set list`
// does, and sorts them.
func TestElementsFromKeys(t *testing.T) {
	var e artifact.Elements
	for _, p := range []string{"::ffff:192.0.2.1/128", "10.0.0.0/8", "192.0.2.7/32"} {
		pf := netip.MustParsePrefix(p)
		if err := e.AddKey(artifact.PrefixMap(pf), artifact.LPMKey(pf)); err != nil {
			t.Fatal(err)
		}
	}
	for _, port := range []uint16{8080, 22} {
		if err := e.AddKey(artifact.MapPorts, artifact.PortKey(port)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.AddKey(artifact.MapMACs, artifact.MACKey(artifact.MAC{2, 0, 0, 0, 0, 1})); err != nil {
		t.Fatal(err)
	}
	e.Sort()
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "::ffff:192.0.2.1/128", "22", "8080", "02:00:00:00:00:01"}
	if diff := cmp.Diff(want, e.Strings()); diff != "" {
		t.Errorf("elements (-want +got):\n%s", diff)
	}
	if err := e.AddKey(artifact.MapCIDRv4, make([]byte, 20)); err == nil {
		t.Error("a 20-byte key read as an IPv4 trie key")
	}
	if err := e.AddKey(artifact.MapCounters, make([]byte, 4)); err == nil {
		t.Error("a counter key read as a set element")
	}
}

// TestElementsJSON checks the manifest's encoding of elements: typed
// values as the language writes them, read back only when valid.
func TestElementsJSON(t *testing.T) {
	e, err := artifact.ParseElements(artifact.SetCIDR, []string{"::ffff:192.0.2.1", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(e)
	if err != nil || string(data) != `{"prefixes":["::ffff:192.0.2.1/128","10.0.0.0/8"]}` {
		t.Errorf("cidr elements encode as %s, %v", data, err)
	}
	ports := artifact.Elements{Ports: []artifact.PortRange{{22, 22}, {8000, 8099}}}
	data, err = json.Marshal(ports)
	if err != nil || string(data) != `{"ports":["22","8000-8099"]}` {
		t.Errorf("port elements encode as %s, %v", data, err)
	}
	var back artifact.Elements
	if err := json.Unmarshal(data, &back); err != nil || !cmp.Equal(back, ports) {
		t.Errorf("port elements decode as %v, %v", back, err)
	}
	for _, bad := range []string{`{"ports":["80-70"]}`, `{"macs":["aa:bb"]}`, `{"ports":[80]}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("decoding %s succeeded", bad)
		}
	}
	if got := (artifact.Elements{Ports: []artifact.PortRange{{1, 1}}}).Without(artifact.Elements{Ports: []artifact.PortRange{{1, 1}}}); got.Len() != 0 {
		t.Errorf("Without of the same elements = %v", got)
	}
}

func TestSetTypes(t *testing.T) {
	for _, st := range artifact.SetTypes() {
		got, ok := artifact.SetTypeNamed(st.String())
		if !ok || got != st {
			t.Errorf("SetTypeNamed(%s) = %v, %v", st, got, ok)
		}
	}
	if _, ok := artifact.SetTypeNamed("ipset"); ok {
		t.Error(`SetTypeNamed("ipset") found a type`)
	}
	if _, ok := artifact.SetTypeNamed(""); ok {
		t.Error(`SetTypeNamed("") found a type`)
	}
}

// TestElementErrorWords checks the words an element is refused in: the
// policy language's, so that `xdpc set add` and a policy say the same.
func TestElementErrorWords(t *testing.T) {
	tests := []struct {
		typ  artifact.SetType
		text string
		want string
	}{
		{artifact.SetCIDR, "10.1.2.3/8", `"10.1.2.3/8" has bits set after the prefix length. Did you mean 10.0.0.0/8?`},
		{artifact.SetCIDR, "2001:db8::1/32", `"2001:db8::1/32" has bits set after the prefix length. Did you mean 2001:db8::/32?`},
		{artifact.SetCIDR, "fe80::1%eth0", `"fe80::1%eth0" is not an IPv4 or IPv6 address or CIDR prefix, which set "s" needs.`},
		{artifact.SetCIDR, "8080", `"8080" is not an IPv4 or IPv6 address or CIDR prefix, which set "s" needs.`},
		{artifact.SetPort, "70000", `70000 is out of range for set "s", which takes 0 to 65535.`},
		{artifact.SetPort, "0x10000", `65536 is out of range for set "s", which takes 0 to 65535.`},
		{artifact.SetPort, "90-80", `The range 90-80 of set "s" ends before it starts. Did you mean "80-90"?`},
		{artifact.SetPort, "10.0.0.0/8", `"10.0.0.0/8" is not a valid set "s" value; it must be a number from 0 to 65535 or a range "lo-hi".`},
		{artifact.SetMAC, "aa:bb", `"aa:bb" is not a MAC address like "02:00:00:00:00:01", which set "s" needs.`},
	}
	for _, tt := range tests {
		_, err := artifact.ParseElements(tt.typ, []string{tt.text})
		es, ok := errors.AsType[artifact.ElementErrors](err)
		if !ok {
			t.Errorf("%s %q: error %v, want ElementErrors", tt.typ, tt.text, err)
			continue
		}
		if got := es.InSet("s").Error(); got != tt.want {
			t.Errorf("%s %q: error\n%s\nwant\n%s", tt.typ, tt.text, got, tt.want)
		}
	}
	_, err := artifact.ParsePrefix("10.0.0.300")
	if want := `"10.0.0.300" is not an IPv4 or IPv6 address or CIDR prefix, which a cidr set needs.`; err == nil || err.Error() != want {
		t.Errorf("ParsePrefix(10.0.0.300) error %v, want %s", err, want)
	}
}

// TestParseElementsNamesEveryBadElement gives good and bad elements at
// once: none is returned, and every bad one is named, in order.
func TestParseElementsNamesEveryBadElement(t *testing.T) {
	els, err := artifact.ParseElements(artifact.SetCIDR, []string{"192.0.2.1", "10.1.2.3/8", "2001:db8::/32", "fe80::1%eth0"})
	if els.Len() != 0 {
		t.Errorf("ParseElements returned %v with its error", els.Strings())
	}
	es, ok := errors.AsType[artifact.ElementErrors](err)
	if !ok || !errors.Is(err, artifact.ErrBadElement) {
		t.Fatalf("error %v, want ElementErrors wrapping ErrBadElement", err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Text)
	}
	if diff := cmp.Diff([]string{"10.1.2.3/8", "fe80::1%eth0"}, got); diff != "" {
		t.Errorf("bad elements named (-want +got):\n%s", diff)
	}
	if _, ok := errors.AsType[*artifact.HostBitsError](err); !ok {
		t.Errorf("error %v: errors.As finds no HostBitsError", err)
	}
}
