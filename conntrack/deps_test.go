package conntrack_test

import (
	"strings"
	"testing"

	"github.com/xdpc/xdpc/internal/deptest"
)

// TestImportsOnlyStdlib keeps conntrack at the bottom of the graph: the
// artifact package, the compiler and the reference evaluator all read it.
func TestImportsOnlyStdlib(t *testing.T) {
	const self = "github.com/xdpc/xdpc/conntrack"
	for _, d := range deptest.Deps(t, self) {
		if d != self && strings.Contains(strings.SplitN(d, "/", 2)[0], ".") {
			t.Errorf("conntrack depends on %s", d)
		}
	}
}
