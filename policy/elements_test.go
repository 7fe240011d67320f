package policy

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/xdpc/xdpc/artifact"
)

// TestSetElementsFollowArtifact checks that a policy's set elements and an
// operator's `xdpc set add` are read by one rule set: the language takes a
// text as an element exactly when the artifact's parser does, as the same
// value.
func TestSetElementsFollowArtifact(t *testing.T) {
	texts := map[artifact.SetType][]string{
		artifact.SetCIDR: {"10.0.0.0/8", "10.1.2.3/8", " 192.0.2.7 ", "::ffff:192.0.2.1", "::ffff:192.0.2.0/120",
			"2001:db8::1/32", "fe80::1%eth0", "10.0.0.0/33", "10.0.0", "2001:db8::/32"},
		artifact.SetPort: {"22", " 8000-8099 ", "0x50", "1 - 2", "80-70", "65536", "http", "-1", "1_000", "0-65535"},
		artifact.SetMAC:  {"02:00:00:00:00:fe", "02-00-00-00-00-FE", "0200.0000.00fe", "aa:bb", "02:00:00:00:00:00:00:01"},
	}
	for typ, list := range texts {
		for _, text := range list {
			t.Run(fmt.Sprintf("%s %q", typ, text), func(t *testing.T) {
				src := fmt.Sprintf("set \"s\" {\n  type     = %q\n  elements = [%s]\n}\n\npolicy \"p\" {\n  default = \"pass\"\n}\n", typ, strconv.Quote(text))
				cfg, diags := Load("sets.hcl", []byte(src), LoadOptions{})
				want, err := artifact.ParseElements(typ, []string{text})
				if diags.HasErrors() != (err != nil) {
					t.Fatalf("the language says %v, artifact.ParseElements %v", diags, err)
				}
				if err != nil {
					return
				}
				s := cfg.Set("s")
				var got artifact.Elements
				got.Prefixes, got.MACs = s.Prefixes, s.MACs
				for _, r := range s.Ports {
					got.Ports = append(got.Ports, artifact.PortRange{Lo: uint16(r.Lo), Hi: uint16(r.Hi)})
				}
				if fmt.Sprint(got.Strings()) != fmt.Sprint(want.Strings()) {
					t.Errorf("the language reads %v, artifact.ParseElements %v", got.Strings(), want.Strings())
				}
			})
		}
	}
}
