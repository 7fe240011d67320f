package compiler_test

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

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
	cases := map[string]string{"compiled": compiledPolicy, "tracking": fmt.Sprintf(trackingPolicy, 4096),
		"tracking-100": trackingRules(100), "tracking-300": trackingRules(300),
		"nat-outside": natPolicy, "nat-inside": insideFirst(natPolicy),
		"nat-inside-64-probes": insideFirst(strings.Replace(natPolicy, `ports = "20000-20003"`, "", 1))}
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
			progs := map[string]asm.Instructions{art.Program: art.Instructions}
			if art.Egress != nil {
				progs[art.Egress.Name] = art.Egress.Instructions
			}
			for name, insns := range progs {
				log := coll.Programs[name].VerifierLog
				m := processedInsns.FindStringSubmatch(log)
				if m == nil {
					t.Fatalf("%s: no statistics in the verifier log:\n%s", name, log)
				}
				processed, _ := strconv.Atoi(m[1])
				if limit := maxVerifierWork * len(insns); processed > limit {
					t.Errorf("%s: verifier processed %d instructions for a %d-instruction program, want at most %d", name, processed, len(insns), limit)
				}
				t.Logf("%s: %d instructions, verifier processed %d", name, len(insns), processed)
			}
		})
	}
}

// trackingRules is a policy of n rules that test ct_state among other
// fields, every fifth rule none.
func trackingRules(n int) string {
	var b strings.Builder
	b.WriteString("policy \"tracking\" {\n  default = \"drop\"\n")
	for i := range n {
		fmt.Fprintf(&b, "  rule \"r%d\" {\n", i)
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "    ct_state = [\"established\", \"related\"]\n    src = \"10.%d.0.0/16\"\n    action = \"pass\"\n", i%256)
		case 1:
			fmt.Fprintf(&b, "    ct_state = \"new\"\n    proto = \"tcp\"\n    dst_port = %d\n    action = \"pass\"\n", 1000+i)
		case 2:
			fmt.Fprintf(&b, "    proto = \"udp\"\n    dst_port = %d\n    action = \"drop\"\n", 2000+i)
		case 3:
			fmt.Fprintf(&b, "    ct_state = \"invalid\"\n    dst = \"2001:db8:%x::/48\"\n    action = \"count\"\n", i)
		default:
			b.WriteString("    ct_state = \"!new\"\n    proto = \"icmp\"\n    icmp_type = 8\n    action = \"pass\"\n")
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// maxRuleWork bounds the verifier's work per instruction that rules add
// to a tracking policy: about 1.5 when every rule starts in one verifier
// state whatever the tracker found; 3 when the tracker's paths reach the
// rules in two states (a stored zero the verifier knows of, say), so the
// whole rule chain is verified twice.
const maxRuleWork = 2.0

// TestTrackingRulesVerifiedOnce compiles tracking policies of 100 and 300
// rules and checks what the 200 rules more cost the verifier.
func TestTrackingRulesVerifiedOnce(t *testing.T) {
	work := func(n int) (insns, processed int) {
		art := compileSource(t, trackingRules(n))
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
		m := processedInsns.FindStringSubmatch(coll.Programs[art.Program].VerifierLog)
		if m == nil {
			t.Fatal("no statistics in the verifier log")
		}
		processed, _ = strconv.Atoi(m[1])
		return len(art.Instructions), processed
	}
	i1, p1 := work(100)
	i3, p3 := work(300)
	perInsn := float64(p3-p1) / float64(i3-i1)
	t.Logf("100 rules: %d instructions, %d processed; 300 rules: %d, %d; %.2f per rule instruction", i1, p1, i3, p3, perInsn)
	if perInsn > maxRuleWork {
		t.Errorf("the verifier processed %.2f instructions per rule instruction, want at most %.1f: the rules are verified more than once", perInsn, maxRuleWork)
	}
}

// insideFirst is a NAT policy file with its "inside" policy moved first,
// the one compileSource compiles.
func insideFirst(src string) string {
	i := strings.Index(src, "policy \"inside\"")
	j := strings.Index(src[i:], "\n}\n") + i + 3
	k := strings.Index(src, "policy \"outside\"")
	return src[:k] + src[i:j] + "\n" + src[k:i] + src[j:]
}
