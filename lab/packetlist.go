package lab

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/xdpc/xdpc/lab/corpus"
)

// maxClassFrames bounds how many frames one "class" line may ask for.
const maxClassFrames = 100

// PacketListOptions says which lines a packet list may hold and how its
// class lines draw their frames.
type PacketListOptions struct {
	// Case seeds the frames of "class" lines: with the line number it picks
	// the corpus's random draw, so a case's list always gives the same
	// bytes. It is the name of the case the list belongs to.
	Case string
	// Hex admits "hex" lines of raw frame bytes. A case's list refuses them:
	// case bytes are generated from checked-in text and Go code.
	Hex bool
}

// LineError is one bad line of a packet list.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e LineError) Unwrap() error { return e.Err }

// PacketListError holds every bad line of a packet list, in order: a list is
// read to its end so that one run shows all of them.
type PacketListError struct{ Lines []LineError }

func (e *PacketListError) Error() string {
	msgs := make([]string, len(e.Lines))
	for i, l := range e.Lines {
		msgs[i] = l.Error()
	}
	return strings.Join(msgs, "\n")
}

// ReadPacketList reads a packet list, the text a case's packets.txt and
// `xdpc pcap` hold. Each line is one of
//
//	PACKET                 a packet in the syntax of docs/packets.md
//	out PACKET             a packet the host itself sends out of the
//	                       interface (egress), not one arriving
//	on IFACE [out] PACKET  the same, arriving on (or sent out of)
//	                       interface IFACE of a case with several; any
//	                       line but wait may start so, a class's frames
//	                       all on IFACE
//	class NAME [COUNT]     COUNT (default 1, at most 100) frames of a
//	                       differential-corpus class (lab/corpus), drawn
//	                       with a seed derived from opts.Case and the line
//	                       number
//	hex BYTES              a raw frame, when opts.Hex admits it
//	wait DURATION          the clock runs DURATION ("31s", "2m", "1h")
//	                       before the next frame
//
// Frames are 1 ms apart unless a wait line says otherwise: their Time is
// the clock connection tracking's timeouts run on. Blank lines and lines
// starting with # are skipped. name is the list's file name in error
// positions. Every bad line is reported, as a *PacketListError; frames are
// returned only when there is none.
func ReadPacketList(name string, r io.Reader, opts PacketListOptions) ([]Frame, error) {
	var (
		frames []Frame
		bad    []LineError
	)
	var clock time.Duration
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		words := strings.Fields(sc.Text())
		if len(words) == 0 || strings.HasPrefix(words[0], "#") {
			continue
		}
		if words[0] == "wait" {
			d, err := waitDuration(words[1:])
			if err != nil {
				bad = append(bad, LineError{File: name, Line: line, Err: err})
			}
			clock += d
			continue
		}
		var iface string
		if words[0] == "on" {
			if len(words) < 3 {
				bad = append(bad, LineError{File: name, Line: line, Err: errors.New(`"on" needs an interface and a packet: on eth1 [out] tcp A:P > B:P ...`)})
				continue
			}
			iface, words = words[1], words[2:]
		}
		out := words[0] == "out"
		if out {
			words = words[1:]
			if len(words) == 0 {
				bad = append(bad, LineError{File: name, Line: line, Err: errors.New(`"out" needs a packet: out tcp A:P > B:P ...`)})
				continue
			}
		}
		fs, err := opts.listLine(line, words)
		if err != nil {
			bad = append(bad, LineError{File: name, Line: line, Err: err})
			continue
		}
		for _, f := range fs {
			if len(frames) >= maxFrames {
				return nil, fmt.Errorf("%s:%d: more than %d packets in one list", name, line, maxFrames)
			}
			frames = append(frames, Frame{Index: len(frames) + 1, Line: line, Data: f, Time: clock, Out: out, Iface: iface})
			clock += frameGap
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(bad) > 0 {
		return nil, &PacketListError{Lines: bad}
	}
	return frames, nil
}

// listLine builds the frames of one line of a packet list, given as its
// words. The first word says what the line is; anything else is a packet.
func (opts PacketListOptions) listLine(line int, words []string) ([][]byte, error) {
	switch words[0] {
	case "hex":
		if !opts.Hex {
			return nil, errors.New("hex frames are not allowed in cases: describe the packet, or name a corpus class")
		}
		f, err := hex.DecodeString(strings.Join(words[1:], ""))
		if err != nil {
			return nil, fmt.Errorf("hex frame: %w", err)
		}
		return [][]byte{f}, nil
	case "class":
		return opts.classLine(line, words[1:])
	}
	f, err := ParsePacket(strings.Join(words, " "))
	if err != nil {
		return nil, err
	}
	return [][]byte{f}, nil
}

// classLine draws the frames of "class NAME [COUNT]".
func (opts PacketListOptions) classLine(line int, args []string) ([][]byte, error) {
	if len(args) < 1 || len(args) > 2 {
		return nil, errors.New(`want "class NAME [COUNT]"`)
	}
	n := 1
	if len(args) == 2 {
		var err error
		if n, err = strconv.Atoi(args[1]); err != nil || n < 1 || n > maxClassFrames {
			return nil, fmt.Errorf("count %q: want 1 to %d", args[1], maxClassFrames)
		}
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s:%d", opts.Case, line)
	frames, ok := corpus.ClassFrames(corpus.Class(args[0]), int64(h.Sum64()>>1), n)
	if !ok {
		return nil, fmt.Errorf("no corpus class %q", args[0])
	}
	return frames, nil
}

// maxWait bounds one wait line: longer than any timeout a policy may set.
const maxWait = 60 * 24 * time.Hour

// waitDuration reads the argument of a wait line.
func waitDuration(args []string) (time.Duration, error) {
	if len(args) != 1 {
		return 0, errors.New(`want "wait DURATION", such as wait 31s`)
	}
	d, err := time.ParseDuration(args[0])
	if err != nil || d <= 0 || d > maxWait {
		return 0, fmt.Errorf("wait %q: want a duration from 1ns to %s, such as 31s or 2m", args[0], maxWait)
	}
	return d, nil
}
