package runtime

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/artifact"
)

// verifierTailLines is how much of the verifier log a rejection keeps.
const verifierTailLines = 20

// VerifierRejection is a compiled program the kernel's verifier refused. For
// a program xdpc compiled this is a bug in xdpc; the error names the policy
// line (or parser step) of the instruction the verifier stopped at, so the
// report points at the rule that exposed it.
type VerifierRejection struct {
	// Program is the kernel program name.
	Program string
	// Insn is the raw instruction offset the verifier stopped at, -1 when
	// the log names none.
	Insn int
	// Source is that instruction's source comment: "12:3 rule \"ssh\":
	// dst_port" (line and column; a caller that knows the policy file can
	// name it with artifact.SourceInFile), or a parser step such as
	// "parse: ipv4 header".
	Source string
	// Tail is the end of the verifier log.
	Tail []string
	// Err is the error from the kernel, with the whole log.
	Err *ebpf.VerifierError
}

func (r *VerifierRejection) Error() string {
	where := "an instruction the log does not name"
	if r.Insn >= 0 {
		where = fmt.Sprintf("instruction %d", r.Insn)
		if r.Source != "" {
			where += " (" + r.Source + ")"
		}
	}
	return fmt.Sprintf("verifier rejects program %s at %s: %v", r.Program, where, r.Err)
}

func (r *VerifierRejection) Unwrap() error { return r.Err }

// Report is the rejection with the log's tail, for printing to an operator.
func (r *VerifierRejection) Report() string {
	var b strings.Builder
	b.WriteString(r.Error())
	b.WriteString("\nverifier log (last lines):\n")
	for _, l := range r.Tail {
		b.WriteString("  ")
		b.WriteString(l)
		b.WriteString("\n")
	}
	return b.String()
}

// insnLine is a verifier log line that shows one instruction: "123: (bf) r1 = r6".
var insnLine = regexp.MustCompile(`^(\d+): \([0-9a-f]{2}\)`)

// describeLoadError turns a verifier rejection of spec into a
// *VerifierRejection naming the source of the failing instruction; other
// errors come back unchanged.
func describeLoadError(err error, spec *ebpf.ProgramSpec) error {
	var ve *ebpf.VerifierError
	if spec == nil || !errors.As(err, &ve) {
		return err
	}
	r := &VerifierRejection{Program: spec.Name, Insn: -1, Err: ve}
	for i := len(ve.Log) - 1; i >= 0; i-- {
		if m := insnLine.FindStringSubmatch(ve.Log[i]); m != nil {
			r.Insn, _ = strconv.Atoi(m[1])
			break
		}
	}
	if r.Insn >= 0 {
		r.Source = sourceAt(spec.Instructions, r.Insn)
	}
	tail := ve.Log
	if len(tail) > verifierTailLines {
		tail = tail[len(tail)-verifierTailLines:]
	}
	r.Tail = append([]string(nil), tail...)
	return r
}

// sourceAt is the source comment in force at raw offset off: the one of
// the instruction there, or of the nearest one before it that has one.
func sourceAt(insns asm.Instructions, off int) string {
	src := ""
	iter := insns.Iterate()
	for iter.Next() && int(iter.Offset) <= off {
		if s := iter.Ins.Source(); s != nil {
			src = s.String()
		}
	}
	return src
}

// loadedProgram is the spec of the program a failed collection load names
// (cilium/ebpf says "program NAME: ..."): the egress program's when it was
// the one refused, else the XDP program's.
func loadedProgram(err error, spec *ebpf.CollectionSpec, m *artifact.Manifest) *ebpf.ProgramSpec {
	if m.Egress != "" && strings.Contains(err.Error(), "program "+m.Egress+":") {
		return spec.Programs[m.Egress]
	}
	return spec.Programs[m.Program]
}
