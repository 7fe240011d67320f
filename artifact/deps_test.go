package artifact_test

import (
	"strings"
	"testing"

	"github.com/xdpc/xdpc/internal/deptest"
)

// TestImportsOnlyEBPF checks that artifact stays the bottom of the graph:
// besides the standard library it imports only cilium/ebpf (and what that
// needs) and packages conntrack and nat (the standard library alone, for
// the layouts of the connection table and the NAT maps), never the policy
// language or HCL.
func TestImportsOnlyEBPF(t *testing.T) {
	const self = "github.com/xdpc/xdpc/artifact"
	for _, d := range deptest.Deps(t, self) {
		switch {
		case d == self, !strings.Contains(strings.SplitN(d, "/", 2)[0], "."):
			// itself, or the standard library
		case strings.HasPrefix(d, "github.com/cilium/ebpf"), strings.HasPrefix(d, "golang.org/x/sys/"):
		case d == "github.com/xdpc/xdpc/conntrack", d == "github.com/xdpc/xdpc/nat":
		default:
			t.Errorf("artifact depends on %s", d)
		}
	}
}
