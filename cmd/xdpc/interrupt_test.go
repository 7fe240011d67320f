package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpc/xdpc/lab"
)

// interruptFrames is how many frames the interrupted replay has: enough
// that it is still running when the signal comes.
const interruptFrames = 50_000

// TestInterruptTearsDownTheLab starts `xdpc replay --backend lab` on a long
// capture, waits until its lab namespaces exist, signals it, and checks
// that it exits with the signal's code and leaves no namespace behind.
func TestInterruptTearsDownTheLab(t *testing.T) {
	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(policyPath, []byte("policy \"p\" {\n  default = \"pass\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	frame, err := lab.ParsePacket("udp 10.0.0.1:1 > 10.0.0.2:2")
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, interruptFrames)
	for i := range frames {
		frames[i] = frame
	}
	var capture bytes.Buffer
	if err := lab.WritePcap(&capture, lab.Frames(frames)); err != nil {
		t.Fatal(err)
	}
	pcapPath := filepath.Join(dir, "in.pcap")
	if err := os.WriteFile(pcapPath, capture.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "replay", "--backend", "lab", policyPath, pcapPath)
			cmd.Env = append(os.Environ(), runAsXDPC+"=1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			prefix := fmt.Sprintf("%s%d-", lab.NamespacePrefix, cmd.Process.Pid)
			if err := waitForNamespaces(prefix, true, 10*time.Second); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal(err)
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Errorf("xdpc exited with %v, want code %d; stderr:\n%s", err, tc.code, stderr.String())
			}
			if err := waitForNamespaces(prefix, false, 0); err != nil {
				lab.CollectGarbage(lab.GCOptions{Prefix: prefix, All: true})
				t.Error(err)
			}
		})
	}
}

// waitForNamespaces polls until namespaces starting with prefix exist
// (present) or do not (!present), until timeout.
func waitForNamespaces(prefix string, present bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		names, err := lab.LeftoverNamespaces()
		if err != nil {
			return err
		}
		var ours []string
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				ours = append(ours, n)
			}
		}
		if (len(ours) > 0) == present {
			return nil
		}
		if time.Now().After(deadline) {
			if present {
				return fmt.Errorf("no namespace %s* appeared within %s", prefix, timeout)
			}
			return fmt.Errorf("namespaces left behind: %v", ours)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
