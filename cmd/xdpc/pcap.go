package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/internal/atomicfile"
	"github.com/xdpc/xdpc/lab"
)

func newPcapCommand() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "pcap -o OUT.pcap PACKETS.txt",
		Short: "Write a capture from a packet list in the one-line packet syntax",
		Long: `Write a pcap file from a packet list: one packet per line in the packet
syntax of docs/packets.md (for example "tcp 10.0.0.1:1234 > 10.0.0.2:22 flags S"),
or "hex" and the raw frame bytes. Blank lines and # comments are skipped. The
same list always gives the same bytes, so captures for tests can be generated
from reviewed text instead of edited by hand.`,
		Args: exactArgs(1, "one packet list"),
		RunE: func(c *cobra.Command, args []string) error {
			if out == "" {
				return usageError(fmt.Errorf("pcap: -o OUT.pcap is required"))
			}
			f, err := os.Open(args[0])
			if err != nil {
				return &exitError{exitSystem, fmt.Errorf("read packet list: %w", err)}
			}
			defer f.Close()
			frames, err := lab.ReadPacketList(args[0], f)
			if err != nil {
				return policyError(err)
			}
			data := make([][]byte, len(frames))
			for i, fr := range frames {
				data[i] = fr.Data
			}
			var buf bytes.Buffer
			if err := lab.WritePcap(&buf, data); err != nil {
				return &exitError{exitSystem, err}
			}
			if err := atomicfile.Write(out, buf.Bytes(), 0o644); err != nil {
				return &exitError{exitSystem, err}
			}
			fmt.Fprintf(c.ErrOrStderr(), "wrote %s: %s\n", out, plural(len(frames), "packet", "packets"))
			return nil
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "the capture to write")
	return c
}
