package ci

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

// workflowDir holds the repository's GitHub Actions workflows.
const workflowDir = "../../.github/workflows"

// lint runs actionlint on one workflow file's content and returns its
// findings.
func lint(t *testing.T, path string, content []byte) []*actionlint.Error {
	t.Helper()
	var out bytes.Buffer
	// No shellcheck or pyflakes: the result must not depend on what the
	// machine has installed.
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.Lint(path, content, nil)
	if err != nil {
		t.Fatal(err)
	}
	return errs
}

// TestWorkflowsLint checks every workflow with actionlint.
func TestWorkflowsLint(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(workflowDir, "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no workflows in %s", workflowDir)
	}
	for _, p := range paths {
		content, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range lint(t, p, content) {
			t.Errorf("%s:%d:%d: %s [%s]", p, e.Line, e.Column, e.Message, e.Kind)
		}
	}
}

// TestWorkflowRunsTheSuiteAsRoot checks that CI runs what the README says,
// with the Go version go.mod names and with the privileges the kernel and
// lab tests need.
func TestWorkflowRunsTheSuiteAsRoot(t *testing.T) {
	content, err := os.ReadFile(filepath.Join(workflowDir, "ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"runs-on: ubuntu-latest",
		"go-version-file: go.mod",
		"sudo ",
		"bash scripts/test.sh",
	} {
		if !strings.Contains(string(content), want) {
			t.Errorf("ci.yml does not contain %q", want)
		}
	}
}

// TestLintCatchesBrokenWorkflows makes sure the lint above can fail: a job
// without runs-on and an unknown action input are reported.
func TestLintCatchesBrokenWorkflows(t *testing.T) {
	broken := []byte(`name: broken
on: push
jobs:
  test:
    steps:
      - uses: actions/setup-go@v5
        with:
          go-version-fille: go.mod
`)
	errs := lint(t, "broken.yml", broken)
	var kinds []string
	for _, e := range errs {
		kinds = append(kinds, e.Message)
	}
	text := strings.Join(kinds, "\n")
	for _, want := range []string{`"runs-on" section is missing`, `go-version-fille`} {
		if !strings.Contains(text, want) {
			t.Errorf("actionlint did not report %q; it said:\n%s", want, text)
		}
	}
}
