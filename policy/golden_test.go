package policy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"
)

var update = flag.Bool("update", false, "rewrite golden sections of testdata/*/*.txtar")

// goldenCase is one txtar file of testdata/good or testdata/bad.
type goldenCase struct {
	path    string
	archive *txtar.Archive
}

func (c goldenCase) section(name string) (string, bool) {
	for _, f := range c.archive.Files {
		if f.Name == name {
			return string(f.Data), true
		}
	}
	return "", false
}

func (c goldenCase) setSection(name, data string) {
	for i, f := range c.archive.Files {
		if f.Name == name {
			c.archive.Files[i].Data = []byte(data)
			return
		}
	}
	c.archive.Files = append(c.archive.Files, txtar.File{Name: name, Data: []byte(data)})
}

// vars parses the optional "vars" section: NAME=VALUE lines.
func (c goldenCase) vars(t *testing.T) map[string]string {
	text, ok := c.section("vars")
	if !ok {
		return nil
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		k, v, found := strings.Cut(line, "=")
		if !found {
			t.Fatalf("vars line %q is not NAME=VALUE", line)
		}
		vars[k] = v
	}
	return vars
}

func readCases(t *testing.T, dir string) []goldenCase {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	var cs []goldenCase
	for _, p := range paths {
		a, err := txtar.ParseFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, goldenCase{p, a})
	}
	return cs
}

// loadCase loads the case's policy.hcl and renders its diagnostics.
func loadCase(t *testing.T, c goldenCase) (*Config, string) {
	t.Helper()
	src, ok := c.section("policy.hcl")
	if !ok {
		t.Fatalf("%s: no policy.hcl section", c.path)
	}
	cfg, diags := Load("policy.hcl", []byte(src), LoadOptions{Vars: c.vars(t)})
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, map[string][]byte{"policy.hcl": []byte(src)}, diags); err != nil {
		t.Fatal(err)
	}
	return cfg, buf.String()
}

// compareGolden compares got with the named section, or rewrites it with -update.
func compareGolden(t *testing.T, c goldenCase, name, got string) {
	t.Helper()
	want, _ := c.section(name)
	if *update {
		c.setSection(name, got)
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: section %s mismatch (-want +got):\n%s", c.path, name, diff)
	}
}

func writeCase(t *testing.T, c goldenCase) {
	if *update {
		if err := os.WriteFile(c.path, txtar.Format(c.archive), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBad checks that every policy in testdata/bad is rejected with
// exactly the diagnostics in its golden section.
func TestBad(t *testing.T) {
	cases := readCases(t, "bad")
	if len(cases) < 35 {
		t.Errorf("only %d bad cases; the catalogue should hold at least 35", len(cases))
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			cfg, diags := loadCase(t, c)
			if cfg != nil {
				t.Errorf("Load accepted a bad policy:\n%s", cfg.Dump())
			}
			if !strings.Contains(diags, ": error: ") && !strings.HasPrefix(diags, "error: ") {
				t.Errorf("no error in diagnostics:\n%s", diags)
			}
			compareGolden(t, c, "diagnostics", diags)
			writeCase(t, c)
		})
	}
}

// TestGood checks that every policy in testdata/good loads, with the
// model and the warnings in its golden sections.
func TestGood(t *testing.T) {
	for _, c := range readCases(t, "good") {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			cfg, diags := loadCase(t, c)
			if cfg == nil {
				t.Fatalf("Load rejected a good policy:\n%s", diags)
			}
			compareGolden(t, c, "model", cfg.Dump())
			compareGolden(t, c, "diagnostics", diags)
			writeCase(t, c)
		})
	}
}
