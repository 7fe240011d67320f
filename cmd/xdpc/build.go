package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/internal/atomicfile"
)

func newBuildCommand() *cobra.Command {
	var (
		pf      policyFlags
		out     string
		showAsm bool
	)
	c := &cobra.Command{
		Use:   "build [-o OUT.o] [-var k=v] [--asm] POLICY",
		Short: "Compile a policy to an XDP ELF object (and its manifest)",
		Long: `Compile a policy to a standard ELF object: the XDP program in section "xdp",
BTF-described maps in ".maps", and a manifest (section ".xdpc.manifest") that
maps counters and sets back to the policy. The same input always gives the same
bytes. --asm prints the bytecode annotated with the policy line of each
instruction.`,
		Args: exactArgs(1, "one policy file"),
		RunE: func(c *cobra.Command, args []string) error {
			start := time.Now()
			cfg, p, err := loadPolicy(c, args[0], &pf)
			if err != nil {
				return err
			}
			elf, art, err := compilePolicy(c, cfg, p)
			if err != nil {
				return err
			}
			if showAsm {
				fmt.Fprint(c.OutOrStdout(), art.DisassembleIn(args[0]))
			}
			if out == "" {
				out = p.Name + ".o"
			}
			if err := atomicfile.Write(out, elf, 0o644); err != nil {
				return &exitError{exitSystem, err}
			}
			fmt.Fprintf(c.ErrOrStderr(), "built %s: policy %q, %s, %d instructions, %s, %d bytes in %s\n",
				out, p.Name, plural(len(p.Rules), "rule", "rules"), len(art.Instructions),
				plural(len(art.Maps), "map", "maps"), len(elf), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	pf.register(c)
	c.Flags().StringVarP(&out, "output", "o", "", "where to write the object (default POLICYNAME.o)")
	c.Flags().BoolVar(&showAsm, "asm", false, "print the annotated bytecode")
	return c
}
