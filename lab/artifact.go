package lab

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/runtime"
)

// ErrNeedsPolicy is returned by NewArtifactBackend for what an artifact
// cannot serve: the reference backend evaluates the policy's rules, which
// an artifact holds only as bytecode.
var ErrNeedsPolicy = errors.New("needs the policy source")

// NewArtifactBackend returns the named backend for the artifact elf
// (an ELF object 'xdpc build' wrote). The kernel and lab backends load
// its program as apply would; the verdict of each frame is the XDP action
// the program returns and the deciding rule the counter slot it moved, as
// the manifest names them. The lab runs each frame under BPF_PROG_TEST_RUN
// before it sends it, for that action, then checks that the frame goes
// where the action says. The reference backend returns ErrNeedsPolicy.
func NewArtifactBackend(name string, elf []byte, opts LabOptions) (Backend, error) {
	switch name {
	case BackendReference:
		return nil, fmt.Errorf("the reference backend %w: it evaluates the rules, which an artifact holds only as bytecode; replay the policy file, or use --backend kernel or lab", ErrNeedsPolicy)
	case BackendKernel, BackendLab:
	default:
		return nil, UnknownBackendError(name)
	}
	prog, err := runtime.NewTestProgram(elf)
	if err != nil {
		return nil, err
	}
	slots, err := newArtifactSlots(prog.Manifest())
	if err != nil {
		prog.Close()
		return nil, err
	}
	if name == BackendKernel {
		return newKernelBackendOf(prog, slots)
	}
	return newLabBackendOf(prog, slots, true, opts)
}

// artifactSlots are the counter slots of an artifact, as its manifest
// names them. The manifest does not say what a rule decides, so the
// verdict is the action the program returned.
type artifactSlots struct {
	slots map[int]compiler.CounterSlot
	// to is the artifact's one redirect target, if it has one.
	to string
}

func newArtifactSlots(m *compiler.Manifest) (artifactSlots, error) {
	s := artifactSlots{slots: map[int]compiler.CounterSlot{}}
	for _, cs := range m.Counters.Slots {
		s.slots[cs.Slot] = cs
	}
	switch len(m.Redirects) {
	case 0:
	case 1:
		s.to = m.Redirects[0].Interface
	default:
		var names []string
		for _, r := range m.Redirects {
			names = append(names, r.Interface)
		}
		return s, fmt.Errorf("policy %q redirects to %s, and its artifact does not record which rule sends where: replay the policy file (%w)", m.Policy, strings.Join(names, ", "), ErrNeedsPolicy)
	}
	return s, nil
}

func (s artifactSlots) decide(frame []byte, moved []int, action uint32) (Verdict, error) {
	decision := -1
	var counted []int
	for _, slot := range moved {
		cs, ok := s.slots[slot]
		switch {
		case !ok:
			return Verdict{}, fmt.Errorf("counter slot %d moved, which the manifest does not name", slot)
		case cs.Kind == compiler.SlotCount:
			counted = append(counted, slot)
			continue
		case decision >= 0:
			return Verdict{}, fmt.Errorf("two deciding counters moved (slots %d and %d)", decision, slot)
		}
		decision = slot
	}
	if decision < 0 {
		return Verdict{}, errNoDecision
	}
	v := Verdict{Summary: summarize(frame), Len: len(frame), Rule: s.slots[decision].Name}
	switch action {
	case xdpPass:
		v.Action = policy.ActionPass
	case xdpDrop:
		v.Action = policy.ActionDrop
	case xdpRedirect:
		v.Action, v.To = policy.ActionRedirect, s.to
	default:
		return Verdict{}, fmt.Errorf("program returned %d, not pass, drop or redirect, and counted the packet on %q", action, v.Rule)
	}
	v.Verdict = v.Action.String()
	slices.Sort(counted)
	for _, c := range counted {
		v.Counted = append(v.Counted, s.slots[c].Name)
	}
	return v, nil
}
