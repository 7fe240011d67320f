package lab

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// ReadPacketList reads a packet list: one packet per line in the packet
// syntax of docs/packets.md, or "hex" followed by the raw frame bytes. Blank
// lines and lines starting with # are skipped. name prefixes error positions.
func ReadPacketList(name string, r io.Reader) ([]Frame, error) {
	var frames []Frame
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var (
			frame []byte
			err   error
		)
		if h, ok := strings.CutPrefix(text, "hex "); ok {
			frame, err = hex.DecodeString(strings.Join(strings.Fields(h), ""))
		} else {
			frame, err = ParsePacket(text)
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if len(frames) >= maxFrames {
			return nil, fmt.Errorf("%s: more than %d packets", name, maxFrames)
		}
		frames = append(frames, Frame{Index: len(frames) + 1, Data: frame})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return frames, nil
}
