package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/policy"
)

// GitHub Actions reads workflow commands such as
// "::error file=F,line=L,col=C::message" from a step's output and shows
// each as an annotation on that line of the pull request. check and test
// print them, beside their usual output, when GITHUB_ACTIONS=true.

// annotating reports whether output should carry GitHub annotations: it
// runs in GitHub Actions, which sets GITHUB_ACTIONS=true.
func annotating() bool { return os.Getenv("GITHUB_ACTIONS") == "true" }

// reportDiagnostics prints diags for a person on c's stderr, with the
// source lines of files, and as annotations on its stdout in GitHub
// Actions.
func reportDiagnostics(c *cobra.Command, files map[string][]byte, diags hcl.Diagnostics) error {
	if err := policy.WriteDiagnostics(c.ErrOrStderr(), files, diags); err != nil {
		return err
	}
	if annotating() {
		writeAnnotations(c.OutOrStdout(), diags)
	}
	return nil
}

// writeAnnotations prints each diagnostic as a workflow command: its
// severity, where it is, and its summary and detail as the message.
func writeAnnotations(w io.Writer, diags hcl.Diagnostics) {
	for _, d := range diags {
		level := "error"
		if d.Severity == hcl.DiagWarning {
			level = "warning"
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += "\n" + d.Detail
		}
		var at annotationPlace
		if s := d.Subject; s != nil {
			at = annotationPlace{File: s.Filename, Line: s.Start.Line, Col: s.Start.Column}
		}
		writeAnnotation(w, level, at, msg)
	}
}

// annotationPlace is where an annotation points; zero fields are left out.
type annotationPlace struct {
	File      string
	Line, Col int
}

// writeAnnotation prints one workflow command, escaped as GitHub reads
// them: "%", CR and LF in the message; besides those, ":" and "," in
// property values.
func writeAnnotation(w io.Writer, level string, at annotationPlace, msg string) {
	var props []string
	if at.File != "" {
		props = append(props, "file="+escapeProperty(at.File))
	}
	if at.Line > 0 {
		props = append(props, fmt.Sprintf("line=%d", at.Line))
	}
	if at.Col > 0 {
		props = append(props, fmt.Sprintf("col=%d", at.Col))
	}
	cmd := "::" + level
	if len(props) > 0 {
		cmd += " " + strings.Join(props, ",")
	}
	fmt.Fprintf(w, "%s::%s\n", cmd, escapeData(msg))
}

var (
	dataEscaper     = strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A")
	propertyEscaper = strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C")
)

func escapeData(s string) string     { return dataEscaper.Replace(s) }
func escapeProperty(s string) string { return propertyEscaper.Replace(s) }
