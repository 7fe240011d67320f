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

// SortDiagnostics orders diags as Load does: those without a range
// first, then by file and position; for callers that add diagnostics of
// their own to Load's.
func SortDiagnostics(diags hcl.Diagnostics) { sortDiagnostics(diags) }

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
	prefix, subject, suffix := clipSnippet(printable(line[:start-lineStart]),
		printable(line[start-lineStart:end-lineStart]), printable(line[end-lineStart:]))
	num := fmt.Sprintf("%4d", rng.Start.Line)
	fmt.Fprintf(w, "%s | %s%s%s\n", num, prefix, subject, suffix)
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

// snippetWidth is the most characters of a source line a snippet shows:
// a line of garbage megabytes long is shown as the part around the
// subject.
const snippetWidth = 120

// clipSnippet shortens a line split into the text before, of and after
// the subject to about snippetWidth characters around the subject,
// marking what it left out with "…".
func clipSnippet(prefix, subject, suffix string) (string, string, string) {
	p, s, x := []rune(prefix), []rune(subject), []rune(suffix)
	if len(p)+len(s)+len(x) <= snippetWidth {
		return prefix, subject, suffix
	}
	if len(s) > snippetWidth/2 {
		s = append(s[:snippetWidth/2:snippetWidth/2], '…')
	}
	if keep := snippetWidth / 3; len(p) > keep {
		p = append([]rune{'…'}, p[len(p)-keep:]...)
	}
	if keep := max(0, snippetWidth-len(p)-len(s)); len(x) > keep {
		x = append(x[:keep:keep], '…')
	}
	return string(p), string(s), string(x)
}

// printable replaces control characters and bytes that are not UTF-8 by
// '?', so that a snippet of a garbled file cannot drive the terminal.
func printable(text string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || r == 0x7f || (r < 0x20 && r != '\t') {
			return '?'
		}
		return r
	}, text)
}

// Format returns src in canonical layout. Only a file that parses is
// formatted; otherwise the syntax errors are returned.
func Format(filename string, src []byte) ([]byte, hcl.Diagnostics) {
	if d := checkText(filename, src); d != nil {
		return nil, hcl.Diagnostics{d}
	}
	_, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		sortDiagnostics(diags)
		return nil, limitErrors(diags)
	}
	return hclwrite.Format(src), diags
}
