// Command gencases writes the in.pcap of every golden lab case from its
// packets.txt (see lab.BuildCapture), so no capture is ever edited by hand.
//
// Usage, from the repository root:
//
//	go run ./lab/internal/gencases [DIR...]   (default testdata/lab)
package main

import (
	"fmt"
	"os"

	"github.com/xdpc/xdpc/lab"
)

func main() {
	dirs := os.Args[1:]
	if len(dirs) == 0 {
		dirs = []string{"testdata/lab"}
	}
	if err := generate(dirs); err != nil {
		fmt.Fprintln(os.Stderr, "gencases:", err)
		os.Exit(1)
	}
}

func generate(dirs []string) error {
	cases, err := lab.FindCases(dirs...)
	if err != nil {
		return err
	}
	for _, c := range cases {
		changed, err := c.GenerateCapture()
		if err != nil {
			return err
		}
		if changed {
			fmt.Printf("wrote %s/%s\n", c.Dir, lab.CaseCaptureFile)
		}
	}
	return nil
}
