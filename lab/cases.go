package lab

//go:generate go run ./internal/gencases ../testdata/lab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xdpc/xdpc/policy"
)

// The files of a golden case directory.
const (
	CasePolicyFile   = "policy.hcl"
	CasePacketsFile  = "packets.txt"
	CaseCaptureFile  = "in.pcap"
	CaseExpectedFile = "expected.txt"
)

// Case is one golden lab case: a directory holding the policy, the packet
// list its capture is generated from, the capture and the expected lines.
type Case struct {
	Name string
	Dir  string
}

// FindCases returns the cases under dirs, sorted by name. A directory that
// holds a policy.hcl is a case; any other is searched one level down.
func FindCases(dirs ...string) ([]Case, error) {
	var cases []Case
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, CasePolicyFile)); err == nil {
			cases = append(cases, Case{Name: filepath.Base(dir), Dir: dir})
			continue
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("find cases: %w", err)
		}
		for _, e := range entries {
			sub := filepath.Join(dir, e.Name())
			if _, err := os.Stat(filepath.Join(sub, CasePolicyFile)); e.IsDir() && err == nil {
				cases = append(cases, Case{Name: e.Name(), Dir: sub})
			}
		}
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("find cases: no directory with a %s under %s", CasePolicyFile, strings.Join(dirs, ", "))
	}
	slices.SortFunc(cases, func(a, b Case) int { return strings.Compare(a.Dir, b.Dir) })
	return cases, nil
}

// CaseError reports a case whose own files are wrong (its policy or its
// capture), as opposed to a backend that could not run.
type CaseError struct {
	Case string
	Err  error
}

func (e *CaseError) Error() string { return fmt.Sprintf("case %s: %v", e.Case, e.Err) }
func (e *CaseError) Unwrap() error { return e.Err }

// LoadConfig loads the case's policy file: one policy, or a host case's
// (IsHostConfig) several.
func (c Case) LoadConfig() (*policy.Config, error) {
	path := filepath.Join(c.Dir, CasePolicyFile)
	cfg, diags := policy.LoadFile(path, policy.LoadOptions{})
	if diags.HasErrors() || cfg == nil {
		return nil, fmt.Errorf("load %s: %s", path, diags.Error())
	}
	return cfg, nil
}

// LoadPolicy loads the case's policy file; it must hold exactly one policy.
func (c Case) LoadPolicy() (*policy.Config, *policy.Policy, error) {
	path := filepath.Join(c.Dir, CasePolicyFile)
	cfg, err := c.LoadConfig()
	if err != nil {
		return nil, nil, err
	}
	if len(cfg.Policies) != 1 {
		return nil, nil, fmt.Errorf("load %s: a case holds exactly one policy, this file has %d", path, len(cfg.Policies))
	}
	return cfg, cfg.Policies[0], nil
}

// Replay runs the case's capture on the named backend and returns one
// verdict per packet. A host case (IsHostConfig) runs on a host backend
// (NewHostBackend): every interface of its file, each frame on its own.
func (c Case) Replay(backend string) ([]Verdict, error) {
	cfg, err := c.LoadConfig()
	if err != nil {
		return nil, &CaseError{Case: c.Name, Err: err}
	}
	var p *policy.Policy
	if !IsHostConfig(cfg) {
		if _, p, err = c.LoadPolicy(); err != nil {
			return nil, &CaseError{Case: c.Name, Err: err}
		}
	}
	frames, err := ReadPcapFile(filepath.Join(c.Dir, CaseCaptureFile))
	if err != nil {
		return nil, &CaseError{Case: c.Name, Err: err}
	}
	var b Backend
	if p != nil {
		b, err = NewBackend(backend, cfg, p)
	} else {
		b, err = NewHostBackend(backend, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("case %s: start %s backend: %w", c.Name, backend, err)
	}
	defer b.Close()
	return Replay(b, frames), nil
}

// Golden renders verdicts as the text of an expected.txt: one line each.
func Golden(verdicts []Verdict) string {
	var b strings.Builder
	for _, v := range verdicts {
		b.WriteString(strings.TrimRight(v.String(), " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// GoldenDiff compares an expected.txt with the lines a backend produced,
// packet by packet, and returns a readable report of the packets that
// differ; empty when they agree.
func GoldenDiff(want, got string) string {
	wl, gl := splitLines(want), splitLines(got)
	var b strings.Builder
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w == g {
			continue
		}
		fmt.Fprintf(&b, "packet %d:\n  want %s\n  got  %s\n", i+1, orNone(w), orNone(g))
	}
	return b.String()
}

func splitLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func orNone(s string) string {
	if s == "" {
		return "(no line)"
	}
	return strings.TrimSpace(s)
}

// BuildCapture turns a case's packets.txt into the bytes of its in.pcap:
// the list's frames (see ReadPacketList; class lines are seeded with
// caseName, hex lines are refused) with fixed timestamps, so the same list
// always gives the same capture.
func BuildCapture(caseName string, packets io.Reader) ([]byte, error) {
	return buildCapture(CasePacketsFile, caseName, packets)
}

// buildCapture is BuildCapture with the list's name for error positions.
func buildCapture(name, caseName string, packets io.Reader) ([]byte, error) {
	frames, err := ReadPacketList(name, packets, PacketListOptions{Case: caseName})
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := WritePcap(&out, frames); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// FrameData returns the bytes of each frame.
func FrameData(frames []Frame) [][]byte {
	data := make([][]byte, len(frames))
	for i, f := range frames {
		data[i] = f.Data
	}
	return data
}

// StaleCaptureError reports a case whose in.pcap is not what its
// packets.txt generates: an edited list whose capture was not regenerated,
// or a capture written by other means.
type StaleCaptureError struct {
	Case Case
	// Detail says how they differ, e.g. "packet 3 (packets.txt line 5)
	// differs".
	Detail string
}

func (e *StaleCaptureError) Error() string {
	capture, list := filepath.Join(e.Case.Dir, CaseCaptureFile), filepath.Join(e.Case.Dir, CasePacketsFile)
	return fmt.Sprintf("%s is not what %s generates: %s; regenerate it with xdpc pcap -o %s %s (or xdpc test -update %s)",
		capture, list, e.Detail, capture, list, e.Case.Dir)
}

// CheckCapture checks that the case's in.pcap is, byte for byte, what its
// packets.txt generates, and returns a *StaleCaptureError saying where
// they part if not. A case without a packets.txt replays its capture as it
// is: there is nothing to check it against.
func (c Case) CheckCapture() error {
	listPath := filepath.Join(c.Dir, CasePacketsFile)
	f, err := os.Open(listPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("case %s: %w", c.Name, err)
	}
	defer f.Close()
	listed, err := ReadPacketList(listPath, f, PacketListOptions{Case: c.Name})
	if err != nil {
		return &CaseError{Case: c.Name, Err: err}
	}
	var want bytes.Buffer
	if err := WritePcap(&want, listed); err != nil {
		return err
	}
	have, err := os.ReadFile(filepath.Join(c.Dir, CaseCaptureFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &StaleCaptureError{Case: c, Detail: "there is no " + CaseCaptureFile}
	}
	if err != nil {
		return fmt.Errorf("case %s: %w", c.Name, err)
	}
	if bytes.Equal(have, want.Bytes()) {
		return nil
	}
	return &StaleCaptureError{Case: c, Detail: captureDifference(have, listed)}
}

// captureDifference says how the capture have differs from the frames of
// the packet list.
func captureDifference(have []byte, listed []Frame) string {
	captured, err := ReadPcap(bytes.NewReader(have))
	if err != nil {
		return fmt.Sprintf("it is not a capture xdpc reads (%v)", err)
	}
	for i := range min(len(captured), len(listed)) {
		if !bytes.Equal(captured[i].Data, listed[i].Data) {
			return fmt.Sprintf("packet %d (%s line %d) differs", i+1, CasePacketsFile, listed[i].Line)
		}
	}
	if len(captured) != len(listed) {
		return fmt.Sprintf("it holds %s, the list gives %d",
			plural(len(captured), "packet", "packets"), len(listed))
	}
	return "the frames are the same but not the file's other bytes (its header or timestamps)"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// GenerateCapture rewrites the case's in.pcap from its packets.txt and
// reports whether the file changed.
func (c Case) GenerateCapture() (bool, error) {
	want, err := c.BuildCapture()
	if err != nil {
		return false, err
	}
	path := filepath.Join(c.Dir, CaseCaptureFile)
	have, err := os.ReadFile(path)
	if err == nil && bytes.Equal(have, want) {
		return false, nil
	}
	if err := os.WriteFile(path, want, 0o644); err != nil {
		return false, fmt.Errorf("write capture: %w", err)
	}
	return true, nil
}

// BuildCapture returns the bytes in.pcap must hold.
func (c Case) BuildCapture() ([]byte, error) {
	path := filepath.Join(c.Dir, CasePacketsFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("case %s: %w", c.Name, err)
	}
	defer f.Close()
	b, err := buildCapture(path, c.Name, f)
	if err != nil {
		return nil, fmt.Errorf("case %s: %w", c.Name, err)
	}
	return b, nil
}
