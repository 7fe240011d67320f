package runtime

import (
	"fmt"
	"sort"

	"github.com/xdpc/xdpc/artifact"
)

// Status returns every attachment xdpc recorded in opts.Netns, or in every
// namespace when it is "", checked against the kernel: ProgramID is the
// program the link runs now, and Gone is set when the interface was
// removed (or replaced by another of the same name) since.
func Status(opts Options) ([]Attachment, error) {
	l := opts.layout()
	if err := checkNetns(l); err != nil {
		return nil, err
	}
	recs, err := recordsOf(l, opts.Netns)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		r := &recs[i]
		a, err := loadAttached(l.withNetns(r.Netns), r.Interface)
		if err != nil {
			return nil, err
		}
		if a == nil {
			r.Gone = true
			continue
		}
		r.ProgramID, r.LinkID = a.rec.ProgramID, a.rec.LinkID
		r.Gone = a.defunct || a.ifindex != r.Ifindex
		a.close()
		if r.Egress != nil {
			if err := checkEgress(l.withNetns(r.Netns), r); err != nil {
				return nil, err
			}
		}
		if !r.Gone {
			if name, err := interfaceName(l.withNetns(r.Netns).nsName, r.Ifindex); err == nil && name != r.Interface {
				r.RenamedTo = name
			}
		}
	}
	return recs, nil
}

// checkEgress sets r.Egress to what the kernel runs on the interface's
// egress now.
func checkEgress(l layout, r *Attachment) error {
	eg := *r.Egress
	r.Egress = &eg
	if r.Gone {
		eg.Gone = true
		return nil
	}
	e, err := loadEgress(l, r.Interface, r.Ifindex, &eg)
	if err != nil {
		return err
	}
	defer e.close()
	prog, lk, err := e.programID()
	if err != nil {
		return err
	}
	eg.ProgramID, eg.Gone = prog, prog == 0
	if lk != 0 {
		eg.LinkID = lk
	}
	return nil
}

// RuleStats is one counter slot of an applied policy.
type RuleStats struct {
	Rule string            `json:"rule"`
	Kind artifact.SlotKind `json:"kind"`
	// Pos is where the rule is written, "LINE:COL": artifacts name no file.
	Pos     string `json:"pos,omitempty"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// PolicyStats are the counters of one applied policy. A policy's counters
// are shared by every interface that runs it.
type PolicyStats struct {
	Policy     string      `json:"policy"`
	Hash       string      `json:"hash"`
	Interfaces []string    `json:"interfaces"`
	Rules      []RuleStats `json:"rules"`
}

// Stats reads the counters of every applied policy, sorted by policy
// name; with opts.Netns, of the policies attached in that namespace, with
// their interfaces there. (A policy's counters are shared by all of its
// interfaces, in whatever namespace.)
func Stats(opts Options) ([]PolicyStats, error) {
	l := opts.layout()
	if err := checkNetns(l); err != nil {
		return nil, err
	}
	recs, err := recordsOf(l, opts.Netns)
	if err != nil {
		return nil, err
	}
	byPolicy := map[string]*PolicyStats{}
	var names []string
	for _, r := range recs {
		ps := byPolicy[r.Policy]
		if ps == nil {
			ps = &PolicyStats{Policy: r.Policy, Hash: r.Hash}
			byPolicy[r.Policy] = ps
			names = append(names, r.Policy)
		}
		ifname := r.Interface
		if r.Netns != hostNetns {
			ifname = r.Netns + "/" + ifname
		}
		ps.Interfaces = append(ps.Interfaces, ifname)
	}
	sort.Strings(names)
	var out []PolicyStats
	for _, name := range names {
		ps := byPolicy[name]
		if err := readPolicyCounters(l, ps); err != nil {
			return nil, err
		}
		out = append(out, *ps)
	}
	return out, nil
}

// PolicyCounters reads the kept counters of a policy applied before,
// whether or not an interface runs it now.
func PolicyCounters(opts Options, policy string) (*PolicyStats, error) {
	if err := checkName("policy", policy); err != nil {
		return nil, err
	}
	ps := &PolicyStats{Policy: policy}
	if err := readPolicyCounters(opts.layout(), ps); err != nil {
		return nil, err
	}
	return ps, nil
}

// readPolicyCounters fills ps.Rules from the policy's kept counters: for
// each slot of the current generation, what that rule (by name and kind)
// counted in every generation of the policy's counter maps. Counts of
// rules that no longer exist are not shown; they are shown again, with
// what they counted before, if the rule comes back.
func readPolicyCounters(l layout, ps *PolicyStats) error {
	m, err := readKeptManifest(l, ps.Policy)
	if err != nil {
		return err
	}
	ps.Hash = m.Hash
	if m.Counters.Map == "" {
		return nil
	}
	slots, sums, err := policyCounts(l, ps.Policy, m)
	if err != nil {
		return fmt.Errorf("read counters of policy %s: %w", ps.Policy, err)
	}
	for _, s := range slots {
		v := sums[s.ID()]
		ps.Rules = append(ps.Rules, RuleStats{Rule: s.Name, Kind: s.Kind, Pos: s.Pos.String(), Packets: v.Packets, Bytes: v.Bytes})
	}
	return nil
}
