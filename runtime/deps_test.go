package runtime_test

import (
	"testing"

	"github.com/xdpc/xdpc/internal/deptest"
)

// TestImportsNoCompiler checks that the runtime reads artifacts through
// package artifact alone: it depends neither on the compiler nor, through
// it, on the policy language and HCL, so a host that only applies
// artifacts carries none of them.
func TestImportsNoCompiler(t *testing.T) {
	deptest.Forbid(t, "github.com/xdpc/xdpc/runtime",
		"xdpc/xdpc/compiler", "xdpc/xdpc/policy", "hashicorp/hcl", "zclconf/go-cty")
}
