package main

import (
	"bytes"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/internal/atomicfile"
	"github.com/xdpc/xdpc/policy"
)

func newFmtCommand() *cobra.Command {
	var write, check bool
	c := &cobra.Command{
		Use:   "fmt [-w|--check] POLICY",
		Short: "Print a policy in canonical format, or rewrite it in place with -w",
		Args:  exactArgs(1, "one policy file"),
		RunE: func(c *cobra.Command, args []string) error {
			if write && check {
				return usageError(fmt.Errorf("fmt: -w and --check exclude each other"))
			}
			path := args[0]
			src, diags := policy.ReadFile(path)
			var out []byte
			if !diags.HasErrors() {
				out, diags = policy.Format(path, src)
			}
			if err := policy.WriteDiagnostics(c.ErrOrStderr(), map[string][]byte{path: src}, diags); err != nil {
				return err
			}
			if diags.HasErrors() {
				return silentExit(exitPolicy)
			}
			switch {
			case check:
				if !bytes.Equal(src, out) {
					fmt.Fprintf(c.OutOrStdout(), "%s: not formatted\n", path)
					return silentExit(exitPolicy)
				}
			case write:
				if !bytes.Equal(src, out) {
					if err := atomicfile.Write(path, out, 0o644); err != nil {
						return &exitError{exitSystem, err}
					}
				}
			default:
				_, err := c.OutOrStdout().Write(out)
				return err
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&write, "write", "w", false, "rewrite the file in place")
	c.Flags().BoolVar(&check, "check", false, "exit 1 when the file is not formatted (for CI)")
	return c
}
