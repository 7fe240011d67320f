package artifact_test

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/xdpc/xdpc/artifact"
)

func TestSourceInFile(t *testing.T) {
	tests := []struct{ src, want string }{
		{`12:3 rule "ssh": dst_port`, `edge.hcl:12:3 rule "ssh": dst_port`},
		{`7:15 rule "a b": count`, `edge.hcl:7:15 rule "a b": count`},
		{"parse: ipv4 header", "parse: ipv4 header"},
		{"epilogue: verdict pass", "epilogue: verdict pass"},
		{"default: drop, slot 3", "default: drop, slot 3"},
		{"0:3 rule", "0:3 rule"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := artifact.SourceInFile("edge.hcl", tt.src); got != tt.want {
			t.Errorf("SourceInFile(%q) = %q, want %q", tt.src, got, tt.want)
		}
		if got := artifact.SourceInFile("", tt.src); got != tt.src {
			t.Errorf("SourceInFile of no file changed %q to %q", tt.src, got)
		}
	}
	if p, ok := artifact.SourcePos(`12:3 rule "ssh": dst_port`); !ok || p != (artifact.Pos{Line: 12, Col: 3}) || p.String() != "12:3" {
		t.Errorf("SourcePos = %v, %v; want 12:3", p, ok)
	}
}

// TestLineInfo checks the line_info records of a compiled program as
// cilium/ebpf reads them back: the policy's name as the file, and the line
// and column a rule's comment starts with.
func TestLineInfo(t *testing.T) {
	a := compiledArtifact(t)
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(writeELF(t, a)))
	if err != nil {
		t.Fatal(err)
	}
	rules := 0
	for _, ins := range spec.Programs[a.Program].Instructions {
		line, ok := ins.Source().(*btf.Line)
		if !ok {
			continue
		}
		if line.FileName() != `policy "edge"` {
			t.Errorf("line_info file %q, want the policy's name", line.FileName())
		}
		want, ok := artifact.SourcePos(line.Line())
		if !ok {
			want = artifact.Pos{}
		} else {
			rules++
		}
		if got := (artifact.Pos{Line: int(line.LineNumber()), Col: int(line.LineColumn())}); got != want {
			t.Errorf("line_info of %q at %v, want %v", line.Line(), got, want)
		}
	}
	if rules == 0 {
		t.Error("no line_info of a rule")
	}
}
