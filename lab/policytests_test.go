package lab

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"

	"github.com/xdpc/xdpc/policy"
)

const testedPolicy = `policy "host" {
  default = "drop"

  rule "replies" {
    ct_state = ["established", "related"]
    action   = "pass"
  }

  rule "ssh" {
    proto    = "tcp"
    dst_port = 22
    action   = "pass"
  }
}

test "ssh" {
  packet = "tcp 10.0.0.1:1234 > 10.0.0.2:22 flags S"
  expect = "pass"
  rule   = "ssh"
}

test "replies" {
  step {
    packet = "out tcp 10.0.0.2:40000 > 192.0.2.1:443 flags S"
  }
  step {
    packet   = "tcp 192.0.2.1:443 > 10.0.0.2:40000 flags SA"
    expect   = "pass"
    ct_state = "established"
  }
  step {
    wait     = "3m"
    packet   = "tcp 192.0.2.1:443 > 10.0.0.2:40000 flags A"
    expect   = "drop"
    rule     = "default"
    ct_state = "invalid"
  }
}

test "wrong" {
  step {
    packet = "tcp 10.0.0.1:1234 > 10.0.0.2:80 flags S"
    expect = "pass"
  }
  step {
    packet   = "tcp 10.0.0.1:1234 > 10.0.0.2:22 flags S"
    expect   = "pass"
    rule     = "replies"
    ct_state = "established"
  }
}
`

func loadTested(t *testing.T, src string) *policy.Config {
	t.Helper()
	cfg, diags := policy.Load("policy.hcl", []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return cfg
}

func renderDiags(t *testing.T, src string, results []TestResult) string {
	t.Helper()
	var diags hcl.Diagnostics
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("test %q: %v", r.Test.Name, r.Err)
		}
		diags = append(diags, r.Failures...)
	}
	var b strings.Builder
	if err := policy.WriteDiagnostics(&b, map[string][]byte{"policy.hcl": []byte(src)}, diags); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRunTests runs a file's tests on the reference and kernel backends:
// a test that holds passes, one whose packets get other verdicts, rules or
// ct_states fails at the attribute that states each, with what the
// backend decided; both backends say the same.
func TestRunTests(t *testing.T) {
	for _, backend := range []string{BackendReference, BackendKernel} {
		t.Run(backend, func(t *testing.T) { testRunTests(t, backend) })
	}
}

func testRunTests(t *testing.T, backend string) {
	cfg := loadTested(t, testedPolicy)
	results := RunTests(backend, cfg)
	var passed []string
	for _, r := range results {
		if r.Passed() {
			passed = append(passed, r.Test.Name)
		}
	}
	if diff := cmp.Diff([]string{"ssh", "replies"}, passed); diff != "" {
		t.Errorf("passed tests (-want +got):\n%s", diff)
	}
	want := `policy.hcl:43:14: error: test "wrong": packet 1 expected pass, got drop (rule default)
  43 |     expect = "pass"
     |              ^^^^^^
The backend decided: 1  drop      default           tcp 10.0.0.1:1234 > 10.0.0.2:80 flags S  (ct new)

policy.hcl:48:16: error: test "wrong": packet 2 expected rule replies, got ssh (pass)
  48 |     rule     = "replies"
     |                ^^^^^^^^^
The backend decided: 2  pass      ssh               tcp 10.0.0.1:1234 > 10.0.0.2:22 flags S  (ct new, entry syn_sent)

policy.hcl:49:16: error: test "wrong": packet 2 expected ct_state established, got new
  49 |     ct_state = "established"
     |                ^^^^^^^^^^^^^
The backend decided: 2  pass      ssh               tcp 10.0.0.1:1234 > 10.0.0.2:22 flags S  (ct new, entry syn_sent)
`
	if diff := cmp.Diff(want, renderDiags(t, testedPolicy, results)); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
}

// TestBadTestPacket: packet text that does not parse is a diagnostic at
// the word that is wrong, found without running anything.
func TestBadTestPacket(t *testing.T) {
	src := `policy "p" {
  default = "pass"
}

test "typo" {
  step {
    packet = "tcp 10.0.0.1:1234 > 10.0.0.2:22 flags S"
    expect = "pass"
  }
  step {
    packet = "tcp 10.0.0.1:1234 > 10.0.0.2 flags S"
    expect = "pass"
  }
}
`
	cfg := loadTested(t, src)
	diags := CheckTests(cfg)
	var b strings.Builder
	if err := policy.WriteDiagnostics(&b, map[string][]byte{"policy.hcl": []byte(src)}, diags); err != nil {
		t.Fatal(err)
	}
	want := `policy.hcl:11:35: error: Invalid packet
  11 |     packet = "tcp 10.0.0.1:1234 > 10.0.0.2 flags S"
     |                                   ^^^^^^^^
Packet 2 of test "typo": word 4 "10.0.0.2": expected ADDRESS:PORT, like 10.0.0.1:1234 or [2001:db8::1]:443; see docs/packets.md for the syntax.
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	if r := RunTest(BackendReference, cfg, cfg.Tests[0]); r.Passed() || r.Err != nil || len(r.Failures) != 1 {
		t.Errorf("RunTest of a test with a bad packet: passed=%v err=%v failures=%d, want one failure", r.Passed(), r.Err, len(r.Failures))
	}
}

// TestLanguageDocTests loads the examples of "Tests in the policy file"
// in docs/language.md as one file and runs them: the tests the reference
// shows must pass, on the kernel too.
func TestLanguageDocTests(t *testing.T) {
	doc, err := os.ReadFile("../docs/language.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Tests in the policy file\n")
	if !ok {
		t.Fatal(`docs/language.md has no section "Tests in the policy file"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var src strings.Builder
	for _, block := range strings.Split(section, "```hcl\n")[1:] {
		code, _, _ := strings.Cut(block, "```")
		src.WriteString(code + "\n")
	}
	cfg := loadTested(t, src.String())
	if len(cfg.Tests) < 3 {
		t.Fatalf("the section's examples hold %d tests, want at least 3", len(cfg.Tests))
	}
	for _, backend := range []string{BackendReference, BackendKernel} {
		if out := renderDiags(t, src.String(), RunTests(backend, cfg)); out != "" {
			t.Errorf("%s backend: the documented tests fail:\n%s", backend, out)
		}
	}
}

// TestBadTestPacketWord: a bad packet is underlined at the word the parser
// names, counted as it counts them ("a>b" is three words, "out" is not
// one of the packet's), or whole when the source has escapes in it.
func TestBadTestPacketWord(t *testing.T) {
	for _, tc := range []struct {
		packet   string // as written in the source, quotes included
		from, to int    // columns of the underline
	}{
		{`"tcp 10.0.0.1:1 > 10.0.0.2 flags S"`, 30, 38},
		{`"tcp 10.0.0.1:1>10.0.0.2:2 flags Q"`, 45, 46},
		{`"out  tcp 10.0.0.1:1 > 10.0.0.2:2 flags Q"`, 52, 53},
		{`"udp 10.0.0.1:1 > 10.0.0.2:2 bogus 1"`, 41, 46},
		{`"tcp\t10.0.0.1:1 > 10.0.0.2 flags S"`, 12, 48},
		{`"tcp 10.0.0.1:1 >"`, 12, 30},
	} {
		src := "policy \"p\" {\n  default = \"pass\"\n}\ntest \"t\" {\n  expect = \"pass\"\n  packet = " + tc.packet + "\n}\n"
		if strings.HasPrefix(tc.packet, `"out`) {
			src = strings.Replace(src, `expect = "pass"`, `expect = "out"`, 1)
		}
		diags := CheckTests(loadTested(t, src))
		if len(diags) != 1 {
			t.Errorf("%s: %d diagnostics, want 1: %v", tc.packet, len(diags), diags)
			continue
		}
		if s := diags[0].Subject; s.Start.Column != tc.from || s.End.Column != tc.to || s.Start.Line != 6 {
			t.Errorf("%s: underlined from column %d to %d (line %d), want %d to %d (%v)", tc.packet, s.Start.Column, s.End.Column, s.Start.Line, tc.from, tc.to, diags[0].Detail)
		}
	}
}

// TestCaseFileTests runs the test blocks of every golden case's policy on
// every backend: what a case's author promised holds in the kernel and
// through a real interface too.
func TestCaseFileTests(t *testing.T) {
	cases, err := FindCases(caseDir)
	if err != nil {
		t.Fatal(err)
	}
	tested := 0
	for _, c := range cases {
		cfg, err := c.LoadConfig()
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Tests) == 0 {
			continue
		}
		tested++
		for _, backend := range Backends() {
			t.Run(c.Name+"/"+backend, func(t *testing.T) {
				if out := renderDiags(t, string(cfg.Source), RunTests(backend, cfg)); out != "" {
					t.Errorf("tests of %s/%s fail:\n%s", c.Dir, CasePolicyFile, out)
				}
			})
		}
	}
	if tested < 2 {
		t.Errorf("%d golden cases have test blocks, want at least 2", tested)
	}
}
