package main

import (
	"bytes"
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestVersionText: the version names the module version and the commit,
// or says why it cannot.
func TestVersionText(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/xdpc/xdpc", Version: "v0.0.0-20261201230000-3ad25ed1b2c3+dirty"},
		Settings: []debug.BuildSetting{{Key: "CGO_ENABLED", Value: "0"}, {Key: "vcs.revision", Value: "3ad25ed1b2c3d4e5f60718293a4b5c6d7e8f9012"},
			{Key: "vcs.time", Value: "2026-12-01T23:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	bare := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/xdpc/xdpc", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "CGO_ENABLED", Value: "1"}}}
	for _, tc := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{stamped, "xdpc v0.0.0-20261201230000-3ad25ed1b2c3+dirty\n" +
			"commit 3ad25ed1b2c3d4e5f60718293a4b5c6d7e8f9012 (2026-12-01T23:00:00Z), with uncommitted changes\n" +
			"go1.26.8 " + versionOf(nil).Platform + ", static\n"},
		{bare, "xdpc (devel)\n" +
			"commit unknown: built without VCS information (outside a git clone, in a git worktree, or with -buildvcs=false; scripts/release.sh stamps it)\n" +
			"go1.26.8 " + versionOf(nil).Platform + ", dynamically linked (cgo)\n"},
	} {
		var b bytes.Buffer
		versionOf(tc.bi).write(&b)
		if diff := cmp.Diff(tc.want, b.String()); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
}

// TestVersionCommand runs 'xdpc version' and 'xdpc version --json'.
func TestVersionCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, &stdout, &stderr); code != exitOK || !bytes.HasPrefix(stdout.Bytes(), []byte("xdpc ")) {
		t.Errorf("version: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := run([]string{"version", "--json"}, &stdout, &stderr); code != exitOK || !bytes.HasPrefix(stdout.Bytes(), []byte(`{"version":`)) {
		t.Errorf("version --json: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
