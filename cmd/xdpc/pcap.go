package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/internal/atomicfile"
	"github.com/xdpc/xdpc/lab"
)

func newPcapCommand() *cobra.Command {
	var out, caseName string
	c := &cobra.Command{
		Use:   "pcap -o OUT.pcap [--case NAME] PACKETS.txt",
		Short: "Write a capture from a packet list in the one-line packet syntax",
		Long: `Write a pcap file from a packet list, the text a golden case's packets.txt
holds. Each line is a packet in the packet syntax of docs/packets.md (for
example "tcp 10.0.0.1:1234 > 10.0.0.2:22 flags S"); "class NAME [COUNT]",
COUNT frames of a class of the differential corpus (lab/corpus); or "hex"
and the raw frame bytes (which a case refuses). Blank lines and # comments
are skipped. Every bad line is reported as FILE:LINE: message, and nothing
is written while there is one.

The same list always gives the same bytes (timestamps are fixed), so
captures for tests are generated from reviewed text instead of edited by
hand. A class line draws its frames with a seed derived from the case name
and its line number; the case name is the name of the directory holding
PACKETS.txt unless --case names it, so

  xdpc pcap -o testdata/lab/CASE/in.pcap testdata/lab/CASE/packets.txt

writes exactly the in.pcap that xdpc test expects.`,
		Args: exactArgs(1, "one packet list"),
		RunE: func(c *cobra.Command, args []string) error {
			if out == "" {
				return usageError(fmt.Errorf("pcap: -o OUT.pcap is required"))
			}
			if caseName == "" {
				dir, err := filepath.Abs(filepath.Dir(args[0]))
				if err != nil {
					return &exitError{exitSystem, fmt.Errorf("read packet list: %w", err)}
				}
				caseName = filepath.Base(dir)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return &exitError{exitSystem, fmt.Errorf("read packet list: %w", err)}
			}
			defer f.Close()
			frames, err := lab.ReadPacketList(args[0], f, lab.PacketListOptions{Case: caseName, Hex: true})
			if bad, ok := errors.AsType[*lab.PacketListError](err); ok {
				for _, l := range bad.Lines {
					fmt.Fprintln(c.ErrOrStderr(), l)
				}
				return policyError(fmt.Errorf("pcap: %s in %s; wrote nothing", plural(len(bad.Lines), "bad line", "bad lines"), args[0]))
			}
			if err != nil {
				return policyError(err)
			}
			var buf bytes.Buffer
			if err := lab.WritePcap(&buf, frames); err != nil {
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
	c.Flags().StringVar(&caseName, "case", "", "the case name that seeds class lines (default: the name of the directory holding PACKETS.txt)")
	return c
}
