package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/runtime"
)

// TestVerifierReportNamesPolicyFile checks that a verifier rejection is
// reported with the policy file the command compiled, although the
// artifact itself knows only lines and columns.
func TestVerifierReportNamesPolicyFile(t *testing.T) {
	rejection := func() error {
		return fmt.Errorf("load policy %q: %w", "edge", &runtime.VerifierRejection{
			Program: "xdpc_edge", Insn: 12, Source: `7:5 rule "ssh": dst_port`,
			Tail: []string{"12: (bf) r0 = r5", "R5 !read_ok"},
			Err:  &ebpf.VerifierError{Cause: errors.New("permission denied"), Log: []string{"R5 !read_ok"}},
		})
	}
	for _, tt := range []struct{ source, want string }{
		{"/etc/xdpc/edge.hcl", `instruction 12 (/etc/xdpc/edge.hcl:7:5 rule "ssh": dst_port)`},
		{"", `instruction 12 (7:5 rule "ssh": dst_port)`}, // applied from an artifact
	} {
		var stderr bytes.Buffer
		c := &cobra.Command{}
		c.SetErr(&stderr)
		err := applyError(c, rejection(), tt.source)
		if !strings.Contains(stderr.String(), tt.want) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("apply from %q: report\n%s\nerror %v\nwant both to say %s", tt.source, stderr.String(), err, tt.want)
		}
		stderr.Reset()
		err = backendError(&stderr, rejection(), tt.source)
		if !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("replay of %q: report\n%s\nwant it to say %s", tt.source, stderr.String(), tt.want)
		}
	}
}
