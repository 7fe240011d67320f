package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

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
		Use:   "replay [--backend reference|kernel|lab] [--topology host|router] [--json] POLICY IN.pcap",
		Short: "Decide a verdict for every packet of a capture",
		Long: `Replay every frame of a pcap or pcapng capture through a policy and print
one line per packet: index, verdict, deciding rule ("default" or "malformed"
when no rule decided) and the packet. --json prints one JSON object per line
with keys index, verdict, rule, summary, len and counted.

Backends: reference (the pure-Go evaluator, no privileges), kernel (the
compiled program under BPF_PROG_TEST_RUN; needs CAP_BPF) and lab (the program
attached with XDP to a veth in throwaway network namespaces, each frame
injected from the peer and followed to the stack; needs root). All give the
same lines for the same input. The lab cannot send frames shorter than an
Ethernet header (the kernel refuses them) and reports those as errors.

--topology router runs the lab as client ⇄ router ⇄ server with the program
on the router's outside veth: a passed frame is followed through the
router's forwarding to the server, and its line ends with "rewritten to"
and the frame as it arrived (new MACs, TTL one lower). Such frames must be
addressed to the router (02:00:00:00:00:02, the default destination MAC)
and to the server's network, 10.200.2.0/24.`,
		Args: exactArgs(2, "a policy file and a capture"),
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
			cfg, p, err := loadPolicy(c, args[0], &pf)
			if err != nil {
				return err
			}
			frames, err := lab.ReadPcapFile(args[1])
			if err != nil {
				return policyError(err)
			}
			var b lab.Backend
			if backend == lab.BackendLab {
				b, err = lab.NewLabBackend(cfg, p, lab.LabOptions{Topology: topology})
			} else {
				b, err = lab.NewBackend(backend, cfg, p)
			}
			if err != nil {
				return backendError(c.ErrOrStderr(), err)
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

// backendError reports a failure to set up a backend. A verifier rejection
// of generated code is a compiler bug: print the log's tail so it can be
// reported with the rule it names.
func backendError(w io.Writer, err error) error {
	if _, ok := errors.AsType[lab.UnknownBackendError](err); ok {
		return usageError(err)
	}
	if _, ok := errors.AsType[lab.CompileError](err); ok {
		return policyError(err)
	}
	if rej, ok := errors.AsType[*runtime.VerifierRejection](err); ok {
		fmt.Fprint(w, rej.Report())
		return &exitError{exitSystem, fmt.Errorf("the kernel rejected the compiled program at %s; this is a bug in xdpc, please report it with the log above", rej.Source)}
	}
	return &exitError{exitSystem, err}
}
