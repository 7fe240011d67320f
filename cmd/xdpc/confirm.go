package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/runtime"
)

func newConfirmCommand() *cobra.Command {
	var rf runtimeFlags
	c := &cobra.Command{
		Use:   "confirm",
		Short: "Keep the policy an 'xdpc apply --confirm' applied",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			p, err := runtime.Confirm(rf.options())
			if err != nil {
				return runtimeError(err)
			}
			for _, prev := range p.Previous {
				fmt.Fprintf(c.OutOrStdout(), "confirmed %s\n", ifaceName(runtime.Attachment{Netns: prev.Netns, Interface: prev.Interface}))
			}
			return nil
		},
	}
	rf.register(c, runtimeUse{noNetns: "it keeps the apply that waits for confirmation, in whichever namespaces that changed"})
	return c
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
