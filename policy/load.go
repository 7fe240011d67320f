package policy

import (
	"bytes"
	"io"
	"os"
	"sort"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// LoadOptions configures Load.
type LoadOptions struct {
	// Vars are -var overrides: variable name -> raw text from the command line.
	Vars map[string]string
}

// MaxFileSize is the largest policy file ReadFile reads: far more than
// any policy needs (long lists of addresses belong in dynamic sets), and
// little enough that a wrong file given by mistake is refused at once.
const MaxFileSize = 8 << 20

// MaxErrors is how many errors Load and Format report; past it they stop
// with a "Too many errors" diagnostic, as compilers do, so that a file
// that is not a policy at all gives a screenful, not megabytes.
const MaxErrors = 20

// textProbe is how much of a file ReadFile reads before it decides
// whether the file is text at all.
const textProbe = 64 << 10

// ReadFile reads the policy file at path. A read error, a file larger
// than MaxFileSize and a file that is not text (one with a NUL byte in
// its first 64 KiB) are returned as a single diagnostic, having read no
// more of the file than it took to tell.
func ReadFile(path string) ([]byte, hcl.Diagnostics) {
	f, err := os.Open(path)
	if err != nil {
		return nil, hcl.Diagnostics{diagReadFile(path, err)}
	}
	defer f.Close()
	src := make([]byte, textProbe)
	n, err := io.ReadFull(f, src)
	src = src[:n]
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, hcl.Diagnostics{diagReadFile(path, err)}
	}
	if d := checkText(path, src); d != nil {
		return nil, hcl.Diagnostics{d}
	}
	if n == textProbe {
		var rest bytes.Buffer
		if _, err := rest.ReadFrom(io.LimitReader(f, MaxFileSize-textProbe+1)); err != nil {
			return nil, hcl.Diagnostics{diagReadFile(path, err)}
		}
		src = append(src, rest.Bytes()...)
	}
	if len(src) > MaxFileSize {
		return nil, hcl.Diagnostics{diagFileTooLarge(path)}
	}
	return src, nil
}

// LoadFile reads the policy file at path with ReadFile and loads it with
// Load.
func LoadFile(path string, opts LoadOptions) (*Config, hcl.Diagnostics) {
	src, diags := ReadFile(path)
	if diags.HasErrors() {
		return nil, diags
	}
	return Load(path, src, opts)
}

// checkText reports a NUL byte in src, where the first one is: HCL is
// text, and a binary file given by mistake deserves one diagnostic, not
// one per byte the parser cannot read.
func checkText(filename string, src []byte) *hcl.Diagnostic {
	i := bytes.IndexByte(src, 0)
	if i < 0 {
		return nil
	}
	lineStart := bytes.LastIndexByte(src[:i], '\n') + 1
	pos := hcl.Pos{Line: bytes.Count(src[:lineStart], []byte("\n")) + 1, Column: utf8.RuneCount(src[lineStart:i]) + 1, Byte: i}
	end := hcl.Pos{Line: pos.Line, Column: pos.Column + 1, Byte: i + 1}
	return diagNotText(hcl.Range{Filename: filename, Start: pos, End: end})
}

// limitErrors keeps diags up to the MaxErrors-th error and then says it
// stopped.
func limitErrors(diags hcl.Diagnostics) hcl.Diagnostics {
	errs := 0
	for i, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if errs++; errs == MaxErrors && i+1 < len(diags) {
			return append(diags[:i+1:i+1], diagTooManyErrors())
		}
	}
	return diags
}

// Load decodes and checks the policy src, named filename in diagnostics.
// It returns a Config only when there are no errors; warnings from lints
// are returned alongside it. Diagnostics are sorted by source position.
func Load(filename string, src []byte, opts LoadOptions) (*Config, hcl.Diagnostics) {
	l := &loader{
		cfg:        &Config{Filename: filename, Source: src},
		opts:       opts,
		vars:       map[string]cty.Value{},
		lintAt:     map[*Policy]hcl.Range{},
		hasDefault: map[string]bool{},
	}
	if d := checkText(filename, src); d != nil {
		return nil, hcl.Diagnostics{d}
	}
	l.load(src)
	sortDiagnostics(l.diags)
	l.diags = limitErrors(l.diags)
	if l.diags.HasErrors() {
		return nil, l.diags
	}
	return l.cfg, l.diags
}

// loader holds the state of one Load.
type loader struct {
	cfg   *Config
	opts  LoadOptions
	diags hcl.Diagnostics

	vars map[string]cty.Value
	ctx  *hcl.EvalContext
	// hasDefault names the variables that declare a default, valid or not.
	hasDefault map[string]bool
	// lintAt is where a policy's lints point: its default value.
	lintAt map[*Policy]hcl.Range
}

func (l *loader) add(ds ...*hcl.Diagnostic) { l.diags = append(l.diags, ds...) }

var fileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "set", LabelNames: []string{"name"}},
		{Type: "interface", LabelNames: []string{"ifname"}},
		{Type: "policy", LabelNames: []string{"name"}},
		{Type: "nat", LabelNames: []string{"name"}},
		{Type: "conntrack"},
		{Type: "test", LabelNames: []string{"name"}},
	},
}

// load runs the passes in order: parse, declare variables and apply -var,
// declare sets, the conntrack block, decode policies, attach interfaces,
// resolve nat blocks, decode tests, then lint.
func (l *loader) load(src []byte) {
	file, diags := hclsyntax.ParseConfig(src, l.cfg.Filename, hcl.InitialPos)
	l.add(diags...)
	if diags.HasErrors() {
		return
	}
	content, diags := file.Body.Content(fileSchema)
	l.add(diags...)
	byType := map[string][]*hcl.Block{}
	for _, b := range content.Blocks {
		byType[b.Type] = append(byType[b.Type], b)
	}
	l.declareVariables(byType["variable"])
	l.applyOverrides()
	l.buildEvalContext()
	l.declareSets(byType["set"])
	l.declareConntrack(byType["conntrack"])
	l.declarePolicies(byType["policy"])
	l.declareInterfaces(byType["interface"])
	l.declareNATs(byType["nat"])
	l.declareTests(byType["test"])
	if len(byType["policy"]) == 0 && !l.diags.HasErrors() {
		l.add(diagNoPolicy(l.cfg.Filename))
	}
	if !l.diags.HasErrors() {
		l.lint()
	}
}

// sortDiagnostics orders diagnostics without a range first, then by position.
func sortDiagnostics(ds hcl.Diagnostics) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i].Subject, ds[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}

// checkDuplicate records name at rng in seen and reports a second declaration.
func (l *loader) checkDuplicate(kind, name string, rng hcl.Range, seen map[string]hcl.Range) bool {
	if first, dup := seen[name]; dup {
		l.add(diagDuplicate(kind, name, rng, first))
		return false
	}
	seen[name] = rng
	return true
}

func labelRange(b *hcl.Block) hcl.Range {
	if len(b.LabelRanges) > 0 {
		return b.LabelRanges[0]
	}
	return b.DefRange
}
