package compiler_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/runtime"
)

var update = flag.Bool("update", false, "rewrite the golden sections of testdata/*.txtar")

// parserCase is the golden case whose asm section shows the whole program;
// the others show the code after the parser.
const parserCase = "parser.txtar"

// TestGolden compiles the policy.hcl of every testdata/*.txtar and compares
// the stages' text with its sections: diagnostics (warnings of the checked
// policy), ir (the IR after its passes) and asm (the annotated bytecode).
// It also loads each program into the kernel: a golden the verifier
// rejects is no golden.
func TestGolden(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no golden cases in testdata")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			ar, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			src := section(ar, "policy.hcl")
			if src == "" {
				t.Fatalf("%s: no policy.hcl section", path)
			}
			cfg, diags := policy.Load("policy.hcl", []byte(src), policy.LoadOptions{})
			var rendered bytes.Buffer
			if err := policy.WriteDiagnostics(&rendered, map[string][]byte{"policy.hcl": []byte(src)}, diags); err != nil {
				t.Fatal(err)
			}
			if diags.HasErrors() {
				t.Fatalf("policy does not load:\n%s", rendered.String())
			}
			p := cfg.Policies[0]
			prog, err := compiler.BuildIR(cfg, p, compiler.Options{})
			if err != nil {
				t.Fatalf("build ir: %v", err)
			}
			art, err := compiler.Compile(cfg, p, compiler.Options{})
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			asmText := art.Disassemble()
			if filepath.Base(path) != parserCase {
				asmText = afterParser(asmText)
			}
			got := map[string]string{"diagnostics": rendered.String(), "ir": prog.String(), "asm": asmText}
			names := []string{"diagnostics", "ir", "asm"}
			if art.Egress != nil || section(ar, "egress") != "" {
				names = append(names, "egress")
				if art.Egress != nil {
					eg := &artifact.Artifact{Program: art.Egress.Name, Instructions: art.Egress.Instructions}
					got["egress"] = egressParts(eg.Disassemble())
				}
			}
			for _, name := range names {
				if *update {
					setSection(ar, name, got[name])
					continue
				}
				if diff := cmp.Diff(section(ar, name), got[name]); diff != "" {
					t.Errorf("section %s (-want +got):\n%s", name, diff)
				}
			}
			if *update {
				if err := os.WriteFile(path, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			loadArtifact(t, art)
		})
	}
}

// afterParser drops the disassembly up to the first instruction that does
// not come from the entry or the parser, and renumbers what is left from
// there, so a parser change does not touch every golden.
func afterParser(dis string) string {
	lines := strings.SplitAfter(dis, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "\t; ") || strings.HasPrefix(l, "\t; entry:") || strings.HasPrefix(l, "\t; parse:") {
			continue
		}
		// Keep a label that names this run's first instruction.
		if i > 0 && strings.HasPrefix(lines[i-1], "L") {
			i--
		}
		rest := strings.Join(lines[i:], "")
		m := insnOffset.FindStringSubmatch(rest)
		if m == nil {
			return dis
		}
		base, _ := strconv.Atoi(m[1])
		rebase := func(re *regexp.Regexp, format string) {
			rest = re.ReplaceAllStringFunc(rest, func(s string) string {
				n, _ := strconv.Atoi(re.FindStringSubmatch(s)[1])
				return fmt.Sprintf(format, n-base)
			})
		}
		rebase(insnOffset, "\t%4d:")
		rebase(labelRef, "L%d")
		return lines[0] + "\t... the parser; offsets count from here\n" + rest
	}
	return dis
}

// egressParts keeps of the egress program's disassembly what is its own:
// the entry, which pulls the headers of a socket buffer, and the commit
// of the host's own packets; the parser and the tracker between are the
// XDP program's, which its asm section shows.
func egressParts(dis string) string {
	lines := strings.SplitAfter(dis, "\n")
	var b strings.Builder
	state := "entry"
	for i, l := range lines {
		if strings.HasPrefix(l, "\t; ") {
			switch {
			case state == "entry" && !strings.HasPrefix(l, "\t; entry:"):
				state = "between"
				b.WriteString("\t... the parser and the tracker, as in the XDP program\n")
			case state == "between" && strings.HasPrefix(l, "\t; commit:"):
				state = "commit"
				if i > 0 && strings.HasPrefix(lines[i-1], "L") {
					b.WriteString(lines[i-1])
				}
			}
		}
		if state != "between" {
			b.WriteString(l)
		}
	}
	return b.String()
}

var (
	insnOffset = regexp.MustCompile(`(?m)^\t *(\d+):`)
	labelRef   = regexp.MustCompile(`L(\d+)`)
)

func section(ar *txtar.Archive, name string) string {
	for _, f := range ar.Files {
		if f.Name == name {
			return string(f.Data)
		}
	}
	return ""
}

func setSection(ar *txtar.Archive, name, data string) {
	for i, f := range ar.Files {
		if f.Name == name {
			ar.Files[i].Data = []byte(data)
			return
		}
	}
	ar.Files = append(ar.Files, txtar.File{Name: name, Data: []byte(data)})
}

// loadArtifact loads art into the kernel through its ELF form, as xdpc does,
// and fails the test with the verifier's report if it is refused.
func loadArtifact(t *testing.T, art *artifact.Artifact) {
	t.Helper()
	var elf bytes.Buffer
	if err := art.WriteELF(&elf); err != nil {
		t.Fatalf("write elf: %v", err)
	}
	prog, err := runtime.NewTestProgram(elf.Bytes())
	if err != nil {
		if rej, ok := errors.AsType[*runtime.VerifierRejection](err); ok {
			t.Fatal(rej.Report())
		}
		t.Fatalf("load: %v", err)
	}
	prog.Close()
}
