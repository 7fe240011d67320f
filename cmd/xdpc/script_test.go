package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// runAsXDPC makes the test binary run as xdpc itself, for tests that need
// a real child process (signals).
const runAsXDPC = "XDPC_TEST_RUN_AS_XDPC"

func TestMain(m *testing.M) {
	if os.Getenv(runAsXDPC) != "" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	testscript.Main(m, map[string]func(){
		"xdpc": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scenarios in testdata/script: each is a txtar of
// commands, the files they read and the output they must print.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: os.Getenv("XDPC_UPDATE_SCRIPTS") != "",
	})
}
