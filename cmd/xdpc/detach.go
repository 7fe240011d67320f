package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/runtime"
)

func newDetachCommand() *cobra.Command {
	var rf runtimeFlags
	c := &cobra.Command{
		Use:   "detach [--netns NAME] [IFACE]",
		Short: "Detach xdpc's program from an interface (or from all) and remove its pins",
		Long: `Detach the policy from IFACE (in --netns), or from every interface in every
namespace when no IFACE is given, removing its pinned link, program and
records; kept maps of policies no interface runs any more are removed too.
Detaching what is not attached succeeds and says so.

While an 'xdpc apply --confirm' waits for confirmation, detach is refused
(exit 1): its rollback would attach the previous programs again, undoing
the detach unseen. Run 'xdpc confirm' first, then detach, or let it roll
back.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError(fmt.Errorf("detach: want at most one interface, got %d arguments", len(args)))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			var ifname string
			if len(args) == 1 {
				ifname = args[0]
			}
			in := holdInterruptions(c.ErrOrStderr())
			defer in.stop()
			res, err := runtime.DetachReport(rf.options(), ifname)
			var done []runtime.Attachment
			if res != nil {
				done = res.Detached
				for _, a := range done {
					fmt.Fprintf(c.OutOrStdout(), "detached policy %q from %s\n", a.Policy, ifaceName(a))
				}
				for _, n := range res.Notes {
					fmt.Fprintln(c.ErrOrStderr(), "xdpc:", n)
				}
			}
			if err != nil {
				return confirmationError(err)
			}
			if len(done) == 0 {
				fmt.Fprintln(c.OutOrStdout(), "nothing attached")
			}
			if sig := in.came(); sig != nil {
				return in.exitAfter(sig, "came while detaching; the detach was completed")
			}
			return nil
		},
	}
	holdSignals(c)
	rf.register(c, runtimeUse{})
	return c
}
