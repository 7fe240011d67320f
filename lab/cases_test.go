package lab

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden lab cases' in.pcap and expected.txt")

// caseDir holds the golden lab cases.
const caseDir = "../testdata/lab"

// minCases is how many golden cases the suite must hold.
const minCases = 30

// TestCases runs every golden case on every backend: each must print
// exactly the case's expected.txt. -update regenerates in.pcap from
// packets.txt and rewrites expected.txt from the reference backend, which
// the kernel and lab backends must then still match.
func TestCases(t *testing.T) {
	cases, err := FindCases(caseDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < minCases {
		t.Errorf("%d golden cases, want at least %d", len(cases), minCases)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			checkCapture(t, c)
			expectedPath := filepath.Join(c.Dir, CaseExpectedFile)
			if *update {
				got, err := c.Replay(BackendReference)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(expectedPath, []byte(Golden(got)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(expectedPath)
			if err != nil {
				t.Fatal(err)
			}
			for _, backend := range Backends() {
				t.Run(backend, func(t *testing.T) {
					got, err := c.Replay(backend)
					if err != nil {
						t.Fatal(err)
					}
					if diff := GoldenDiff(string(want), Golden(got)); diff != "" {
						t.Errorf("%s backend differs from %s:\n%s", backend, expectedPath, diff)
					}
				})
			}
		})
	}
}

// checkCapture checks that in.pcap is what packets.txt generates, or
// rewrites it with -update.
func checkCapture(t *testing.T, c Case) {
	t.Helper()
	if *update {
		if _, err := c.GenerateCapture(); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := c.BuildCapture()
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(filepath.Join(c.Dir, CaseCaptureFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Fatalf("%s is not what %s generates: run go generate ./lab (or go test ./lab -update)", CaseCaptureFile, CasePacketsFile)
	}
}
