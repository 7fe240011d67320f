package compiler_test

import (
	"bytes"
	"testing"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/policy"
)

// compiledPolicy uses every kind of set map the compiler emits.
const compiledPolicy = `
set "blocklist" {
  type     = "cidr"
  elements = ["198.51.100.0/24", "2001:db8:bad::/48"]
}

set "services" {
  type     = "port"
  elements = [22, 443]
}

set "routers" {
  type     = "mac"
  elements = ["02:00:00:00:00:fe"]
}

policy "edge" {
  default   = "drop"
  malformed = "drop"

  rule "blocked" {
    src    = set.blocklist
    action = "drop"
  }
  rule "services" {
    proto    = "tcp"
    dst_port = set.services
    action   = "pass"
  }
  rule "routers" {
    src_mac = set.routers
    action  = "pass"
  }
  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }
}
`

// compileSource compiles the first policy of src.
func compileSource(t *testing.T, src string) *artifact.Artifact {
	t.Helper()
	cfg, diags := policy.Load("policy.hcl", []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatalf("load: %v", diags)
	}
	a, err := compiler.Compile(cfg, cfg.Policies[0], compiler.Options{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return a
}

// TestCompileIgnoresFileName compiles the same policy read from two paths
// under two names: the artifacts are the same bytes and name no file.
func TestCompileIgnoresFileName(t *testing.T) {
	elf := func(name string) []byte {
		cfg, diags := policy.Load(name, []byte(compiledPolicy), policy.LoadOptions{})
		if diags.HasErrors() {
			t.Fatalf("load %s: %v", name, diags)
		}
		a, err := compiler.Compile(cfg, cfg.Policies[0], compiler.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := a.WriteELF(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	one, other := elf("policy.hcl"), elf("/etc/xdpc/edge-router.hcl")
	if !bytes.Equal(one, other) {
		t.Error("the same policy read as policy.hcl and /etc/xdpc/edge-router.hcl compiles to different bytes")
	}
	for _, name := range []string{"policy.hcl", "edge-router", "/etc/xdpc"} {
		if bytes.Contains(other, []byte(name)) {
			t.Errorf("the artifact holds %q", name)
		}
	}
}
