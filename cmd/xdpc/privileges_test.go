package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobody is the user the unprivileged runs take.
const nobody = 65534

// unprivilegedXDPC copies the test binary (which runs as xdpc with
// runAsXDPC set) and the demo's policy, capture and golden case into a
// directory user nobody can read, and returns a function that runs xdpc
// there as nobody, without capabilities, and the directory.
func unprivilegedXDPC(t *testing.T) (func(args ...string) (int, string), string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "xdpc-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	copyFile := func(from, to string, mode os.FileMode) {
		t.Helper()
		src, err := os.Open(from)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "xdpc")
	copyFile(os.Args[0], bin, 0o755)
	copyFile("demo/policy.hcl", filepath.Join(dir, "policy.hcl"), 0o644)
	copyFile("demo/in.pcap", filepath.Join(dir, "in.pcap"), 0o644)
	caseDir := filepath.Join(dir, "cases", "demo")
	if err := os.MkdirAll(caseDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"policy.hcl", "packets.txt", "in.pcap", "expected.txt"} {
		copyFile(filepath.Join("..", "..", "testdata", "lab", "demo-host", f), filepath.Join(caseDir, f), 0o644)
	}
	for _, d := range []string{dir, filepath.Join(dir, "cases")} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pins, state := filepath.Join(dir, "pins"), filepath.Join(dir, "state")
	return func(args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), runAsXDPC+"=1", "XDPC_PIN_ROOT="+pins, "XDPC_STATE_DIR="+state, "HOME="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			return ee.ExitCode(), out.String()
		}
		if err != nil {
			t.Fatalf("xdpc %s: %v", strings.Join(args, " "), err)
		}
		return 0, out.String()
	}, dir
}

// TestUnprivilegedSaysNeedsRoot runs every command that needs the kernel
// as user nobody: each says it needs root and which capabilities (exit 3),
// instead of an EPERM with cilium/ebpf's MEMLOCK hint or, for status, a
// false "nothing attached". What needs no privileges still works.
func TestUnprivilegedSaysNeedsRoot(t *testing.T) {
	xdpc, dir := unprivilegedXDPC(t)
	var stderr bytes.Buffer
	if code := run([]string{"build", "-o", filepath.Join(dir, "demo.o"), "demo/policy.hcl"}, io.Discard, &stderr); code != 0 {
		t.Fatalf("build: exit %d\n%s", code, stderr.String())
	}
	const bpf = "needs root (CAP_BPF, CAP_NET_ADMIN)"
	const lab = "needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "policy.hcl"}, "apply " + bpf},
		{[]string{"apply", "demo.o"}, "apply " + bpf},
		{[]string{"apply", "--netns", "x", "policy.hcl"}, "apply " + lab},
		{[]string{"status"}, "status " + bpf},
		{[]string{"stats"}, "stats " + bpf},
		{[]string{"detach"}, "detach " + bpf},
		{[]string{"set", "add", "allow", "10.0.0.1"}, "set add " + bpf},
		{[]string{"set", "del", "allow", "10.0.0.1"}, "set del " + bpf},
		{[]string{"set", "list", "allow"}, "set list " + bpf},
		{[]string{"confirm"}, "confirm " + bpf},
		{[]string{"replay", "--backend", "kernel", "policy.hcl", "in.pcap"}, "replay --backend kernel " + bpf},
		{[]string{"replay", "--backend", "lab", "policy.hcl", "in.pcap"}, "replay --backend lab " + lab},
		{[]string{"demo"}, "demo --backend lab " + lab},
		{[]string{"demo", "--backend", "kernel"}, "demo --backend kernel " + bpf},
		{[]string{"test", "cases"}, "test --backend lab " + lab},
		{[]string{"test", "--backend", "kernel", "cases"}, "test --backend kernel " + bpf},
		{[]string{"lab", "gc"}, "lab gc needs root (CAP_SYS_ADMIN)"},
	} {
		code, out := xdpc(tc.args...)
		if code != exitSystem || !strings.Contains(out, "xdpc: "+tc.want+"\n") || strings.Contains(out, "MEMLOCK") {
			t.Errorf("xdpc %s as nobody: exit %d\n%s\nwant exit %d and %q", strings.Join(tc.args, " "), code, out, exitSystem, tc.want)
		}
	}
	for _, args := range [][]string{
		{"check", "policy.hcl"},
		{"replay", "policy.hcl", "in.pcap"},
		{"explain", "policy.hcl", "arp"},
		{"demo", "--backend", "reference"},
		{"test", "--backend", "reference", "cases"},
	} {
		if code, out := xdpc(args...); code != 0 {
			t.Errorf("xdpc %s as nobody: exit %d, want 0 (it needs no privileges)\n%s", strings.Join(args, " "), code, out)
		}
	}
}
