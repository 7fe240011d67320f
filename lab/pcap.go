package lab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Frame is one Ethernet frame read from a capture or a packet list, with
// its 1-based index.
type Frame struct {
	Index int
	// Line is the packet-list line the frame was built from; 0 for a frame
	// read from a capture.
	Line int
	Data []byte
}

// maxFrames bounds how many frames one capture may hold, so a corrupt or
// hostile file cannot make xdpc read without end.
const maxFrames = 1_000_000

// ReadPcapFile reads the Ethernet frames of a pcap or pcapng file.
func ReadPcapFile(path string) ([]Frame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read capture: %w", err)
	}
	defer f.Close()
	frames, err := ReadPcap(f)
	if err != nil {
		return nil, fmt.Errorf("read capture %s: %w", path, err)
	}
	return frames, nil
}

// ReadPcap reads the Ethernet frames of a pcap or pcapng stream. Frames
// captured shorter than they were on the wire are rejected: a verdict on a cut
// frame would not be the verdict on the packet.
func ReadPcap(r io.Reader) ([]Frame, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, errors.New("not a pcap or pcapng file: too short for a header")
	}
	var src interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
		LinkType() layers.LinkType
	}
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("pcapng header: %w", err)
		}
		src = ng
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("pcap header: %w", err)
		}
		src = pr
	}
	if lt := src.LinkType(); lt != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("link type %s: xdpc replays Ethernet captures only", lt)
	}
	var frames []Frame
	for i := 1; ; i++ {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return frames, nil
		}
		if err != nil {
			return nil, fmt.Errorf("packet %d: %w", i, err)
		}
		if i > maxFrames {
			return nil, fmt.Errorf("more than %d packets in one capture", maxFrames)
		}
		if ci.Length > ci.CaptureLength {
			return nil, fmt.Errorf("packet %d: captured %d of %d bytes; capture with a larger snap length", i, ci.CaptureLength, ci.Length)
		}
		frames = append(frames, Frame{Index: i, Data: append([]byte(nil), data...)})
	}
}

// WritePcap writes frames as a pcap stream with fixed, increasing timestamps,
// so the same frames always give the same bytes.
func WritePcap(w io.Writer, frames [][]byte) error {
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return fmt.Errorf("write pcap header: %w", err)
	}
	base := time.Unix(1700000000, 0).UTC()
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: base.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f), Length: len(f)}
		if err := pw.WritePacket(ci, f); err != nil {
			return fmt.Errorf("write packet %d: %w", i+1, err)
		}
	}
	return nil
}
