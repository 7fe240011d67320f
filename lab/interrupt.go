package lab

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// TeardownOnInterrupt tears down every live topology when the process gets
// SIGINT or SIGTERM, then calls exit with 130 (SIGINT) or 143 (SIGTERM), as
// a shell reports death by those signals. Deferred Close calls cover
// success, failure and panic; this covers the signals. stop removes the
// handler; if a signal came, it waits for the handler, so a command that
// ends meanwhile cannot exit before the lab is gone.
func TeardownOnInterrupt(exit func(code int)) (stop func()) {
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	finished := make(chan struct{})
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		defer close(finished)
		select {
		case sig := <-sigs:
			if err := CloseAll(); err != nil {
				fmt.Fprintln(os.Stderr, "xdpc: tear down the lab:", err)
			}
			code := 130
			if sig == syscall.SIGTERM {
				code = 143
			}
			exit(code)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
		<-finished
	}
}
