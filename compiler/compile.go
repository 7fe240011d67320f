package compiler

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/asm"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/policy"
)

// Options configures Compile.
type Options struct {
	// Strategy chooses the classifier; "" means linear. (Room for decision trees later.)
	Strategy string
	// InlineValues is the most prefixes an address test, or ports and
	// port ranges a port test, compares inline; a longer list is looked up
	// in maps of its own. 0 means DefaultInlineValues.
	InlineValues int
}

// DefaultInlineValues is Options.InlineValues when unset: past about this
// many values one map lookup costs less than the comparisons.
const DefaultInlineValues = 32

// MaxInlineCompares is the most conditional jumps one test may emit: the
// kernel's verifier keeps a state per pending branch and refuses a program
// with more than 8,192 of them in a row. Address and port lists of any
// length go to maps; this bounds the other fields' lists.
const MaxInlineCompares = 4096

func (o Options) inlineValues() int {
	if o.InlineValues <= 0 {
		return DefaultInlineValues
	}
	return o.InlineValues
}

// Compile compiles policy p of cfg into an artifact. The result depends only
// on its inputs. An error means the compiler cannot express the policy; it
// names the rule.
func Compile(cfg *policy.Config, p *policy.Policy, opts Options) (*artifact.Artifact, error) {
	if cfg == nil || p == nil {
		return nil, errors.New("compile: no policy")
	}
	classifier, err := classifierFor(opts.Strategy)
	if err != nil {
		return nil, fmt.Errorf("compile policy %q: %w", p.Name, err)
	}
	prog, err := buildProgram(cfg, p, opts)
	if err != nil {
		return nil, fmt.Errorf("compile policy %q: %w", p.Name, err)
	}
	insns, err := emitProgram(prog, classifier, cfg.Filename)
	if err != nil {
		return nil, fmt.Errorf("compile policy %q: %w", p.Name, err)
	}
	a := &artifact.Artifact{
		Program:      prog.Name,
		License:      "GPL",
		Instructions: insns,
		Maps:         prog.maps(),
		Manifest:     buildManifest(cfg, p, prog),
	}
	if prog.Conntrack != nil {
		eg, err := emitEgress(prog, cfg.Filename)
		if err != nil {
			return nil, fmt.Errorf("compile policy %q: %w", p.Name, err)
		}
		a.Egress = eg
		a.Manifest.Egress = eg.Name
		a.Manifest.Conntrack = &artifact.ConntrackTables{Assured: prog.Conntrack.Assured.Name, Unassured: prog.Conntrack.Unassured.Name}
	}
	if n := prog.NAT; n != nil {
		a.Manifest.NAT = &artifact.NATTables{Alias: n.Alias.Name, Fragments: n.Fragments.Name, Settings: n.Settings.Name, Reserved: n.Reserved.Name}
	}
	return a, nil
}

// BuildIR lowers policy p of cfg to the IR and runs the IR passes, as
// Compile does; its String is the "ir" section of golden files.
func BuildIR(cfg *policy.Config, p *policy.Policy, opts Options) (*Program, error) {
	if cfg == nil || p == nil {
		return nil, errors.New("build ir: no policy")
	}
	return buildProgram(cfg, p, opts)
}

// buildProgram runs the IR passes. Afterwards:
//   - every rule has the counter slot of its position, default and
//     malformed the two after the rules;
//   - no address or port test compares more than Options.InlineValues
//     values: a longer list is a lookup in an implicit set "RULE:FIELD";
//     no test emits more than MaxInlineCompares conditional jumps;
//   - every set lookup points at its set's maps, one per family for cidr
//     sets, named by first use;
//   - every redirect rule has the device-map key of its target, keys by
//     first use;
//   - OpEq/OpRange values are sorted, merged and disjoint;
//   - no rule holds a positive test its other tests imply;
//   - within a rule, scalar tests come before address and MAC lists, and
//     those before map lookups;
//   - a policy that matches ct_state has its connection table (Conntrack:
//     the two maps, the timeouts); one that does not has none.
func buildProgram(cfg *policy.Config, p *policy.Policy, opts Options) (*Program, error) {
	prog, err := lowerPolicy(cfg, p)
	if err != nil {
		return nil, err
	}
	assignCounterSlots(prog)
	allocateCounters(prog)
	mergeRanges(prog)
	dropImpliedTests(prog)
	moveLongListsToMaps(prog, opts.inlineValues())
	if err := checkInlineCompares(prog, p); err != nil {
		return nil, err
	}
	if err := allocateSetMaps(prog); err != nil {
		return nil, err
	}
	allocateRedirects(prog)
	allocateConntrack(prog, cfg, p)
	allocateNAT(prog, cfg, p)
	orderTests(prog)
	return prog, nil
}

// emitProgram lays the program out as
//
//	entry, parser        -> classify | malformed (| track)
//	track (conntrack)    -> classify
//	malformed            -> epilogue
//	classify (rules)     -> epilogue, count rules fall through
//	default              -> epilogue
//	epilogue             (commits passed packets,) counts slotKey, returns the verdict
//
// Afterwards: no instruction stores metadata no test reads, every
// instruction is reachable from the entry (the verifier rejects dead code), no unconditional jump targets the next instruction,
// every jump goes forward and holds a 16-bit offset (far ones through jump
// islands; no labels remain; map loads reference maps by name), and every
// instruction carries a source comment. A program that does not track
// connections holds no instruction of the tracker or the commit.
//
// file is the policy file, for error messages only: nothing of it goes
// into the instructions.
func emitProgram(prog *Program, c Classifier, file string) (asm.Instructions, error) {
	e := newEmitter()
	e.file = file
	opts := xdpParser
	if ct := prog.Conntrack; ct != nil {
		opts.next, opts.defaults = labelTrack, trackDefaults
		to := trackOptions{next: labelClassify, assured: ct.Assured.Name, unassured: ct.Unassured.Name}
		if n := prog.NAT; n != nil {
			opts.defaults, to.alias, to.role = natDefaults, n.Alias.Name, n.Role
		}
		emitParser(e, opts)
		emitTrack(e, to)
	} else {
		emitParser(e, opts)
	}
	emitMalformed(e, prog)
	c.Emit(e, prog)
	emitEpilogue(e, prog)
	return e.finish(unreadStores(prog), prog.Name)
}

// finish runs the passes that turn emitted code into a program: dead
// metadata stores and unreachable code go, jumps to the next instruction
// go, far jumps get islands, labels become offsets; the result is checked
// for portability and its first instruction named name.
func (e *emitter) finish(dead map[int16]bool, name string) (asm.Instructions, error) {
	e.removeStores(dead)
	e.removeUnreachable()
	e.removeJumpsToNext()
	if err := e.routeFarJumps(); err != nil {
		return nil, err
	}
	insns, err := e.resolveJumps()
	if err != nil {
		return nil, err
	}
	if err := checkPortable(insns); err != nil {
		return nil, fmt.Errorf("compiler bug, please report it: %w", err)
	}
	insns[0] = insns[0].WithSymbol(name)
	return insns, nil
}
