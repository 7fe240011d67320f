package lab

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestPcapRoundTrip writes frames and reads them back: as pcap when every
// frame arrives, as pcapng with direction flags when one is the host's,
// times kept either way.
func TestPcapRoundTrip(t *testing.T) {
	in := Frames([][]byte{bytes.Repeat([]byte{1}, 60), bytes.Repeat([]byte{2}, 14), bytes.Repeat([]byte{3}, 1514)})
	out := Frames([][]byte{bytes.Repeat([]byte{1}, 60), bytes.Repeat([]byte{2}, 60), bytes.Repeat([]byte{3}, 60)})
	out[1].Out = true
	out[2].Time = 31*time.Second + 7*time.Microsecond
	ifaces := Frames([][]byte{bytes.Repeat([]byte{1}, 60), bytes.Repeat([]byte{2}, 60), bytes.Repeat([]byte{3}, 60), bytes.Repeat([]byte{4}, 60)})
	ifaces[0].Iface, ifaces[1].Iface, ifaces[3].Iface = "eth1", "eth0", "eth1"
	ifaces[3].Out = true
	for name, c := range map[string]struct {
		frames []Frame
		magic  []byte
	}{
		"pcap":   {in, []byte{0xd4, 0xc3, 0xb2, 0xa1}},
		"pcapng": {out, []byte{0x0a, 0x0d, 0x0d, 0x0a}},
		// Interfaces by name, the default one (frame 3) among them.
		"interfaces": {ifaces, []byte{0x0a, 0x0d, 0x0d, 0x0a}},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WritePcap(&buf, c.frames); err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(buf.Bytes(), c.magic) {
				t.Errorf("capture starts % x, want % x", buf.Bytes()[:4], c.magic)
			}
			got, err := ReadPcap(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.frames, got); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadPcapRejects checks that captures xdpc cannot replay are refused
// with a message that says why.
func TestReadPcapRejects(t *testing.T) {
	var good bytes.Buffer
	if err := WritePcap(&good, Frames([][]byte{bytes.Repeat([]byte{1}, 60)})); err != nil {
		t.Fatal(err)
	}
	g := good.Bytes()
	cutRecord := append([]byte(nil), g[:len(g)-10]...)
	snapped := append([]byte(nil), g...)
	snapped[24+12] = 200 // original length 200 > captured 60
	linux := append([]byte(nil), g...)
	linux[20] = 113 // LINKTYPE_LINUX_SLL
	tests := map[string]struct {
		data []byte
		want string
	}{
		"empty":          {nil, "not a pcap or pcapng file"},
		"text":           {[]byte("hello, this is not a capture at all"), "pcap header"},
		"cut record":     {cutRecord, "packet 1"},
		"snapped":        {snapped, "captured 60 of 200 bytes"},
		"not ethernet":   {linux, "xdpc replays Ethernet captures only"},
		"pcapng garbage": {[]byte{0x0a, 0x0d, 0x0d, 0x0a, 1, 2, 3}, "pcapng header"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ReadPcap(bytes.NewReader(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzReadPcap feeds arbitrary bytes to the capture reader: an error or
// frames, never a panic, and never a frame longer than the input.
func FuzzReadPcap(f *testing.F) {
	var good bytes.Buffer
	if err := WritePcap(&good, Frames([][]byte{bytes.Repeat([]byte{1}, 60), bytes.Repeat([]byte{2}, 100)})); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a})
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, err := ReadPcap(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, fr := range frames {
			if len(fr.Data) > len(data) {
				t.Fatalf("frame %d has %d bytes, from %d bytes of input", fr.Index, len(fr.Data), len(data))
			}
		}
	})
}
