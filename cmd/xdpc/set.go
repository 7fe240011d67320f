package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/runtime"
)

func newSetCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "set add|del|list SET [ELEMENT...]",
		Short: "Change or list a dynamic set of an applied policy",
		Long: `Add elements to, remove elements from, or list a set declared with
dynamic = true in an applied policy. Changes take effect at once and are kept
across applies. --policy picks the policy when several applied policies have
a set of that name.`,
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
		Short: "List the elements of a dynamic set",
		Args:  exactArgs(1, "one set name"),
		RunE: func(c *cobra.Command, args []string) error {
			els, err := runtime.SetList(runtime.SetOptions{Options: rf.options(), Policy: policy, Set: args[0]})
			if err != nil {
				return runtimeError(err)
			}
			for _, e := range els {
				fmt.Fprintln(c.OutOrStdout(), e)
			}
			return nil
		},
	}
	rf.register(c, runtimeUse{noNetns: setsEverywhere, noLockWait: readsOnly})
	c.Flags().StringVar(&policy, "policy", "", "the applied policy whose set is meant")
	return c
}
