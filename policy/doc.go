// Package policy decodes and checks xdpc policy files.
//
// Load parses an HCL policy, resolves variables (with -var overrides) and
// set references, parses and normalises every match value, checks that
// each rule can match something, and runs lints. The result is a *Config:
// the checked model that the compiler and the reference evaluator consume,
// with the invariants documented on each type in model.go.
//
// Test blocks are checked against the policy they name (Config.Tests):
// verdicts, rule names and ct_state values. Their packets stay text with
// its source range; package lab, which owns the packet syntax, parses and
// runs them, so that this package never depends on it.
//
// Errors in the policy are never Go errors: they are hcl.Diagnostics with a
// terse Summary, a full-sentence Detail and a Subject range, all of them
// collected in one run. Load returns a Config only when there is no error;
// warnings (lints) come with it. WriteDiagnostics renders diagnostics as
// "FILE:LINE:COL: error: Summary" with a source snippet. Every message is
// built in diagnostics.go so the wording stays consistent.
//
// Format rewrites a policy file in canonical layout; Dump renders the
// checked model as stable text for golden files; PolicyHash identifies a
// policy and the sets it uses.
package policy
