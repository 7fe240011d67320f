package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// holdsSignals is the annotation of commands that change what is applied
// and take SIGINT, SIGTERM and SIGHUP themselves (holdInterruptions);
// run does not install the lab's handler, which exits at once, for them.
const holdsSignals = "xdpc-holds-signals"

// holdSignals marks c as a command that handles its signals.
func holdSignals(c *cobra.Command) {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[holdsSignals] = "yes"
}

// handlesSignals reports whether the command args run holds its signals.
func handlesSignals(root *cobra.Command, args []string) bool {
	c, _, err := root.Find(args)
	return err == nil && c.Annotations[holdsSignals] != ""
}

// interruptions keeps SIGINT, SIGTERM and SIGHUP from stopping a command
// half way through a change of the host: the command asks at the points
// where it can stop whether one came, and signals after the first are
// noted and otherwise ignored until it ends. Writing to a stdout or stderr
// nobody reads any more ('ssh host xdpc ...' without a terminal, whose
// connection dropped) fails with EPIPE from then on instead of killing
// the process with SIGPIPE.
type interruptions struct {
	sigs   chan os.Signal
	first  chan struct{} // closed when the first signal came
	sig    os.Signal     // the first signal, set before first is closed
	ended  chan struct{}
	stderr io.Writer
}

func holdInterruptions(stderr io.Writer) *interruptions {
	signal.Ignore(syscall.SIGPIPE)
	in := &interruptions{sigs: make(chan os.Signal, 8), first: make(chan struct{}), ended: make(chan struct{}), stderr: stderr}
	signal.Notify(in.sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		defer close(in.ended)
		told := false
		for sig := range in.sigs {
			switch {
			case in.sig == nil:
				in.sig = sig
				close(in.first)
			case !told:
				told = true
				fmt.Fprintf(stderr, "xdpc: %s: finishing first, so that nothing is left half done\n", signalName(sig))
			}
		}
	}()
	return in
}

// came returns the first signal, nil when none came.
func (in *interruptions) came() os.Signal {
	select {
	case <-in.first:
		return in.sig
	default:
		return nil
	}
}

// exitsAfterRun is set when the process ends as soon as run returns
// (main, a test's child process): held signals then stay held until the
// exit, so that one coming after the command finished cannot kill the
// process and make its exit code lie about what was done.
var exitsAfterRun bool

// stop ends the holding, unless the process is about to exit.
func (in *interruptions) stop() {
	if exitsAfterRun {
		return
	}
	signal.Stop(in.sigs)
	close(in.sigs)
	<-in.ended
}

// exitAfter ends a command that finished what it had started when sig
// came, as a shell reports death by it (130 for SIGINT, 143 for SIGTERM,
// 129 for SIGHUP), saying what was done.
func (in *interruptions) exitAfter(sig os.Signal, done string) error {
	fmt.Fprintf(in.stderr, "xdpc: %s: %s\n", signalName(sig), done)
	return silentExit(128 + int(sig.(syscall.Signal)))
}

func signalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		if name := unix.SignalName(s); name != "" {
			return name
		}
	}
	return sig.String()
}
