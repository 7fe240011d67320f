package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
)

// checkStatic fails t unless the ELF executable at path is for machine
// and statically linked: no interpreter (dynamic loader) and no dynamic
// section, so it runs on a host without a matching libc.
func checkStatic(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != machine || f.Type != elf.ET_EXEC {
		t.Errorf("%s: %s %s, want an executable for %s", path, f.Type, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %s program header: it is dynamically linked", path, p.Type)
		}
	}
	for _, name := range []string{".interp", ".dynamic"} {
		if f.Section(name) != nil {
			t.Errorf("%s has a %s section: it is dynamically linked", path, name)
		}
	}
}

func headCommit(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestReleaseBuildsStaticBinaries runs scripts/release.sh: it must write
// static linux/amd64 and linux/arm64 binaries whose checksums SHA256SUMS
// holds, and the amd64 one must say which commit it was built from.
func TestReleaseBuildsStaticBinaries(t *testing.T) {
	dist := t.TempDir()
	cmd := exec.Command("bash", "scripts/release.sh")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "DIST="+dist)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		sum, name, _ := strings.Cut(sc.Text(), "  ")
		listed[name] = sum
	}
	for name, machine := range map[string]elf.Machine{"xdpc-linux-amd64": elf.EM_X86_64, "xdpc-linux-arm64": elf.EM_AARCH64} {
		path := filepath.Join(dist, name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); listed[name] != hex.EncodeToString(sum[:]) {
			t.Errorf("SHA256SUMS has %q for %s, its sha256 is %x", listed[name], name, sum)
		}
		checkStatic(t, path, machine)
	}
	out, err := exec.Command(filepath.Join(dist, "xdpc-linux-amd64"), "version", "--json").Output()
	if err != nil {
		t.Fatalf("xdpc version --json: %v", err)
	}
	var v buildVersion
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("xdpc version --json: %v\n%s", err, out)
	}
	if want := headCommit(t); v.Commit != want || v.CommitTime == "" || !v.Static || !strings.HasPrefix(v.Version, "v") {
		t.Errorf("release binary's version %+v, want commit %s, a commit time, a version and static", v, want)
	}
}

// TestREADMEInstallLineIsStatic runs the install line of README.md as it
// is written: the binary it installs must be the static one the README
// promises (with cgo on, the net package would link the C resolver).
func TestREADMEInstallLineIsStatic(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(l, "CGO_ENABLED=0 go install ") {
			line, _, _ = strings.Cut(l, " #")
			break
		}
	}
	if line == "" {
		t.Fatal("README.md has no install line starting CGO_ENABLED=0 go install")
	}
	bin := t.TempDir()
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	checkStatic(t, filepath.Join(bin, "xdpc"), map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[goruntime.GOARCH])
}
