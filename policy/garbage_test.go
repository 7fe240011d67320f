package policy

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

// render writes diags as the CLI does.
func render(t *testing.T, filename string, src []byte, diags hcl.Diagnostics) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, map[string][]byte{filename: src}, diags); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// garbageText is about a megabyte of policy-looking words in no order.
func garbageText() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"rule", "{", "}", "=", `"x"`, "policy", "[", "]", "foo", "1.2.3", "!", "@", "#", "\n"}
	var b bytes.Buffer
	for b.Len() < 1<<20 {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()
}

// TestLoadStopsAfterMaxErrors: a file of garbage gives MaxErrors errors
// and "Too many errors", a screenful rather than megabytes.
func TestLoadStopsAfterMaxErrors(t *testing.T) {
	src := garbageText()
	for name, load := range map[string]func() hcl.Diagnostics{
		"Load":   func() hcl.Diagnostics { _, d := Load("g.hcl", src, LoadOptions{}); return d },
		"Format": func() hcl.Diagnostics { _, d := Format("g.hcl", src); return d },
	} {
		diags := load()
		errs := 0
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				errs++
			}
		}
		if errs != MaxErrors+1 || diags[len(diags)-1].Summary != "Too many errors" {
			t.Errorf("%s: %d errors, the last %q; want %d and then \"Too many errors\"", name, errs, diags[len(diags)-1].Summary, MaxErrors)
		}
		if out := render(t, "g.hcl", src, diags); len(out) > 8<<10 {
			t.Errorf("%s: %d bytes of diagnostics for a garbage file, want at most 8 KiB", name, len(out))
		}
	}
}

// TestBinaryIsNotText: a NUL byte makes one located diagnostic, not one
// per byte the parser cannot read; ReadFile tells from the start of the
// file, so /dev/zero (endless) is refused at once.
func TestBinaryIsNotText(t *testing.T) {
	src := []byte("policy \"p\" {\n  dé\x00fault = \"pass\"\n}\n")
	_, diags := Load("b.hcl", src, LoadOptions{})
	want := "b.hcl:2:5: error: Not a text file\n" +
		"   2 |   dé?fault = \"pass\"\n" +
		"     |     ^\n" +
		"The file holds a NUL byte, so it is not a policy but binary data (an artifact, a capture?); give the policy's .hcl file.\n"
	if diff := cmp.Diff(want, render(t, "b.hcl", src, diags)); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	if _, diags := Format("b.hcl", src); len(diags) != 1 || diags[0].Summary != "Not a text file" {
		t.Errorf("Format: %v, want one \"Not a text file\"", diags)
	}
	if _, diags := ReadFile("/dev/zero"); len(diags) != 1 || diags[0].Summary != "Not a text file" {
		t.Errorf("ReadFile(/dev/zero): %v, want one \"Not a text file\"", diags)
	}
}

// TestReadFileRefusesHugeFiles: past MaxFileSize ReadFile stops reading.
func TestReadFileRefusesHugeFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.hcl")
	if err := os.WriteFile(path, bytes.Repeat([]byte("# comment\n"), MaxFileSize/10+1), 0o644); err != nil {
		t.Fatal(err)
	}
	src, diags := ReadFile(path)
	if src != nil || len(diags) != 1 || diags[0].Summary != "Policy file too large" {
		t.Errorf("ReadFile of %d bytes: %d bytes, %v; want one \"Policy file too large\"", MaxFileSize+10, len(src), diags)
	}
}

// TestSnippetOfALongLine shows the part of a megabyte-long line around
// the subject, not all of it.
func TestSnippetOfALongLine(t *testing.T) {
	line := strings.Repeat("a", 1<<20) + " = \x1b[31m"
	src := []byte(line)
	start := 1 << 20
	rng := hcl.Range{Filename: "l.hcl", Start: hcl.Pos{Line: 1, Column: start + 1, Byte: start}, End: hcl.Pos{Line: 1, Column: start + 4, Byte: start + 3}}
	out := render(t, "l.hcl", src, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Bad", Subject: &rng}})
	want := "l.hcl:1:1048577: error: Bad\n" +
		"   1 | …" + strings.Repeat("a", 40) + " = ?[31m\n" +
		"     |  " + strings.Repeat(" ", 40) + "^^^\n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
