package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// groups returns every command below root that has subcommands.
func groups(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, sub := range c.Commands() {
		if sub.HasSubCommands() {
			out = append(out, sub)
		}
		out = append(out, groups(sub)...)
	}
	return out
}

// TestCommandGroupsRefuseUnknownSubcommands runs every command group with
// an unknown subcommand and with none: both are usage errors (64) that
// say what the group takes, not its help with exit 0.
func TestCommandGroupsRefuseUnknownSubcommands(t *testing.T) {
	gs := groups(newRootCommand(new(bytes.Buffer), new(bytes.Buffer)))
	if len(gs) < 2 {
		t.Fatalf("found %d command groups, want at least set and lab", len(gs))
	}
	for _, g := range gs {
		path := strings.Fields(g.CommandPath())[1:]
		for _, tc := range []struct {
			args []string
			want string
		}{
			{append(path, "frob"), `unknown command "frob" for "` + g.CommandPath() + `"`},
			{path, g.CommandPath() + ": want a subcommand: "},
		} {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("xdpc %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr.String(), exitUsage, tc.want)
			}
		}
	}
}

// TestHelpRefusesUnknownTopics: 'xdpc help' of a command that does not
// exist is a usage error, not help for the root with exit 0.
func TestHelpRefusesUnknownTopics(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"help", "frob"}, exitUsage},
		{[]string{"help", "set", "frob"}, exitUsage},
		{[]string{"help", "set", "add"}, exitOK},
		{[]string{"help"}, exitOK},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != tc.code {
			t.Errorf("xdpc %s: exit %d, want %d; stderr %q", strings.Join(tc.args, " "), code, tc.code, stderr.String())
		}
	}
}
