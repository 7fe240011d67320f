package main

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const junitPolicy = `policy "p" {
  default = "drop"

  rule "ssh" {
    proto    = "tcp"
    dst_port = 22
    action   = "pass"
  }
}

test "ssh" {
  packet = "tcp 10.0.0.1:1234 > 10.0.0.2:22 flags S"
  expect = "pass"
}

test "web" {
  packet = "tcp 10.0.0.1:1234 > 10.0.0.2:80 flags S"
  expect = "pass"
}
`

// TestJUnitReport runs xdpc test --junit on a policy file with a passing
// and a failing test and reads the report back as a CI would: one suite
// for the file, a case per test with its line, the failure's message.
func TestJUnitReport(t *testing.T) {
	t.Setenv("GITHUB_ACTIONS", "")
	dir := t.TempDir()
	path := filepath.Join(dir, "p.hcl")
	if err := os.WriteFile(path, []byte(junitPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.xml")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"test", "--backend", "reference", "--junit", report, path}, &stdout, &stderr); code != exitPolicy {
		t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitPolicy, stdout.String(), stderr.String())
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string `xml:"name,attr"`
				Line    int    `xml:"line,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &got); err != nil {
		t.Fatalf("the report is not XML: %v\n%s", err, data)
	}
	if got.Tests != 2 || got.Failures != 1 || len(got.Suites) != 1 || got.Suites[0].Name != path {
		t.Fatalf("report holds %d tests, %d failures, suites %+v; want 2, 1 and one suite %s", got.Tests, got.Failures, got.Suites, path)
	}
	type testcase struct {
		Name, Failure string
		Line          int
	}
	var cases []testcase
	for _, c := range got.Suites[0].Cases {
		tc := testcase{Name: c.Name, Line: c.Line}
		if c.Failure != nil {
			tc.Failure = c.Failure.Message
		}
		cases = append(cases, tc)
	}
	want := []testcase{
		{Name: "ssh", Line: 11},
		{Name: "web", Line: 16, Failure: `test "web": packet 1 expected pass, got drop (rule default)`},
	}
	if diff := cmp.Diff(want, cases); diff != "" {
		t.Errorf("test cases (-want +got):\n%s", diff)
	}
}

// TestAnnotationEscaping: messages keep their lines as %0A and file names
// their commas and colons escaped, so that GitHub reads one command each.
func TestAnnotationEscaping(t *testing.T) {
	var b bytes.Buffer
	writeAnnotation(&b, "error", annotationPlace{File: "a,b:c.hcl", Line: 3, Col: 7}, "100% wrong\nsee line 2")
	writeAnnotation(&b, "warning", annotationPlace{}, "no place")
	want := "::error file=a%2Cb%3Ac.hcl,line=3,col=7::100%25 wrong%0Asee line 2\n::warning::no place\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
}
