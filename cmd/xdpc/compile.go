package main

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/policy"
)

// buildArtifact compiles policy p of cfg and writes its ELF object, as
// build does. A policy the compiler cannot express comes back as a
// diagnostic of the file; a failure to write the object as an error.
func buildArtifact(cfg *policy.Config, p *policy.Policy) ([]byte, *artifact.Artifact, *hcl.Diagnostic, error) {
	art, err := compiler.Compile(cfg, p, compiler.Options{})
	if err != nil {
		return nil, nil, compileDiagnostic(p, err), nil
	}
	var elf bytes.Buffer
	if err := art.WriteELF(&elf); err != nil {
		return nil, nil, nil, &exitError{exitSystem, err}
	}
	return elf.Bytes(), art, nil, nil
}

// compilePolicy is buildArtifact for the commands that go on with the
// artifact: a diagnostic is printed and ends the command with exit 1.
func compilePolicy(c *cobra.Command, cfg *policy.Config, p *policy.Policy) ([]byte, *artifact.Artifact, error) {
	elf, art, diag, err := buildArtifact(cfg, p)
	if diag != nil {
		if err := policy.WriteDiagnostics(c.ErrOrStderr(), map[string][]byte{cfg.Filename: cfg.Source}, hcl.Diagnostics{diag}); err != nil {
			return nil, nil, err
		}
		return nil, nil, silentExit(exitPolicy)
	}
	return elf, art, err
}

// compileDiagnostic is a compile error as a diagnostic: where a
// LimitError points, else at the policy's header.
func compileDiagnostic(p *policy.Policy, err error) *hcl.Diagnostic {
	if le, ok := errors.AsType[*compiler.LimitError](err); ok {
		return le.Diagnostic()
	}
	rng := p.DeclRange
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot compile policy",
		Detail: fmt.Sprintf("The compiler refused policy %q: %v.", p.Name, err), Subject: &rng}
}
