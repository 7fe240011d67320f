package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/runtime"
)

func newStatusCommand() *cobra.Command {
	var (
		rf     runtimeFlags
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "status [--json] [--netns NAME]",
		Short: "Show what is attached: per interface the policy, hash, mode, program and since when",
		Long: `Show every interface xdpc attached a policy to, in every network namespace
or in --netns: policy name, policy hash, attach mode, kernel program id and
when it was attached, and the TC egress program of a policy that tracks
connections (EGRESS: tcx:PROGRAM or clsact:PROGRAM by how it is attached;
a dash when there is none). An attachment whose interface was removed is shown as gone; 'xdpc
detach IFACE' cleans it up. A last line shows an 'xdpc apply --confirm' awaiting
confirmation, and whether that apply still waits ('confirm' in --json).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			st, err := runtime.Status(rf.options())
			if err != nil {
				return runtimeError(err)
			}
			pending, err := runtime.PendingConfirmation(rf.options())
			if err != nil {
				return runtimeError(err)
			}
			waiting := pending != nil && pending.Waiting()
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				for _, a := range st {
					if err := enc.Encode(withConfirmation(a, pending, waiting)); err != nil {
						return err
					}
				}
				return nil
			}
			if pending != nil {
				defer describeConfirmation(c.OutOrStdout(), pending, waiting)
			}
			if len(st) == 0 {
				fmt.Fprintln(c.OutOrStdout(), "nothing attached")
				return nil
			}
			w := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "INTERFACE\tNETNS\tPOLICY\tHASH\tMODE\tPROGRAM\tEGRESS\tSINCE\tSTATE")
			for _, a := range st {
				state := "attached"
				switch {
				case a.Gone:
					state = "interface gone"
				case a.RenamedTo != "":
					state = "renamed to " + a.RenamedTo
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", a.Interface, a.Netns, a.Policy,
					shortHash(a.Hash), a.Mode, a.ProgramID, egressColumn(a.Egress), a.Since.Local().Format(time.RFC3339), state)
			}
			return w.Flush()
		},
	}
	rf.register(c, runtimeUse{noLockWait: readsOnly})
	c.Flags().BoolVar(&asJSON, "json", false, "one JSON object per attachment")
	return c
}

// egressColumn shows how an egress program is attached and which one the
// kernel runs: "tcx:57", "clsact:57"; "tcx:gone" when the kernel runs none
// there any more; "-" for a policy that does not track.
func egressColumn(e *runtime.EgressAttachment) string {
	switch {
	case e == nil:
		return "-"
	case e.Gone:
		return e.Mechanism + ":gone"
	}
	return fmt.Sprintf("%s:%d", e.Mechanism, e.ProgramID)
}
