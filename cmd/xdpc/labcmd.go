package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/lab"
)

func newLabCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "lab",
		Short: "Manage the network namespaces the lab creates",
	}
	c.AddCommand(newLabGCCommand())
	return c
}

func newLabGCCommand() *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "gc [--all]",
		Short: "Delete lab namespaces left behind by runs that were killed",
		Long: `Delete the network namespaces named ` + lab.NamespacePrefix + `* whose creating
process has exited: leftovers of a run killed before it could tear down
(SIGKILL, a crash of the machine's power). --all deletes those of running
processes too. Prints one line per namespace deleted.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireCaps(commandName(c), capsNetns); err != nil {
				return err
			}
			deleted, err := lab.CollectGarbage(lab.GCOptions{All: all})
			for _, n := range deleted {
				fmt.Fprintln(c.OutOrStdout(), "deleted", n)
			}
			if err != nil {
				return &exitError{exitSystem, err}
			}
			fmt.Fprintf(c.ErrOrStderr(), "%s deleted\n", plural(len(deleted), "namespace", "namespaces"))
			return nil
		},
	}
	c.Flags().BoolVar(&all, "all", false, "also delete the namespaces of running processes")
	return c
}
