package lab

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/policy/eval"
	"github.com/xdpc/xdpc/runtime"
)

// The kernel and lab backends see connection tracking through the
// datapath itself, never through the reference's table:
//
//   - a frame's ct_state is what a status probe says: a program the
//     compiler makes of a policy that counts each ct_state on its own
//     rule and drops everything, loaded on the same connection table as
//     the program under test, which it never changes (a dropped packet
//     records nothing). Its tracker is the one every tracking program
//     runs, so it reads the table as the program under test does;
//   - what a frame did to the table is the difference between the live
//     entries before and after it: no entry changed, or one, whose state
//     the line shows.
//
// Before each frame the table is aged by the time since the frame before
// (runtime.AgeConntrack), so that the capture's timeouts pass: the
// kernel's clock runs in real time, a capture's jumps.

// probeSource is the status probe's policy. Its table takes the capacity
// of the one it shares (runtime.TestProgram.LoadSharingConntrack).
const probeSource = `
policy "xdpc_ct_probe" {
  default   = "drop"
  malformed = "drop"

  rule "new" {
    ct_state = "new"
    action   = "count"
  }
  rule "established" {
    ct_state = "established"
    action   = "count"
  }
  rule "related" {
    ct_state = "related"
    action   = "count"
  }
  rule "invalid" {
    ct_state = "invalid"
    action   = "count"
  }
}
`

// ctObserver reads what the datapath's connection tracking made of each
// frame of a conversation, for a program that tracks connections.
type ctObserver struct {
	prog  *runtime.TestProgram
	probe *runtime.TestProgram
	// status is the ct_state each of the probe's counter slots counts.
	status map[int]conntrack.Status
	// last is the previous frame's time, once a frame ran.
	last    time.Duration
	started bool
}

// newCTObserver loads the status probe on prog's connection table; nil
// when prog does not track connections.
func newCTObserver(prog *runtime.TestProgram) (*ctObserver, error) {
	if prog.Manifest().Conntrack == nil {
		return nil, nil
	}
	cfg, diags := policy.Load("xdpc-ct-probe.hcl", []byte(probeSource), policy.LoadOptions{})
	if diags.HasErrors() {
		panic("lab: the status probe's policy does not load: " + diags.Error())
	}
	p := cfg.Policies[0]
	art, err := compiler.Compile(cfg, p, compiler.Options{})
	if err != nil {
		return nil, fmt.Errorf("compile the ct_state probe: %w", err)
	}
	var elf bytes.Buffer
	if err := art.WriteELF(&elf); err != nil {
		return nil, fmt.Errorf("write the ct_state probe: %w", err)
	}
	probe, err := prog.LoadSharingConntrack(elf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("load the ct_state probe: %w", err)
	}
	o := &ctObserver{prog: prog, probe: probe, status: map[int]conntrack.Status{}}
	for i, r := range p.Rules {
		s := r.Match(policy.FieldCTState).CTStates.Statuses()
		if len(s) != 1 {
			panic(fmt.Sprintf("lab: probe rule %s counts %v", r.Name, s))
		}
		o.status[i] = s[0]
	}
	return o, nil
}

// ctBefore is what the observer read before a frame ran.
type ctBefore struct {
	status conntrack.Status
	table  ctSnapshot
}

// before ages the table to frame f's time, and reads f's ct_state and
// the table as f finds them.
func (o *ctObserver) before(f Frame) (ctBefore, error) {
	if o.started && f.Time > o.last {
		if err := o.prog.AgeConntrack(f.Time - o.last); err != nil {
			return ctBefore{}, err
		}
	}
	if !o.started || f.Time > o.last {
		o.last, o.started = f.Time, true
	}
	st, err := o.statusOf(f.Data)
	if err != nil {
		return ctBefore{}, err
	}
	tbl, err := o.snapshot()
	if err != nil {
		return ctBefore{}, err
	}
	return ctBefore{status: st, table: tbl}, nil
}

// statusOf runs frame through the probe and returns the ct_state it
// counted: StatusNone (untracked) when no ct_state rule counted it.
func (o *ctObserver) statusOf(frame []byte) (conntrack.Status, error) {
	out, err := o.probe.Run(frame)
	if err != nil {
		return 0, fmt.Errorf("ct_state probe: %w", err)
	}
	st := conntrack.StatusNone
	for _, slot := range out.Moved {
		s, ok := o.status[slot]
		if !ok {
			continue
		}
		if st != conntrack.StatusNone {
			return 0, fmt.Errorf("the ct_state probe counted the frame as %s and %s", st, s)
		}
		st = s
	}
	return st, nil
}

// after reads what the frame changed in the table since b: the state of
// the one entry it created or moved, "" when it changed nothing. A frame
// that changed more than one entry is an error.
func (o *ctObserver) after(b ctBefore) (string, error) {
	tbl, err := o.snapshot()
	if err != nil {
		return "", err
	}
	return b.table.entryChanged(tbl)
}

// entryChanged is the state of the one entry that differs between s and
// later, "" when none does; more than one, or one removed, is an error.
func (s ctSnapshot) entryChanged(later ctSnapshot) (string, error) {
	changed := s.changed(later)
	switch {
	case len(changed) == 0:
		return "", nil
	case len(changed) == 1:
		if f, ok := later[changed[0]]; ok {
			return f.Entry.State.String(), nil
		}
		return "", fmt.Errorf("the frame removed %v from the connection table", changed[0])
	}
	var keys []string
	for _, k := range changed {
		keys = append(keys, fmt.Sprint(k))
	}
	return "", fmt.Errorf("the frame changed %d entries of the connection table: %s", len(changed), strings.Join(keys, ", "))
}

// reset empties the table and restarts the clock, for a new conversation.
func (o *ctObserver) reset() error {
	o.started = false
	return o.prog.FlushConntrack()
}

func (o *ctObserver) close() error { return o.probe.Close() }

// ctSnapshot is the live entries of a table, by key. A key live in both
// maps is the assured one's, which a lookup finds first.
type ctSnapshot map[conntrack.Key]runtime.ConntrackFlow

func (o *ctObserver) snapshot() (ctSnapshot, error) {
	flows, err := o.prog.ConntrackFlows()
	if err != nil {
		return nil, err
	}
	return snapshotOf(flows), nil
}

// snapshotOf is flows by key, the assured map's first.
func snapshotOf(flows []runtime.ConntrackFlow) ctSnapshot {
	s := ctSnapshot{}
	for _, f := range flows {
		if _, ok := s[f.Key]; !ok {
			s[f.Key] = f
		}
	}
	return s
}

// ctFlow is a reference flow as a snapshot holds it.
func ctFlow(f conntrack.Flow) runtime.ConntrackFlow { return runtime.ConntrackFlow{Flow: f} }

// changed lists the keys whose entry differs between s and later, in key
// order: created, moved, refreshed, put in the other map, or gone.
func (s ctSnapshot) changed(later ctSnapshot) []conntrack.Key {
	var keys []conntrack.Key
	for k, f := range later {
		if g, ok := s[k]; !ok || g != f {
			keys = append(keys, k)
		}
	}
	for k := range s {
		if _, ok := later[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i].Encode(), keys[j].Encode()) < 0 })
	return keys
}

// referenceEntry is the state of the entry a frame recorded in session s,
// "" when it recorded nothing (commit): what the kernel and lab backends
// read from the table's difference.
func referenceEntry(s *eval.Session, frame []byte, commit eval.Commit) string {
	if commit == eval.CommitNone {
		return ""
	}
	p := eval.Track(frame)
	k, _ := conntrack.NewKey(p.Family, p.Proto, p.Src, p.Dst)
	for _, f := range s.Flows(s.Now()) {
		if f.Key == k {
			return f.Entry.State.String()
		}
	}
	panic(fmt.Sprintf("lab: the session recorded %s for %v and holds no live entry of it", commit, k))
}
