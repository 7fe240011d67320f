package main

import (
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
