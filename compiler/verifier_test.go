package compiler_test

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/lab/corpus"
)

// maxVerifierWork bounds how many instructions the verifier may process per
// instruction of a program. The parser's paths (tag counts, IPv6 extension
// headers, layer-4 protocols) must meet again in one verifier state, and
// every rule must start in one state; a change that breaks either makes
// the verifier walk the program once per path, and loads (apply) slow down
// by orders of magnitude long before the kernel's limit is reached.
const maxVerifierWork = 8

var processedInsns = regexp.MustCompile(`processed (\d+) insns`)

// TestVerifierWork loads compiled programs with verifier statistics and
// checks the verifier's work stays proportional to the program's size.
func TestVerifierWork(t *testing.T) {
	cases := map[string]string{"compiled": compiledPolicy}
	for _, gp := range corpus.Policies(7, 20) {
		cases[gp.Name] = string(gp.Source)
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			art := compileSource(t, src)
			var elf bytes.Buffer
			if err := art.WriteELF(&elf); err != nil {
				t.Fatal(err)
			}
			spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(elf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
				Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats},
			})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			defer coll.Close()
			log := coll.Programs[art.Program].VerifierLog
			m := processedInsns.FindStringSubmatch(log)
			if m == nil {
				t.Fatalf("no statistics in the verifier log:\n%s", log)
			}
			processed, _ := strconv.Atoi(m[1])
			if limit := maxVerifierWork * len(art.Instructions); processed > limit {
				t.Errorf("verifier processed %d instructions for a %d-instruction program, want at most %d", processed, len(art.Instructions), limit)
			}
			t.Logf("%d instructions, verifier processed %d", len(art.Instructions), processed)
		})
	}
}
