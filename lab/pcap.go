package lab

import (
	"bufio"
	"bytes"
	"cmp"
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
	// Time is when the frame was seen, from the first frame of its capture
	// or list: the clock of connection tracking's timeouts.
	Time time.Duration
	// Out marks a frame the host itself sent out of the interface (a
	// packet list's "out" line, a pcapng outbound direction flag): seen by
	// egress tracking, never filtered.
	Out bool
	// Iface is the interface the frame arrives on, or for Out leaves
	// from: a packet list's "on IFACE", a pcapng interface's name. Empty
	// is the case's one interface.
	Iface string
}

// frameGap is the time between consecutive frames of a packet list,
// unless a "wait" line says otherwise.
const frameGap = time.Millisecond

// Frames numbers the frames data from 1 and spaces them as a packet list
// does, 1 ms apart, all arriving.
func Frames(data [][]byte) []Frame {
	frames := make([]Frame, len(data))
	for i, d := range data {
		frames[i] = Frame{Index: i + 1, Data: d, Time: time.Duration(i) * frameGap}
	}
	return frames
}

// captureStart is the first timestamp of every capture xdpc writes, so the
// same frames always give the same bytes.
var captureStart = time.Unix(1700000000, 0).UTC()

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
	// read returns the next frame's bytes, capture info and whether the
	// capture says the host sent it.
	var read func() ([]byte, gopacket.CaptureInfo, bool, error)
	// ifname is the name of the interface a frame was captured on, empty
	// for the default one (pcap has no names).
	ifname := func(gopacket.CaptureInfo) string { return "" }
	var linkType layers.LinkType
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("pcapng header: %w", err)
		}
		linkType = ng.LinkType()
		read = func() ([]byte, gopacket.CaptureInfo, bool, error) {
			data, ci, opts, err := ng.ReadPacketDataWithOptions()
			out := opts.Flags != nil && opts.Flags.Direction == pcapgo.NgEpbFlagDirectionOutbound
			return data, ci, out, err
		}
		ifname = func(ci gopacket.CaptureInfo) string {
			i, err := ng.Interface(ci.InterfaceIndex)
			if err != nil || i.Name == defaultIface {
				return ""
			}
			return i.Name
		}
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("pcap header: %w", err)
		}
		linkType = pr.LinkType()
		read = func() ([]byte, gopacket.CaptureInfo, bool, error) {
			data, ci, err := pr.ReadPacketData()
			return data, ci, false, err
		}
	}
	if linkType != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("link type %s: xdpc replays Ethernet captures only", linkType)
	}
	var (
		frames []Frame
		start  time.Time
	)
	for i := 1; ; i++ {
		data, ci, out, err := read()
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
		if i == 1 {
			start = ci.Timestamp
		}
		at := ci.Timestamp.Sub(start)
		if n := len(frames); n > 0 && at < frames[n-1].Time {
			return nil, fmt.Errorf("packet %d: its timestamp goes back %s; the frames' times are the clock of connection tracking and must not run backwards", i, frames[n-1].Time-at)
		}
		frames = append(frames, Frame{Index: i, Data: append([]byte(nil), data...), Time: at, Out: out, Iface: ifname(ci)})
	}
}

// WritePcap writes frames as a capture whose timestamps are captureStart
// plus each frame's Time, so the same frames always give the same bytes: a
// pcap stream, or pcapng when a frame is Out or names its interface (pcap
// has neither directions nor interfaces; pcapng's enhanced packet blocks
// say inbound or outbound, and which interface description block, by
// name, the frame was seen on).
func WritePcap(w io.Writer, frames []Frame) error {
	for _, f := range frames {
		if f.Out || f.Iface != "" {
			return writePcapng(w, frames)
		}
	}
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return fmt.Errorf("write pcap header: %w", err)
	}
	for i, f := range frames {
		if err := pw.WritePacket(captureInfo(f), f.Data); err != nil {
			return fmt.Errorf("write packet %d: %w", i+1, err)
		}
	}
	return nil
}

func captureInfo(f Frame) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: captureStart.Add(f.Time), CaptureLength: len(f.Data), Length: len(f.Data)}
}

// defaultIface names the pcapng interface of frames without an Iface.
const defaultIface = "dut"

func ngInterface(name string) pcapgo.NgInterface {
	return pcapgo.NgInterface{Name: name, LinkType: layers.LinkTypeEthernet, SnapLength: 65535, TimestampResolution: 9}
}

// writePcapng writes frames with one interface description block per
// interface, in the order the frames first name them: the default
// interface first when a frame names none.
func writePcapng(w io.Writer, frames []Frame) error {
	var names []string
	index := map[string]int{}
	for _, f := range frames {
		name := cmp.Or(f.Iface, defaultIface)
		if _, ok := index[name]; !ok {
			index[name] = len(names)
			names = append(names, name)
		}
	}
	nw, err := pcapgo.NewNgWriterInterface(w, ngInterface(names[0]), pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "xdpc"}})
	if err != nil {
		return fmt.Errorf("write pcapng header: %w", err)
	}
	for _, name := range names[1:] {
		if _, err := nw.AddInterface(ngInterface(name)); err != nil {
			return fmt.Errorf("write pcapng interface %s: %w", name, err)
		}
	}
	for i, f := range frames {
		dir := pcapgo.NgEpbFlagDirectionInbound
		if f.Out {
			dir = pcapgo.NgEpbFlagDirectionOutbound
		}
		ci := captureInfo(f)
		ci.InterfaceIndex = index[cmp.Or(f.Iface, defaultIface)]
		opts := pcapgo.NgPacketOptions{Flags: &pcapgo.NgEpbFlags{Direction: dir}}
		if err := nw.WritePacketWithOptions(ci, f.Data, opts); err != nil {
			return fmt.Errorf("write packet %d: %w", i+1, err)
		}
	}
	return nw.Flush()
}
