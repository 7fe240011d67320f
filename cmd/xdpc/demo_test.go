package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpc/xdpc/lab"
)

// TestDemoCaptureIsGenerated checks that demo/in.pcap is what
// demo/packets.txt generates (go generate ./cmd/xdpc).
func TestDemoCaptureIsGenerated(t *testing.T) {
	want, err := lab.Case{Name: "demo", Dir: "demo"}.BuildCapture()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(demoCapture, want) {
		t.Fatal("demo/in.pcap is stale: run go generate ./cmd/xdpc")
	}
}

// TestDemoBackendsAgree runs the demo on every backend: the verdict lines
// and counters must be the same, and the lab must say it tore down.
func TestDemoBackendsAgree(t *testing.T) {
	outputs := map[string]string{}
	for _, backend := range lab.Backends() {
		var stdout, stderr bytes.Buffer
		if err := runDemo(&stdout, &stderr, backend); err != nil {
			t.Fatalf("%s: %v\n%s", backend, err, stderr.String())
		}
		outputs[backend] = stdout.String()
	}
	verdictLines := func(out string) string {
		var keep []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "policy ") || strings.HasPrefix(l, "lab") {
				continue
			}
			keep = append(keep, l)
		}
		return strings.TrimSpace(strings.Join(keep, "\n"))
	}
	ref := verdictLines(outputs[lab.BackendReference])
	for _, backend := range []string{lab.BackendKernel, lab.BackendLab} {
		if got := verdictLines(outputs[backend]); got != ref {
			t.Errorf("%s demo differs from reference:\n%s\nwant:\n%s", backend, got, ref)
		}
	}
	if !strings.Contains(outputs[lab.BackendLab], "lab torn down") {
		t.Errorf("lab demo did not report its teardown:\n%s", outputs[lab.BackendLab])
	}
}

// TestDemoPolicyIsACase checks that the golden lab case demo-host holds
// the demo's policy, so the demo's verdicts are reviewed as a golden.
func TestDemoPolicyIsACase(t *testing.T) {
	casePolicy, err := os.ReadFile(filepath.Join("..", "..", "testdata", "lab", "demo-host", "policy.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(casePolicy, demoPolicy) {
		t.Error("testdata/lab/demo-host/policy.hcl differs from demo/policy.hcl: copy the demo's policy and run go test ./lab -update")
	}
}
