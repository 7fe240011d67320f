package main

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/runtime"
)

// TestNATAddresses: apply takes each nat block's masquerade, forward and
// static outside addresses from the policy file.
func TestNATAddresses(t *testing.T) {
	src := `
interface "eth0" { policy = "outside" }
interface "eth1" { policy = "inside" }
policy "outside" { default = "pass" }
policy "inside" { default = "pass" }
nat "edge" {
  outside = "eth0"
  inside  = "eth1"
  masquerade {
    src = "10.0.0.0/24"
    to  = "203.0.113.1"
  }
  forward "web" {
    proto    = "tcp"
    dst      = "203.0.113.2"
    dst_port = 8080
    to       = "10.0.0.5:80"
  }
  static {
    inside  = "10.0.0.7"
    outside = "203.0.113.7"
  }
}
`
	cfg, diags := policy.Load("edge.hcl", []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	got := natAddresses(cfg)
	want := []runtime.NATAddresses{{
		Block:      "edge",
		Masquerade: []netip.Addr{netip.MustParseAddr("203.0.113.1")},
		Forward:    []netip.Addr{netip.MustParseAddr("203.0.113.2")},
		Static:     []netip.Addr{netip.MustParseAddr("203.0.113.7")},
	}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("natAddresses = %v, want %v", got, want)
	}
}
