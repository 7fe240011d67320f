package artifact

import (
	"fmt"
	"strconv"
	"strings"
)

// Pos is a position in the policy source: line and column, counted from
// 1; the zero Pos is no position. It names no file: an artifact is the
// same whichever path its policy was read from, and a reader that knows
// the file names it when it shows a position (SourceInFile).
type Pos struct {
	Line int `json:"line,omitempty"`
	Col  int `json:"col,omitempty"`
}

// IsValid reports whether p is a position.
func (p Pos) IsValid() bool { return p.Line > 0 }

// String renders p as "LINE:COL", "" for no position.
func (p Pos) String() string {
	if !p.IsValid() {
		return ""
	}
	return fmt.Sprintf("%d:%d", p.Line, p.Col)
}

// Every instruction of a compiled program carries a source comment. One
// that comes from a rule starts with the rule's position and a space,
// "12:3 rule \"ssh\": dst_port"; the parser's and the epilogue's start with
// their step, "parse: ipv4 header".

// SourcePos returns the position a source comment starts with, and false
// when it starts with none.
func SourcePos(src string) (Pos, bool) {
	head, _, ok := strings.Cut(src, " ")
	if !ok {
		head = src
	}
	lineText, colText, ok := strings.Cut(head, ":")
	if !ok {
		return Pos{}, false
	}
	line, err1 := strconv.Atoi(lineText)
	col, err2 := strconv.Atoi(colText)
	if err1 != nil || err2 != nil || line <= 0 || col <= 0 {
		return Pos{}, false
	}
	return Pos{line, col}, true
}

// SourceInFile names file in a source comment that starts with a position
// ("12:3 rule ..." becomes "edge.hcl:12:3 rule ..."), for showing it to
// someone who knows which file the policy came from. Other comments, and
// any comment when file is "", come back unchanged.
func SourceInFile(file, src string) string {
	if file == "" {
		return src
	}
	if _, ok := SourcePos(src); !ok {
		return src
	}
	return file + ":" + src
}
