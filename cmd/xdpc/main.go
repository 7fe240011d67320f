// Command xdpc compiles firewall policy written in HCL into XDP programs,
// replays packets through them, explains their verdicts, and attaches them
// to interfaces and operates them there.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/lab"
)

// Exit codes. Scripts tell a bad policy from a bad command line from a
// failing host by these.
const (
	exitOK     = 0
	exitPolicy = 1  // the policy, packet or capture given is wrong; diagnostics say where
	exitSystem = 3  // the host failed: kernel, files, permissions
	exitUsage  = 64 // the command line is wrong (sysexits EX_USAGE)
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// policyError marks err as a problem with the user's input.
func policyError(err error) error { return &exitError{exitPolicy, err} }

// usageError marks err as a problem with the command line.
func usageError(err error) error { return &exitError{exitUsage, err} }

// silentExit ends a command with code after it printed its own report.
func silentExit(code int) error { return &exitError{code, nil} }

func main() {
	exitsAfterRun = true
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	args = terraformStyleVars(args)
	root.SetArgs(args)
	// Deferred Close calls tear labs down on success, failure and panic;
	// this does it on SIGINT and SIGTERM, exiting at once. Commands that
	// change what is applied must not be stopped half way (an apply
	// --confirm rolls back on a signal): they handle signals themselves.
	if !handlesSignals(root, args) {
		stop := lab.TeardownOnInterrupt(os.Exit)
		defer stop()
	}
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "xdpc:", ee.err)
		}
		return ee.code
	}
	// Errors cobra itself raises are about the command line.
	fmt.Fprintln(stderr, "xdpc:", err)
	if isUsage(err) {
		return exitUsage
	}
	return exitSystem
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "xdpc",
		Short: "Compile firewall policy to XDP, replay packets through it, explain verdicts, run it",
		Long: `xdpc compiles firewall policy written in HCL into an XDP eBPF program
(a standard ELF object), and proves what it does by replaying packets through
it: in a pure-Go reference evaluator, in the kernel (BPF_PROG_TEST_RUN) and in
a lab of throwaway network namespaces with the program attached to a veth.
apply attaches it to the interfaces the policy names; status, stats, detach,
set, confirm and ct operate what is applied.

Exit codes: 0 success, 1 the policy or input is wrong, 3 the host failed,
64 the command line is wrong.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError(fmt.Errorf("%w (see 'xdpc %s --help')", err, c.Name()))
	})
	root.AddCommand(
		newCheckCommand(),
		newFmtCommand(),
		newBuildCommand(),
		newReplayCommand(),
		newExplainCommand(),
		newDemoCommand(),
		newPcapCommand(),
		newApplyCommand(),
		newStatusCommand(),
		newStatsCommand(),
		newDetachCommand(),
		newSetCommand(),
		newConfirmCommand(),
		newCTCommand(),
		newTestCommand(),
		newLabCommand(),
		newVersionCommand(),
	)
	// Made now rather than when Execute runs, so that they get the same
	// treatment as the other commands.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			c.Run, c.RunE = nil, helpTopic
		}
	}
	requireSubcommands(root)
	return root
}

// helpTopic is 'xdpc help COMMAND...': an unknown topic is a usage error.
func helpTopic(c *cobra.Command, args []string) error {
	cmd, rest, err := c.Root().Find(args)
	if err != nil || len(rest) > 0 {
		return usageError(fmt.Errorf("unknown help topic %q (see 'xdpc help')", strings.Join(args, " ")))
	}
	cmd.InitDefaultHelpFlag()
	return cmd.Help()
}

// requireSubcommands makes every command group below root refuse a
// missing or unknown subcommand with a usage error, instead of printing
// its help and succeeding. (Root itself gets cobra's "unknown command".)
func requireSubcommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		requireSubcommands(c)
		if !c.HasSubCommands() || c.Runnable() {
			continue
		}
		var names []string
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		want := strings.Join(names, ", ")
		c.Args = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError(fmt.Errorf("%s: want a subcommand: %s", c.CommandPath(), want))
			}
			return usageError(fmt.Errorf("unknown command %q for %q; want %s (see '%s --help')", args[0], c.CommandPath(), want, c.CommandPath()))
		}
		c.RunE = func(c *cobra.Command, args []string) error { return c.Args(c, args) }
	}
}

// terraformStyleVars accepts the single-dash "-var k=v" and "-var=k=v" that
// the language documents (as terraform spells it) by rewriting them to
// pflag's "--var", and "-update" (as `go test -update` spells it) to
// "--update". Arguments after "--" are left alone.
func terraformStyleVars(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if a == "-var" || strings.HasPrefix(a, "-var=") || a == "-update" {
			out[i] = "-" + a
		}
	}
	return out
}

// isUsage reports whether err is cobra's complaint about the command line.
func isUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "requires exactly", "flag needs an argument", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// exactArgs is cobra.ExactArgs with a usage exit code.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError(fmt.Errorf("%s: want %s, got %d argument(s)", c.Name(), what, len(args)))
		}
		return nil
	}
}
