package compiler_test

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/cilium/ebpf/asm"
	"slices"
	"strings"
	"testing"

	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/lab/corpus"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/policy/eval"
	"github.com/xdpc/xdpc/runtime"
)

// longListsPolicy has address and port lists far longer than a rule could
// compare inline; they compile to implicit sets. The corpus frames use
// 10/8, 2001:db8::/32 and low ports, so the lists decide some of them.
func longListsPolicy() string {
	var v4, v6, ports []string
	for i := range 8000 {
		v4 = append(v4, fmt.Sprintf("%q", fmt.Sprintf("10.%d.%d.0/24", i/256%256, i%256)))
	}
	for i := range 2500 {
		v6 = append(v6, fmt.Sprintf("%q", fmt.Sprintf("2001:db8:%x::/48", 2*i)))
	}
	for i := range 20000 {
		ports = append(ports, fmt.Sprint(1+3*i))
	}
	return fmt.Sprintf(`
policy "lists" {
  default   = "pass"
  malformed = "drop"

  rule "nets" {
    src    = [%s, %s]
    action = "count"
  }
  rule "ports" {
    proto    = ["tcp", "udp"]
    dst_port = [%s]
    action   = "drop"
  }
}
`, strings.Join(v4, ", "), strings.Join(v6, ", "), strings.Join(ports, ", "))
}

// TestLongListsAgree compiles lists of 11,000 prefixes and 20,000 ports
// (implicit sets), loads the program and checks it against the reference
// evaluator on generated frames: same action, same counters.
func TestLongListsAgree(t *testing.T) {
	src := longListsPolicy()
	cfg, diags := policy.Load("lists.hcl", []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p := cfg.Policies[0]
	art, err := compiler.Compile(cfg, p, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	implicit := 0
	for _, s := range art.Manifest.Sets {
		if s.Implicit {
			implicit++
		}
	}
	if implicit != 2 {
		t.Fatalf("%d implicit sets, want 2 (the address list and the port list)", implicit)
	}
	var elf bytes.Buffer
	if err := art.WriteELF(&elf); err != nil {
		t.Fatal(err)
	}
	prog, err := runtime.NewTestProgram(elf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	decided := map[string]int{}
	for _, pk := range corpus.Generate(99, 3000) {
		if len(pk.Frame) < runtime.MinTestFrame {
			continue
		}
		res := eval.Evaluate(p, pk.Frame)
		got, err := prog.Run(pk.Frame)
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Sorted(slices.Values(append(slices.Clone(res.Counted), res.Slot)))
		wantAction, _ := res.Verdict.XDP()
		if got.Action != wantAction || !slices.Equal(got.Moved, slices.Compact(want)) {
			t.Fatalf("%s frame %x: kernel action %d moved %v, reference %s moved %v", pk.Class, pk.Frame, got.Action, got.Moved, res.Verdict, want)
		}
		decided[res.Rule]++
		for range res.Counted {
			decided["counted by nets"]++
		}
	}
	if decided["ports"] == 0 || decided["counted by nets"] == 0 {
		t.Errorf("the lists decided too little to test them: %v", decided)
	}
}

// TestCompileRefusesHugeInlineLists checks that a list no map can hold and
// no rule can compare is refused, naming the rule, the field and a way out.
func TestCompileRefusesHugeInlineLists(t *testing.T) {
	var lengths []string
	for i := range 2049 {
		lengths = append(lengths, fmt.Sprintf(`"%d-%d"`, 100+4*i, 101+4*i))
	}
	src := fmt.Sprintf("policy \"p\" {\n  default = \"pass\"\n  rule \"sizes\" {\n    length = [%s]\n    action = \"drop\"\n  }\n}\n", strings.Join(lengths, ", "))
	cfg, diags := policy.Load("p.hcl", []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_, err := compiler.Compile(cfg, cfg.Policies[0], compiler.Options{})
	want := `compile policy "p": p.hcl:4:14 rule "sizes": length needs 4098 comparisons, more than the 4096 the kernel verifies in one test; split the list over several rules`
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
	// check reports it as a diagnostic at the list.
	le, ok := errors.AsType[*compiler.LimitError](err)
	if !ok || le.Rule != "sizes" || le.Subject.Start.Line != 4 || le.Subject.Start.Column != 14 {
		t.Errorf("error %#v, want a LimitError of rule sizes at 4:14", err)
	}
}

// TestCompileRoutesFarSkips compiles a block of TCP rules so long that a
// non-TCP packet's skip past it is further than a conditional jump
// reaches: the skip goes through jump islands, and no 32-bit jump (gotol,
// Linux 6.6 on) is emitted.
func TestCompileRoutesFarSkips(t *testing.T) {
	var b strings.Builder
	b.WriteString("policy \"p\" {\n  default = \"drop\"\n")
	for i := range 2500 {
		var ports []string
		for k := range 8 {
			ports = append(ports, fmt.Sprint(1+i*16+2*k))
		}
		fmt.Fprintf(&b, "  rule \"r%d\" {\n    proto    = \"tcp\"\n    dst_port = [%s]\n    action   = \"pass\"\n  }\n", i, strings.Join(ports, ", "))
	}
	b.WriteString("}\n")
	cfg, diags := policy.Load("p.hcl", []byte(b.String()), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	art, err := compiler.Compile(cfg, cfg.Policies[0], compiler.Options{Strategy: "skipping"})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	islands := 0
	for i, ins := range art.Instructions {
		if ins.OpCode.Class() == asm.Jump32Class && ins.OpCode.JumpOp() == asm.Ja {
			t.Fatalf("instruction %d is a 32-bit jump (gotol)", i)
		}
		if strings.HasPrefix(fmt.Sprint(ins.Source()), "jump island") {
			islands++
		}
	}
	if islands == 0 {
		t.Errorf("%d instructions and no jump island", len(art.Instructions))
	}
}
