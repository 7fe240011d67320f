package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// isolateRuntime points the runtime commands run by t at empty pin and
// state directories of their own, so that nothing a test runs can touch
// what is applied on the host.
func isolateRuntime(t *testing.T) {
	t.Setenv("XDPC_PIN_ROOT", t.TempDir())
	t.Setenv("XDPC_STATE_DIR", t.TempDir())
}

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

// TestDurationFlagsRefuseNonsense: a wait or an interval of zero or less
// is a usage error, not a silent "off" or a busy loop.
func TestDurationFlagsRefuseNonsense(t *testing.T) {
	isolateRuntime(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "--confirm", "0s", "p.hcl"}, `invalid argument "0s" for "--confirm" flag: must be longer than zero`},
		{[]string{"apply", "--confirm", "-5s", "p.hcl"}, `invalid argument "-5s" for "--confirm" flag: must not be negative`},
		{[]string{"stats", "--watch", "0"}, `"--watch" flag: must be longer than zero`},
		{[]string{"stats", "--watch", "-1s"}, `"--watch" flag: must not be negative`},
		{[]string{"stats", "--watch", "1s", "--count", "-2"}, `--count -2: want a number of reports`},
		{[]string{"detach", "--lock-wait", "-1s"}, `"--lock-wait" flag: must not be negative`},
		{[]string{"apply", "--lock-wait", "soon", "p.hcl"}, `"--lock-wait" flag: not a duration`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("xdpc %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr.String(), exitUsage, tc.want)
		}
	}
}

// TestEveryDurationFlagIsChecked keeps new duration flags honest: each
// is a durationFlag, which refuses negative (and most zero) values.
func TestEveryDurationFlagIsChecked(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if _, ok := f.Value.(durationFlag); f.Value.Type() == "duration" && !ok {
				t.Errorf("%s --%s is a plain duration flag; register it with durationVar", c.CommandPath(), f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand(new(bytes.Buffer), new(bytes.Buffer)))
}

// TestInertFlagsAreRefused: a flag that would do nothing for what the
// command was given is a usage error that says why, not ignored.
func TestInertFlagsAreRefused(t *testing.T) {
	isolateRuntime(t)
	dir := t.TempDir()
	pol := filepath.Join(dir, "edge.hcl")
	art := filepath.Join(dir, "edge.o")
	if err := os.WriteFile(pol, []byte("variable \"port\" {\n  default = 22\n}\n\npolicy \"edge\" {\n  default = \"pass\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"build", "-o", art, pol}, &stdout, &stderr); code != exitOK {
		t.Fatalf("build: exit %d: %s", code, stderr.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "-var", "port=23", art}, "-var does nothing for it"},
		{[]string{"apply", "--policy", "edge", art}, "--policy does nothing for it"},
		{[]string{"status", "--lock-wait", "5s"}, "xdpc status takes no --lock-wait: it only reads"},
		{[]string{"stats", "--lock-wait", "5s"}, "xdpc stats takes no --lock-wait"},
		{[]string{"set", "add", "--netns", "x", "s", "1"}, "xdpc set add takes no --netns: a policy's sets are shared"},
		{[]string{"set", "del", "--netns", "x", "s", "1"}, "xdpc set del takes no --netns"},
		{[]string{"set", "list", "--netns", "x", "s"}, "xdpc set list takes no --netns"},
		{[]string{"set", "list", "--lock-wait", "1s", "s"}, "xdpc set list takes no --lock-wait"},
		{[]string{"confirm", "--netns", "x"}, "xdpc confirm takes no --netns"},
		{[]string{"stats", "--count", "2"}, "--count counts the reports of --watch"},
		{[]string{"explain", "--index", "2", pol, "udp 10.0.0.1:1 > 10.0.0.2:2"}, "--index picks a packet of --pcap"},
		{[]string{"check", "--policy", "nosuch", pol}, "--policy nosuch: no such policy"},
	} {
		stdout.Reset()
		stderr.Reset()
		code := run(tc.args, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("xdpc %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr.String(), exitUsage, tc.want)
		}
	}
}

// TestGarbageInputIsBounded gives check and fmt a megabyte of random bytes
// and a megabyte-long line: each says what is wrong in a few lines (exit
// 1), rather than printing megabytes of diagnostics.
func TestGarbageInputIsBounded(t *testing.T) {
	dir := t.TempDir()
	random := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	files := map[string][]byte{
		"random.hcl":   random,
		"longline.hcl": bytes.Repeat([]byte("a"), 1<<20),
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"check", "fmt", "build"} {
			var stdout, stderr bytes.Buffer
			code := run([]string{cmd, path}, &stdout, &stderr)
			if code != exitPolicy || stderr.Len() > 4<<10 || stdout.Len() > 0 {
				t.Errorf("xdpc %s %s: exit %d, %d bytes on stdout, %d on stderr; want exit 1 and a few lines:\n%.2000s", cmd, name, code, stdout.Len(), stderr.Len(), stderr.String())
			}
		}
	}
}
