package policy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// WriteDiagnostics renders diags for a person. The first line of each is
// "FILE:LINE:COL: error: Summary" (or "warning"), FILE exactly as the
// Subject range's Filename; then the source line with the subject
// underlined, when files holds the source; then the Detail. Diagnostics
// are separated by a blank line.
func WriteDiagnostics(w io.Writer, files map[string][]byte, diags hcl.Diagnostics) error {
	bw := bufio.NewWriter(w)
	for i, d := range diags {
		if i > 0 {
			bw.WriteString("\n")
		}
		writeDiagnostic(bw, files, d)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write diagnostics: %w", err)
	}
	return nil
}

func writeDiagnostic(w *bufio.Writer, files map[string][]byte, d *hcl.Diagnostic) {
	sev := "error"
	if d.Severity == hcl.DiagWarning {
		sev = "warning"
	}
	if d.Subject != nil {
		s := d.Subject
		fmt.Fprintf(w, "%s:%d:%d: %s: %s\n", s.Filename, s.Start.Line, s.Start.Column, sev, d.Summary)
		writeSnippet(w, files[s.Filename], *s)
	} else {
		fmt.Fprintf(w, "%s: %s\n", sev, d.Summary)
	}
	if d.Detail != "" {
		fmt.Fprintf(w, "%s\n", d.Detail)
	}
}

// writeSnippet prints the subject's first line, numbered, with carets
// under the subject (to the end of the line if the subject goes on).
func writeSnippet(w *bufio.Writer, src []byte, rng hcl.Range) {
	start := rng.Start.Byte
	if src == nil || start < 0 || start > len(src) {
		return
	}
	lineStart := bytes.LastIndexByte(src[:start], '\n') + 1
	lineEnd := len(src)
	if i := bytes.IndexByte(src[start:], '\n'); i >= 0 {
		lineEnd = start + i
	}
	line := strings.TrimRight(string(src[lineStart:lineEnd]), "\r")
	start = min(start, lineStart+len(line)) // a subject on a trailing "\r"
	end := rng.End.Byte
	if end > lineStart+len(line) || end < start {
		end = lineStart + len(line)
	}
	prefix := line[:start-lineStart]
	subject := line[start-lineStart : end-lineStart]
	num := fmt.Sprintf("%4d", rng.Start.Line)
	fmt.Fprintf(w, "%s | %s\n", num, line)
	var pad strings.Builder
	for _, r := range prefix {
		if r == '\t' {
			pad.WriteByte('\t')
		} else {
			pad.WriteByte(' ')
		}
	}
	carets := max(1, utf8.RuneCountInString(subject))
	fmt.Fprintf(w, "%s | %s%s\n", strings.Repeat(" ", len(num)), pad.String(), strings.Repeat("^", carets))
}

// Format returns src in canonical layout. Only a file that parses is
// formatted; otherwise the syntax errors are returned.
func Format(filename string, src []byte) ([]byte, hcl.Diagnostics) {
	_, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	return hclwrite.Format(src), diags
}
