package main

import (
	"encoding/json"
	"fmt"
	"io"
	goruntime "runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set by scripts/release.sh with -ldflags -X, for builds the toolchain
// cannot stamp with VCS information itself (it does not recognise a git
// worktree, whose .git is a file). The toolchain's stamps win when present.
var (
	releaseVersion  string
	releaseCommit   string
	releaseTime     string
	releaseModified string
)

// buildVersion is what 'xdpc version' reports, from the build information
// the Go toolchain stamps into the binary.
type buildVersion struct {
	// Version is the main module's version: a tag, a pseudo-version made
	// from the commit, or "(devel)" when the toolchain stamped none.
	Version string `json:"version"`
	// Commit is the VCS revision, CommitTime its time, Modified whether
	// the work tree had uncommitted changes; empty when the binary was
	// built without VCS information.
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Modified   bool   `json:"modified"`
	Go         string `json:"go"`
	Platform   string `json:"platform"`
	// Static is false when the binary links C libraries (CGO_ENABLED=1).
	Static bool `json:"static"`
}

// versionOf reads a buildVersion out of bi, completed by what
// scripts/release.sh stamped where the toolchain stamped nothing.
func versionOf(bi *debug.BuildInfo) buildVersion {
	v := buildVersion{Version: "(devel)", Go: goruntime.Version(), Platform: goruntime.GOOS + "/" + goruntime.GOARCH, Static: true}
	if bi != nil {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			v.Go = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.CommitTime = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			case "CGO_ENABLED":
				v.Static = s.Value != "1"
			}
		}
	}
	if v.Commit == "" && releaseCommit != "" {
		v.Commit, v.CommitTime, v.Modified = releaseCommit, releaseTime, releaseModified == "true"
	}
	if v.Version == "(devel)" && releaseVersion != "" {
		v.Version = releaseVersion
	}
	return v
}

func (v buildVersion) write(w io.Writer) {
	fmt.Fprintf(w, "xdpc %s\n", v.Version)
	switch {
	case v.Commit == "":
		fmt.Fprintln(w, "commit unknown: built without VCS information (outside a git clone, in a git worktree, or with -buildvcs=false; scripts/release.sh stamps it)")
	case v.Modified:
		fmt.Fprintf(w, "commit %s (%s), with uncommitted changes\n", v.Commit, v.CommitTime)
	default:
		fmt.Fprintf(w, "commit %s (%s)\n", v.Commit, v.CommitTime)
	}
	linking := "static"
	if !v.Static {
		linking = "dynamically linked (cgo)"
	}
	fmt.Fprintf(w, "%s %s, %s\n", v.Go, v.Platform, linking)
}

func newVersionCommand() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print xdpc's version, the commit it was built from and the Go that built it",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			bi, _ := debug.ReadBuildInfo()
			v := versionOf(bi)
			if asJSON {
				return json.NewEncoder(c.OutOrStdout()).Encode(v)
			}
			v.write(c.OutOrStdout())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "one JSON object")
	return c
}
