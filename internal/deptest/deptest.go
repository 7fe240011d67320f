// Package deptest checks the import graph from tests: which packages a
// package depends on in its non-test build, as `go list -deps` reports.
package deptest

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Deps returns the import paths pkg depends on in its non-test build,
// itself included.
func Deps(t *testing.T, pkg string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(gobin, "list", "-deps", pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// Forbid fails the test for every dependency of pkg that contains one of
// the given substrings.
func Forbid(t *testing.T, pkg string, forbidden ...string) {
	t.Helper()
	deps := Deps(t, pkg)
	if len(deps) == 0 {
		t.Fatalf("go list -deps %s listed nothing", pkg)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.Contains(d, f) {
				t.Errorf("%s depends on %s", pkg, d)
			}
		}
	}
}
