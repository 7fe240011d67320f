package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/runtime"
)

func newSetCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "set add|del|list SET [ELEMENT...]",
		Short: "Change a dynamic set of an applied policy, or list a set",
		Long: `Add elements to or remove elements from a set declared with dynamic = true
in an applied policy, or list any set of it. Changes take effect at once, all
or nothing, and are kept across applies; they say how many elements changed
the set. --policy picks the policy when several applied policies have a set of
that name.`,
	}
	c.AddCommand(
		newSetChangeCommand("add", "Add elements to a dynamic set", runtime.SetAdd),
		newSetChangeCommand("del", "Remove elements from a dynamic set", runtime.SetDel),
		newSetListCommand(),
	)
	return c
}

// setVerbs are how a change verb reports what it did: "added 2 of 3
// elements to set S (1 already present)".
var setVerbs = map[string]struct{ past, prep, unchanged string }{
	"add": {"added", "to", "already present"},
	"del": {"removed", "from", "not in the set"},
}

func newSetChangeCommand(verb, short string, op func(runtime.SetOptions, []string) (*runtime.SetChange, error)) *cobra.Command {
	var (
		rf     runtimeFlags
		policy string
	)
	c := &cobra.Command{
		Use:   verb + " SET ELEMENT...",
		Short: short,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError(fmt.Errorf("set %s: want a set and at least one element", verb))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			so := runtime.SetOptions{Options: rf.options(), Policy: policy, Set: args[0]}
			ch, err := op(so, args[1:])
			if err != nil {
				return runtimeError(err)
			}
			fmt.Fprintln(c.OutOrStdout(), describeSetChange(verb, ch))
			return nil
		},
	}
	rf.register(c, runtimeUse{noNetns: setsEverywhere})
	c.Flags().StringVar(&policy, "policy", "", "the applied policy whose set is meant")
	return c
}

// describeSetChange says how many of the elements given changed the set.
func describeSetChange(verb string, ch *runtime.SetChange) string {
	v := setVerbs[verb]
	if ch.Changed == ch.Given {
		return fmt.Sprintf("%s %s %s set %s of policy %s", v.past, plural(ch.Given, "element", "elements"), v.prep, ch.Set, ch.Policy)
	}
	return fmt.Sprintf("%s %d of %s %s set %s of policy %s (%d %s)", v.past, ch.Changed, plural(ch.Given, "element", "elements"),
		v.prep, ch.Set, ch.Policy, ch.Given-ch.Changed, v.unchanged)
}

func newSetListCommand() *cobra.Command {
	var (
		rf     runtimeFlags
		policy string
	)
	c := &cobra.Command{
		Use:   "list SET",
		Short: "List the elements of a set",
		Long: `List the elements of a set of an applied policy, one per line (a port
range lists its ports). A static set is listed too, with a note on stderr: it
holds what its policy declares and changes only with the policy.`,
		Args: exactArgs(1, "one set name"),
		RunE: func(c *cobra.Command, args []string) error {
			sc, err := runtime.SetList(runtime.SetOptions{Options: rf.options(), Policy: policy, Set: args[0]})
			if err != nil {
				return runtimeError(err)
			}
			if sc.Static {
				fmt.Fprintln(c.ErrOrStderr(), staticSetNote(sc))
			}
			for _, e := range sc.Elements.Strings() {
				fmt.Fprintln(c.OutOrStdout(), e)
			}
			return nil
		},
	}
	rf.register(c, runtimeUse{noNetns: setsEverywhere, noLockWait: readsOnly})
	c.Flags().StringVar(&policy, "policy", "", "the applied policy whose set is meant")
	return c
}

// staticSetNote says that a listed set is static, and where its elements
// were read.
func staticSetNote(sc *runtime.SetContents) string {
	what := "static"
	if sc.Implicit {
		what = "static (made of a rule's list)"
	}
	note := fmt.Sprintf("set %s of policy %s is %s: it holds what the policy declares and changes only with the policy", sc.Set, sc.Policy, what)
	if sc.Declared {
		note += fmt.Sprintf("; no interface runs the version of policy %s applied last, so these are the elements it declares", sc.Policy)
	}
	return note
}
