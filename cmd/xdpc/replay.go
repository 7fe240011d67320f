package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/lab"
	"github.com/xdpc/xdpc/runtime"
)

func newReplayCommand() *cobra.Command {
	var (
		pf       policyFlags
		backend  string
		topology string
		jsonOut  bool
	)
	c := &cobra.Command{
		Use:   "replay [--backend reference|kernel|lab] [--topology host|router] [--json] POLICY|ARTIFACT IN.pcap",
		Short: "Decide a verdict for every packet of a capture",
		Long: `Replay every frame of a pcap or pcapng capture through a policy and print
one line per packet: index, verdict, deciding rule ("default" or "malformed"
when no rule decided) and the packet. --json prints one JSON object per line
with keys index, verdict, rule, summary, len and counted (and ct_state,
ct_entry).

The capture is one conversation: its timestamps are the clock of connection
tracking's timeouts, and a frame the host itself sent (a pcapng outbound
frame) is not filtered: its line says "out", and connection tracking records
it as the TC egress program does. For a policy that tracks connections every
line ends with the packet's ct_state and, when it created or moved a table
entry, that entry's state: "(ct established, entry fin_wait)".

Backends: reference (the pure-Go evaluator, no privileges), kernel (the
compiled program under BPF_PROG_TEST_RUN; needs CAP_BPF) and lab (the program
attached with XDP to a veth in throwaway network namespaces, each frame
injected from the peer and followed to the stack; needs root). All give the
same lines for the same input: the kernel runs out frames through the
egress program under BPF_PROG_TEST_RUN, the lab sends them out of the DUT's
veth, where the egress program is attached, and both age the connection
table by the time between frames. The lab cannot send frames shorter than an
Ethernet header (the kernel refuses them) and reports those as errors.

--topology router runs the lab as client ⇄ router ⇄ server with the program
on the router's outside veth: a passed frame is followed through the
router's forwarding to the server, and its line ends with "rewritten to"
and the frame as it arrived (new MACs, TTL one lower). Such frames must be
addressed to the router (02:00:00:00:00:02, the default destination MAC)
and to the server's network, 10.200.2.0/24.

A file of several interfaces (a nat block, or more than one policy) replays
every interface: a frame says which it arrives on ("on IFACE"), and the lab
runs them in a router namespace with a veth per interface, each frame
injected from its interface's peer and followed to the peer it is forwarded
to (docs/lab.md).

An artifact written by 'xdpc build' replays on the kernel and lab backends,
attributed by its manifest's counter slots as a policy is. The reference
backend needs the policy file.`,
		Args: exactArgs(2, "a policy file (or artifact) and a capture"),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(lab.Backends(), backend) {
				return usageError(lab.UnknownBackendError(backend))
			}
			if topology != lab.TopologyHost && topology != lab.TopologyRouter {
				return usageError(fmt.Errorf("--topology %q: want %s or %s", topology, lab.TopologyHost, lab.TopologyRouter))
			}
			if topology != lab.TopologyHost && backend != lab.BackendLab {
				return usageError(fmt.Errorf("--topology is for the lab backend, not %s", backend))
			}
			if err := requireBackendCaps(c, backend); err != nil {
				return err
			}
			newBackend, source, err := replaySource(c, args[0], &pf, backend, lab.LabOptions{Topology: topology})
			if err != nil {
				return err
			}
			frames, err := lab.ReadPcapFile(args[1])
			if err != nil {
				return policyError(err)
			}
			b, err := newBackend()
			if err != nil {
				return backendError(c.ErrOrStderr(), err, source)
			}
			defer b.Close()
			verdicts := lab.Replay(b, frames)
			failed := 0
			for _, v := range verdicts {
				if v.Error != "" {
					failed++
				}
				if err := printVerdict(c.OutOrStdout(), v, jsonOut); err != nil {
					return err
				}
			}
			if failed > 0 {
				return &exitError{exitSystem, fmt.Errorf("%s backend could not run %d of %d packets", backend, failed, len(verdicts))}
			}
			return nil
		},
	}
	pf.register(c)
	c.Flags().StringVar(&backend, "backend", lab.BackendReference, "reference, kernel or lab")
	c.Flags().StringVar(&topology, "topology", lab.TopologyHost, "the lab's topology: host or router")
	c.Flags().BoolVar(&jsonOut, "json", false, "one JSON object per line")
	return c
}

// nameSourceFile names the policy file in the source of a verifier
// rejection in err, and in err's message: the artifact knows lines and
// columns, not the file they are in.
func nameSourceFile(err error, file string) error {
	rej, ok := errors.AsType[*runtime.VerifierRejection](err)
	if !ok || file == "" {
		return err
	}
	before := rej.Error()
	rej.Source = artifact.SourceInFile(file, rej.Source)
	return &renamedError{msg: strings.Replace(err.Error(), before, rej.Error(), 1), err: err}
}

// renamedError is err with another message.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// replaySource reads the policy or artifact at path and returns what
// sets up the backend for it, to call once the capture has been read, and
// the policy file when path is one.
func replaySource(c *cobra.Command, path string, pf *policyFlags, backend string, opts lab.LabOptions) (func() (lab.Backend, error), string, error) {
	elf, err := readArtifact(c, path, pf)
	if err != nil {
		return nil, "", err
	}
	if elf != nil {
		return func() (lab.Backend, error) { return lab.NewArtifactBackend(backend, elf, opts) }, "", nil
	}
	cfg, err := loadConfig(c, path, pf)
	if err != nil {
		return nil, "", err
	}
	if pf.policy == "" && lab.IsHostConfig(cfg) {
		// Every interface of the file, each frame on its own (on IFACE);
		// the lab runs them in a router of its own.
		if opts.Topology != "" && opts.Topology != lab.TopologyHost {
			return nil, "", usageError(fmt.Errorf("--topology %s is for one policy: a file of several interfaces runs in a router with a veth per interface", opts.Topology))
		}
		return func() (lab.Backend, error) { return lab.NewHostBackend(backend, cfg) }, path, nil
	}
	p, err := selectPolicy(cfg, pf.policy)
	if err != nil {
		return nil, "", err
	}
	if backend == lab.BackendLab {
		return func() (lab.Backend, error) { return lab.NewLabBackend(cfg, p, opts) }, path, nil
	}
	return func() (lab.Backend, error) { return lab.NewBackend(backend, cfg, p) }, path, nil
}

func printVerdict(w io.Writer, v lab.Verdict, jsonOut bool) error {
	if jsonOut {
		// Summaries hold '>': keep them readable rather than HTML-safe.
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	_, err := fmt.Fprintln(w, v)
	return err
}

// backendError reports a failure to set up a backend for the policy in
// file. A verifier rejection of generated code is a compiler bug: print
// the log's tail so it can be reported with the rule it names.
func backendError(w io.Writer, err error, file string) error {
	if _, ok := errors.AsType[lab.UnknownBackendError](err); ok {
		return usageError(err)
	}
	if _, ok := errors.AsType[lab.CompileError](err); ok {
		return policyError(err)
	}
	if errors.Is(err, lab.ErrNeedsPolicy) || errors.Is(err, lab.ErrHostUnsupported) {
		return usageError(err)
	}
	if rej, ok := errors.AsType[*runtime.VerifierRejection](nameSourceFile(err, file)); ok {
		fmt.Fprint(w, rej.Report())
		return &exitError{exitSystem, fmt.Errorf("the kernel rejected the compiled program at %s; this is a bug in xdpc, please report it with the log above", rej.Source)}
	}
	return &exitError{exitSystem, err}
}
