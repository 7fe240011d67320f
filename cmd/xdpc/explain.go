package main

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/lab"
	"github.com/xdpc/xdpc/policy/eval"
)

func newExplainCommand() *cobra.Command {
	var (
		pf      policyFlags
		hexData string
		pcap    string
		index   int
	)
	c := &cobra.Command{
		Use:   "explain POLICY [PACKET...]",
		Short: "Say which rules a packet was tried against and why each did or did not match",
		Long: `Explain the verdict of one packet. The packet is given in the one-line
packet syntax (docs/packets.md), for example

  xdpc explain edge.hcl tcp 10.0.0.1:1234 '>' 10.0.0.2:22 flags S
  xdpc explain edge.hcl 'vlan 10 udp [2001:db8::1]:53 > [2001:db8::2]:53'

or as raw frame bytes with --hex, or as packet N of a capture with --pcap FILE --index N.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usageError(fmt.Errorf("explain: want a policy file and a packet"))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if c.Flags().Changed("index") && pcap == "" {
				return usageError(fmt.Errorf("explain: --index picks a packet of --pcap FILE; give --pcap too"))
			}
			if elf, err := readArtifact(c, args[0], &pf); err != nil {
				return err
			} else if elf != nil {
				return usageError(fmt.Errorf("explain: %s is an artifact; explain needs the policy source: it says why each rule did or did not match, and an artifact holds the rules only as bytecode (replay --backend kernel takes the artifact)", args[0]))
			}
			_, p, err := loadPolicy(c, args[0], &pf)
			if err != nil {
				return err
			}
			frame, err := explainFrame(args[1:], hexData, pcap, index)
			if err != nil {
				return err
			}
			fmt.Fprint(c.OutOrStdout(), eval.Explain(p, frame).String())
			return nil
		},
	}
	pf.register(c)
	c.Flags().StringVar(&hexData, "hex", "", "the frame as hex bytes")
	c.Flags().StringVar(&pcap, "pcap", "", "take the packet from this capture (with --index)")
	c.Flags().IntVar(&index, "index", 1, "1-based packet index in --pcap")
	return c
}

// explainFrame builds the frame from exactly one of the packet sources.
func explainFrame(spec []string, hexData, pcap string, index int) ([]byte, error) {
	given := 0
	for _, ok := range []bool{len(spec) > 0, hexData != "", pcap != ""} {
		if ok {
			given++
		}
	}
	if given != 1 {
		return nil, usageError(fmt.Errorf("explain: give the packet one way: in packet syntax, --hex or --pcap"))
	}
	switch {
	case hexData != "":
		b, err := hex.DecodeString(strings.Join(strings.Fields(hexData), ""))
		if err != nil {
			return nil, policyError(fmt.Errorf("--hex: %w", err))
		}
		return b, nil
	case pcap != "":
		frames, err := lab.ReadPcapFile(pcap)
		if err != nil {
			return nil, policyError(err)
		}
		if index < 1 || index > len(frames) {
			return nil, usageError(fmt.Errorf("--index %d: %s has %d packets", index, pcap, len(frames)))
		}
		return frames[index-1].Data, nil
	}
	frame, err := lab.ParsePacket(strings.Join(spec, " "))
	if err != nil {
		return nil, policyError(fmt.Errorf("packet: %w", err))
	}
	return frame, nil
}
