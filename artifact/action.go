package artifact

import (
	"fmt"
	"slices"
)

// Action is an XDP program's return code, the kernel's enum xdp_action:
// what happens to the frame.
type Action uint32

const (
	// ActionAborted is XDP_ABORTED: the program failed; the kernel drops
	// the frame and raises the xdp_exception tracepoint. xdpc programs
	// never return it.
	ActionAborted Action = iota
	// ActionDrop is XDP_DROP: the frame is discarded.
	ActionDrop
	// ActionPass is XDP_PASS: the frame goes on to the network stack.
	ActionPass
	// ActionTX is XDP_TX: the frame leaves through the interface it came in on.
	ActionTX
	// ActionRedirect is XDP_REDIRECT: the frame leaves through the interface
	// bpf_redirect_map chose (xdpc: the rule's target in the redirect map).
	ActionRedirect
)

var actionNames = [...]string{
	ActionAborted:  "aborted",
	ActionDrop:     "drop",
	ActionPass:     "pass",
	ActionTX:       "tx",
	ActionRedirect: "redirect",
}

// String is the action's name in the policy language and in verdict
// lines: "drop", "pass", "redirect" (and "aborted", "tx").
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", uint32(a))
}

// MarshalText encodes the action by name.
func (a Action) MarshalText() ([]byte, error) {
	if int(a) >= len(actionNames) {
		return nil, fmt.Errorf("encode action: unknown action %d", uint32(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText decodes an action name.
func (a *Action) UnmarshalText(text []byte) error {
	i := slices.Index(actionNames[:], string(text))
	if i < 0 {
		return fmt.Errorf("decode action: unknown action %q", text)
	}
	*a = Action(i)
	return nil
}
