package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/rogpeppe/go-internal/txtar"
)

const tinyPolicy = `policy "p" {
  default = "pass"
  rule "r" {
    proto = "tcp"
    dst_port = 22
    action = "drop"
  }
}
`

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.hcl")
	if err := os.WriteFile(path, []byte(tinyPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := LoadFile(path, LoadOptions{})
	if diags.HasErrors() || cfg == nil {
		t.Fatalf("LoadFile: %v", diags)
	}
	if diff := cmp.Diff(path, cfg.Filename); diff != "" {
		t.Errorf("Filename (-want +got):\n%s", diff)
	}
	if got := cfg.Policies[0].Rules[0].Range.Filename; got != path {
		t.Errorf("rule range filename = %q, want %q", got, path)
	}

	cfg, diags = LoadFile(filepath.Join(dir, "missing.hcl"), LoadOptions{})
	if cfg != nil || len(diags) != 1 || diags[0].Subject != nil || diags[0].Summary != "Cannot read policy file" {
		t.Errorf("LoadFile of a missing file = %v, %v; want one diagnostic without a range", cfg, diags)
	}
}

// TestModelRanges checks the source ranges the compiler and the CLI rely on.
func TestModelRanges(t *testing.T) {
	cfg, diags := Load("p.hcl", []byte(tinyPolicy), LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	r := cfg.Policies[0].Rules[0]
	type pos struct{ Line, Col int }
	got := map[string]pos{
		"rule decl":  {r.DeclRange.Start.Line, r.DeclRange.Start.Column},
		"rule end":   {r.Range.End.Line, r.Range.End.Column},
		"proto":      {r.Match(FieldProto).Range.Start.Line, r.Match(FieldProto).Range.Start.Column},
		"dst_port":   {r.Match(FieldDstPort).Range.Start.Line, r.Match(FieldDstPort).Range.Start.Column},
		"policy def": {cfg.Policies[0].DeclRange.Start.Line, cfg.Policies[0].DeclRange.Start.Column},
	}
	want := map[string]pos{
		"rule decl":  {3, 3},
		"rule end":   {7, 4},
		"proto":      {4, 13},
		"dst_port":   {5, 16},
		"policy def": {1, 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ranges (-want +got):\n%s", diff)
	}
	if r.Index != 0 || cfg.Policies[0].Slots() != 3 {
		t.Errorf("index %d, slots %d", r.Index, cfg.Policies[0].Slots())
	}
}

func TestVarOverrides(t *testing.T) {
	src := `variable "nets" {
  default = ["10.0.0.0/8"]
}
variable "port" {
  default = 22
}
variable "name" {
}
policy "p" {
  default = "pass"
  rule "r" {
    src      = var.nets
    proto    = "tcp"
    dst_port = var.port
    action   = "drop"
  }
}
`
	tests := []struct {
		name    string
		vars    map[string]string
		want    string // the rule's matches, or the first error summary
		wantErr bool
	}{
		{"missing", nil, "Variable has no value", true},
		{"defaults", map[string]string{"name": "x"}, "src = 10.0.0.0/8|proto = 6|dst_port = 22", false},
		{"list", map[string]string{"name": "x", "nets": `["192.0.2.0/24", "2001:db8::/32"]`}, "src = 192.0.2.0/24, 2001:db8::/32|proto = 6|dst_port = 22", false},
		{"list-single", map[string]string{"name": "x", "nets": `"192.0.2.0/24"`}, "src = 192.0.2.0/24|proto = 6|dst_port = 22", false},
		{"number", map[string]string{"name": "x", "port": " 2222 "}, "src = 10.0.0.0/8|proto = 6|dst_port = 2222", false},
		{"bad-number", map[string]string{"name": "x", "port": "22x"}, "Invalid -var value", true},
		{"unknown", map[string]string{"name": "x", "prot": "1"}, "Unknown variable in -var", true},
		{"bad-value", map[string]string{"name": "x", "nets": `["10.0.0.1/8"]`}, "Host bits set in prefix", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Load("p.hcl", []byte(src), LoadOptions{Vars: tt.vars})
			if diags.HasErrors() != tt.wantErr {
				t.Fatalf("errors = %v, want errors %v", diags, tt.wantErr)
			}
			var got string
			if tt.wantErr {
				got = diags[0].Summary
			} else {
				var parts []string
				for i := range cfg.Policies[0].Rules[0].Matches {
					parts = append(parts, cfg.Policies[0].Rules[0].Matches[i].String())
				}
				got = strings.Join(parts, "|")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestVarOverrideListElement: for a list variable, -var NAME=VALUE with a
// VALUE that is not a list is that one element, as docs/language.md
// promises: an address, a range, a number, taken as written (an HCL
// parse would make 8000-8099 the number -99).
func TestVarOverrideListElement(t *testing.T) {
	src := `variable "nets" {
  default = ["10.0.0.0/8"]
}
variable "ports" {
  default = [22]
}
policy "p" {
  default = "pass"
  rule "r" {
    src      = var.nets
    proto    = "tcp"
    dst_port = var.ports
    action   = "drop"
  }
}
`
	tests := []struct {
		vars map[string]string
		want string // the rule's matches, or the first error's detail
	}{
		{map[string]string{"nets": "10.0.0.0/8"}, "src = 10.0.0.0/8|proto = 6|dst_port = 22"},
		{map[string]string{"nets": "192.0.2.7"}, "src = 192.0.2.7/32|proto = 6|dst_port = 22"},
		{map[string]string{"nets": "2001:db8::/32"}, "src = 2001:db8::/32|proto = 6|dst_port = 22"},
		{map[string]string{"nets": " 10.0.0.0/8 "}, "src = 10.0.0.0/8|proto = 6|dst_port = 22"},
		{map[string]string{"ports": "8000-8099"}, "src = 10.0.0.0/8|proto = 6|dst_port = 8000-8099"},
		{map[string]string{"ports": "443"}, "src = 10.0.0.0/8|proto = 6|dst_port = 443"},
		{map[string]string{"ports": "[80, 443]"}, "src = 10.0.0.0/8|proto = 6|dst_port = 80, 443"},
		{map[string]string{"ports": "[80, 443"}, `The value "[80, 443" given for variable "ports" with -var is not a list expression such as ["a", "b"].`},
		{map[string]string{"ports": "-1"}, `"-1" is not a valid dst_port value; it must be a number from 0 to 65535 or a range "lo-hi".`},
	}
	for _, tt := range tests {
		cfg, diags := Load("p.hcl", []byte(src), LoadOptions{Vars: tt.vars})
		var got string
		if diags.HasErrors() {
			got = diags[0].Detail
		} else {
			var parts []string
			for i := range cfg.Policies[0].Rules[0].Matches {
				parts = append(parts, cfg.Policies[0].Rules[0].Matches[i].String())
			}
			got = strings.Join(parts, "|")
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("-var %v (-want +got):\n%s", tt.vars, diff)
		}
	}
}

func TestWriteDiagnostics(t *testing.T) {
	src := []byte("a\n\tbé = 1\n")
	rng := hcl.Range{Filename: "dir/x.hcl", Start: hcl.Pos{Line: 2, Column: 2, Byte: 3}, End: hcl.Pos{Line: 2, Column: 4, Byte: 6}}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Bad", Detail: "It is bad.", Subject: &rng},
		{Severity: hcl.DiagWarning, Summary: "No range", Detail: "Somewhere."},
		{Severity: hcl.DiagError, Summary: "No source", Subject: &hcl.Range{Filename: "other.hcl", Start: hcl.Pos{Line: 9, Column: 1, Byte: 99}}},
	}
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, map[string][]byte{"dir/x.hcl": src}, diags); err != nil {
		t.Fatal(err)
	}
	want := "dir/x.hcl:2:2: error: Bad\n" +
		"   2 | \tbé = 1\n" +
		"     | \t^^\n" +
		"It is bad.\n" +
		"\n" +
		"warning: No range\n" +
		"Somewhere.\n" +
		"\n" +
		"other.hcl:9:1: error: No source\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestWriteDiagnosticsCRLF renders a subject that sits on the "\r" of a
// CRLF line ending.
func TestWriteDiagnosticsCRLF(t *testing.T) {
	src := []byte("ab\r\ncd\r\n")
	rng := hcl.Range{Filename: "x", Start: hcl.Pos{Line: 1, Column: 3, Byte: 2}, End: hcl.Pos{Line: 1, Column: 4, Byte: 3}}
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, map[string][]byte{"x": src}, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "S", Subject: &rng}}); err != nil {
		t.Fatal(err)
	}
	want := "x:1:3: error: S\n   1 | ab\n     |   ^\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFormat(t *testing.T) {
	got, diags := Format("p.hcl", []byte(tinyPolicy))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := `policy "p" {
  default = "pass"
  rule "r" {
    proto    = "tcp"
    dst_port = 22
    action   = "drop"
  }
}
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, diags := Format("p.hcl", []byte("policy {")); !diags.HasErrors() {
		t.Error("Format accepted a file that does not parse")
	}
	// Every accepted golden policy is already canonical, and formatting
	// never changes what a policy means.
	for _, c := range readCases(t, "good") {
		src, _ := c.section("policy.hcl")
		out, diags := Format("policy.hcl", []byte(src))
		if diags.HasErrors() {
			t.Fatalf("%s: %v", c.path, diags)
		}
		if diff := cmp.Diff(src, string(out)); diff != "" {
			t.Errorf("%s is not canonically formatted (-file +formatted):\n%s", c.path, diff)
		}
	}
}

func TestPolicyHash(t *testing.T) {
	load := func(src string) *Config {
		t.Helper()
		cfg, diags := Load("p.hcl", []byte(src), LoadOptions{})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return cfg
	}
	base := `set "s" {
  type     = "port"
  elements = [22]
}
set "unused" {
  type     = "port"
  elements = [1]
}
policy "p" {
  default = "pass"
  rule "r" {
    proto    = "tcp"
    dst_port = set.s
    action   = "drop"
  }
}
`
	a := load(base)
	h := a.PolicyHash(a.Policies[0])
	if len(h) != 64 {
		t.Fatalf("hash %q is not hex sha256", h)
	}
	same := []string{
		strings.ReplaceAll(base, "  ", "    "),                       // layout
		strings.Replace(base, "elements = [1]", "elements = [2]", 1), // unused set
	}
	for _, src := range same {
		c := load(src)
		if got := c.PolicyHash(c.Policies[0]); got != h {
			t.Errorf("hash changed for an equivalent policy:\n%s", src)
		}
	}
	differ := []string{
		strings.Replace(base, "elements = [22]", "elements = [23]", 1),
		strings.Replace(base, `default = "pass"`, `default = "drop"`, 1),
		strings.Replace(base, `rule "r"`, `rule "q"`, 1),
	}
	for _, src := range differ {
		c := load(src)
		if got := c.PolicyHash(c.Policies[0]); got == h {
			t.Errorf("hash unchanged for a different policy:\n%s", src)
		}
	}
}

// FuzzLoad checks that no input makes Load, Dump, Format or
// WriteDiagnostics panic.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		paths, _ := filepath.Glob(filepath.Join("testdata", dir, "*.txtar"))
		for _, p := range paths {
			a, err := txtar.ParseFile(p)
			if err != nil {
				f.Fatal(err)
			}
			for _, file := range a.Files {
				if file.Name == "policy.hcl" {
					f.Add(file.Data)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, diags := Load("f.hcl", src, LoadOptions{})
		if cfg != nil {
			if diags.HasErrors() {
				t.Fatal("Config returned with errors")
			}
			_ = cfg.Dump()
			for _, p := range cfg.Policies {
				_ = cfg.PolicyHash(p)
			}
		} else if !diags.HasErrors() {
			t.Fatal("no Config and no error")
		}
		if err := WriteDiagnostics(&bytes.Buffer{}, map[string][]byte{"f.hcl": src}, diags); err != nil {
			t.Fatal(err)
		}
		_, _ = Format("f.hcl", src)
	})
}
