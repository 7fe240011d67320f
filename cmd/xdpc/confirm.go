package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/runtime"
)

func newConfirmCommand() *cobra.Command {
	var (
		rf             runtimeFlags
		keep, rollBack bool
	)
	c := &cobra.Command{
		Use:   "confirm [--keep | --rollback]",
		Short: "Keep the policy an 'xdpc apply --confirm' applied (or restore the previous one)",
		Long: `Keep the policy that 'xdpc apply --confirm' applied and waits to have
confirmed; that apply then ends with exit code 0.

When the waiting apply is gone (killed with SIGKILL, or it crashed), nothing
rolled the change back and nothing will: confirm says so and changes nothing
(exit 1). 'xdpc status' shows a pending confirmation and whether its apply
still waits. Then decide:

  --keep      keep the policy it applied
  --rollback  give every interface it changed its previous program back, or
              detach it when it had none

While the apply still waits, --rollback is refused: interrupt it (Ctrl-C, or
kill -INT PID) to roll back at once. An 'xdpc apply' over a confirmation
whose apply is gone replaces it, and says so.`,
		Args: exactArgs(0, "no arguments"),
		PreRunE: func(c *cobra.Command, args []string) error {
			if keep && rollBack {
				return usageError(fmt.Errorf("confirm: --keep and --rollback exclude each other"))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			in := holdInterruptions(c.ErrOrStderr())
			defer in.stop()
			out := c.OutOrStdout()
			switch {
			case rollBack:
				p, err := runtime.RollBack(rf.options())
				if err != nil {
					if errors.Is(err, runtime.ErrPending) || errors.Is(err, runtime.ErrNothingPending) {
						return confirmationError(err)
					}
					return &exitError{exitSystem, fmt.Errorf("roll back: %w; the previous programs stay saved: 'xdpc confirm --rollback' tries again", err)}
				}
				for _, prev := range p.Previous {
					if prev.Artifact == "" {
						fmt.Fprintf(out, "detached %s: it had no program before\n", previousName(prev))
					} else {
						fmt.Fprintf(out, "restored the previous policy on %s\n", previousName(prev))
					}
				}
			case keep:
				p, err := runtime.Keep(rf.options())
				if err != nil {
					return confirmationError(err)
				}
				for _, prev := range p.Previous {
					fmt.Fprintf(out, "kept the policy applied to %s\n", previousName(prev))
				}
			default:
				p, err := runtime.Confirm(rf.options())
				if errors.Is(err, runtime.ErrWaiterGone) {
					return policyError(fmt.Errorf("%w; keep it with 'xdpc confirm --keep', or restore the previous policy with 'xdpc confirm --rollback'", err))
				}
				if err != nil {
					return confirmationError(err)
				}
				for _, prev := range p.Previous {
					fmt.Fprintf(out, "confirmed %s\n", previousName(prev))
				}
			}
			if sig := in.came(); sig != nil {
				return in.exitAfter(sig, "came meanwhile; the above was done")
			}
			return nil
		},
	}
	holdSignals(c)
	rf.register(c, runtimeUse{noNetns: "it keeps the apply that waits for confirmation, in whichever namespaces that changed"})
	c.Flags().BoolVar(&keep, "keep", false, "keep the policy also when the apply that waited for confirmation is gone")
	c.Flags().BoolVar(&rollBack, "rollback", false, "restore the previous policy now, when the apply that waited for confirmation is gone")
	return c
}

func previousName(prev runtime.Previous) string {
	return ifaceName(runtime.Attachment{Netns: prev.Netns, Interface: prev.Interface})
}

// confirmationError gives the refusals that a pending confirmation causes
// (or the lack of one) exit code 1: the operator asked for what cannot be
// done now, and nothing on the host failed. Other errors go to
// runtimeError.
func confirmationError(err error) error {
	for _, refused := range []error{runtime.ErrPending, runtime.ErrWaiterGone, runtime.ErrNothingPending} {
		if errors.Is(err, refused) {
			return policyError(err)
		}
	}
	return runtimeError(err)
}

// confirmState is how 'status --json' shows the confirmation an
// attachment awaits.
type confirmState struct {
	Deadline time.Time `json:"deadline"`
	PID      int       `json:"pid"`
	// Waiting is false when the apply that waits is gone: nothing rolls
	// back at the deadline.
	Waiting bool `json:"waiting"`
}

// statusRecord is one line of 'status --json'.
type statusRecord struct {
	runtime.Attachment
	Confirm *confirmState `json:"confirm,omitempty"`
}

// withConfirmation returns a's line of 'status --json' with the
// confirmation p when a is among what p changed.
func withConfirmation(a runtime.Attachment, p *runtime.Pending, waiting bool) statusRecord {
	r := statusRecord{Attachment: a}
	if p == nil {
		return r
	}
	for _, prev := range p.Previous {
		if prev.Netns == a.Netns && prev.Interface == a.Interface {
			r.Confirm = &confirmState{Deadline: p.Deadline, PID: p.PID, Waiting: waiting}
		}
	}
	return r
}

// describeConfirmation writes the line of 'status' about p.
func describeConfirmation(w io.Writer, p *runtime.Pending, waiting bool) {
	ifaces := strings.Join(p.Interfaces(), ", ")
	deadline := p.Deadline.Local().Format(time.RFC3339)
	if waiting {
		fmt.Fprintf(w, "awaiting confirmation until %s: %s; apply (process %d) waits: 'xdpc confirm' keeps it, interrupting it rolls back\n",
			deadline, ifaces, p.PID)
		return
	}
	fmt.Fprintf(w, "awaiting confirmation (deadline %s): %s; its apply (process %d) is gone and nothing rolls it back: 'xdpc confirm --keep' keeps it, 'xdpc confirm --rollback' restores the previous policy\n",
		deadline, ifaces, p.PID)
}
