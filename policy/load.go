package policy

import (
	"os"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// LoadOptions configures Load.
type LoadOptions struct {
	// Vars are -var overrides: variable name -> raw text from the command line.
	Vars map[string]string
}

// LoadFile reads the policy file at path and loads it with Load.
// A read error is returned as a single diagnostic without a range.
func LoadFile(path string, opts LoadOptions) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{diagReadFile(path, err)}
	}
	return Load(path, src, opts)
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
	l.load(src)
	sortDiagnostics(l.diags)
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
	},
}

// load runs the passes in order: parse, declare variables and apply -var,
// declare sets, decode policies, attach interfaces, then lint.
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
	l.declarePolicies(byType["policy"])
	l.declareInterfaces(byType["interface"])
	for _, b := range byType["nat"] {
		l.add(diagNotSupported("The nat block", b.DefRange))
	}
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
