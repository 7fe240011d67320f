package lab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/xdpc/xdpc/internal/checksum"
)

var update = flag.Bool("update", false, "rewrite the golden lab cases' in.pcap and expected.txt")

// caseDir holds the golden lab cases.
const caseDir = "../testdata/lab"

// minCases is how many golden cases the suite must hold.
const minCases = 30

// TestCases runs every golden case on every backend: each must print
// exactly the case's expected.txt. -update regenerates in.pcap from
// packets.txt and rewrites expected.txt from the reference backend, which
// the kernel and lab backends must then still match.
func TestCases(t *testing.T) {
	cases, err := FindCases(caseDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < minCases {
		t.Errorf("%d golden cases, want at least %d", len(cases), minCases)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			checkCapture(t, c)
			expectedPath := filepath.Join(c.Dir, CaseExpectedFile)
			if *update {
				got, err := c.Replay(BackendReference)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(expectedPath, []byte(Golden(got)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(expectedPath)
			if err != nil {
				t.Fatal(err)
			}
			var reference []Verdict
			for _, backend := range Backends() {
				t.Run(backend, func(t *testing.T) {
					got, err := c.Replay(backend)
					if err != nil {
						t.Fatal(err)
					}
					if diff := GoldenDiff(string(want), Golden(got)); diff != "" {
						t.Errorf("%s backend differs from %s:\n%s", backend, expectedPath, diff)
					}
					frames, err := ReadPcapFile(filepath.Join(c.Dir, CaseCaptureFile))
					if err != nil {
						t.Fatal(err)
					}
					for i, v := range got {
						if v.Frame == nil {
							continue
						}
						if err := checkNATChecksums(frames[i].Data, v.Frame); err != nil {
							t.Errorf("packet %d: %v:\n% x", i+1, err, v.Frame)
						}
					}
					if backend == BackendReference {
						reference = got
						return
					}
					// A rewritten frame is compared byte by byte.
					for i := range min(len(got), len(reference)) {
						if !bytes.Equal(got[i].Frame, reference[i].Frame) {
							t.Errorf("packet %d leaves %s as\n% x\nthe reference's\n% x", i+1, backend, got[i].Frame, reference[i].Frame)
						}
					}
				})
			}
		})
	}
}

// checkCapture checks that in.pcap is what packets.txt generates, or
// rewrites it with -update. Every golden case has a packets.txt.
func checkCapture(t *testing.T, c Case) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(c.Dir, CasePacketsFile)); err != nil {
		t.Fatal(err)
	}
	if *update {
		if _, err := c.GenerateCapture(); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := c.CheckCapture(); err != nil {
		t.Fatalf("%v\n(go generate ./lab, or go test ./lab -update, regenerates every case's capture)", err)
	}
}

// TestCheckCapture checks that a capture which is not what its packet list
// generates is found, and that the error says where the two part.
func TestCheckCapture(t *testing.T) {
	const list = "tcp 10.0.0.1:1 > 10.0.0.2:22\n# two frames of a class\nclass short-tcp 2\n"
	otherTimes := func(t *testing.T, c Case) {
		frames, err := ReadPacketList("packets.txt", strings.NewReader(list), PacketListOptions{Case: c.Name})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		pw := pcapgo.NewWriter(&buf)
		if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		for i, f := range frames {
			ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(1800000000+i), 0), CaptureLength: len(f.Data), Length: len(f.Data)}
			if err := pw.WritePacket(ci, f.Data); err != nil {
				t.Fatal(err)
			}
		}
		writeFile(t, c.Dir, CaseCaptureFile, buf.String())
	}
	tests := []struct {
		name   string
		change func(t *testing.T, c Case)
		detail string // "" when the capture is fresh
	}{
		{"fresh", func(*testing.T, Case) {}, ""},
		{"list edited", func(t *testing.T, c Case) {
			writeFile(t, c.Dir, CasePacketsFile, strings.Replace(list, "class short-tcp 2", "class short-tcp 3", 1))
		}, "it holds 3 packets, the list gives 4"},
		{"packet edited", func(t *testing.T, c Case) {
			writeFile(t, c.Dir, CasePacketsFile, strings.Replace(list, ":22", ":23", 1))
		}, "packet 1 (packets.txt line 1) differs"},
		{"class seeded by another case", func(t *testing.T, c Case) {
			// The same list under another case name draws other frames.
			other := Case{Name: "other", Dir: c.Dir}
			if _, err := other.GenerateCapture(); err != nil {
				t.Fatal(err)
			}
		}, "packet 2 (packets.txt line 3) differs"},
		{"other timestamps", otherTimes, "the frames are the same but not the file's other bytes (its header or timestamps)"},
		{"no capture", func(t *testing.T, c Case) {
			if err := os.Remove(filepath.Join(c.Dir, CaseCaptureFile)); err != nil {
				t.Fatal(err)
			}
		}, "there is no in.pcap"},
		{"not a capture", func(t *testing.T, c Case) { writeFile(t, c.Dir, CaseCaptureFile, list) },
			"it is not a capture xdpc reads (pcap header: Unknown magic 20706374)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Case{Name: "check", Dir: filepath.Join(t.TempDir(), "check")}
			if err := os.Mkdir(c.Dir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, c.Dir, CasePacketsFile, list)
			if _, err := c.GenerateCapture(); err != nil {
				t.Fatal(err)
			}
			tc.change(t, c)
			err := c.CheckCapture()
			if tc.detail == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			stale, ok := errors.AsType[*StaleCaptureError](err)
			if !ok {
				t.Fatalf("CheckCapture() = %v, want a *StaleCaptureError", err)
			}
			if diff := cmp.Diff(tc.detail, stale.Detail); diff != "" {
				t.Errorf("detail (-want +got):\n%s", diff)
			}
			capture, packets := filepath.Join(c.Dir, CaseCaptureFile), filepath.Join(c.Dir, CasePacketsFile)
			if want := "regenerate it with xdpc pcap -o " + capture + " " + packets + " (or xdpc test -update " + c.Dir + ")"; !strings.HasSuffix(err.Error(), want) {
				t.Errorf("error %q does not end with %q", err, want)
			}
		})
	}
	// A case without a packet list replays its capture as it is.
	if err := (Case{Name: "bare", Dir: t.TempDir()}).CheckCapture(); err != nil {
		t.Errorf("a case without %s: %v", CasePacketsFile, err)
	}
}

func writeFile(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkNATChecksums verifies the checksums of frame out, what NAT made of
// frame in, by recomputing them in full (internal/checksum, apart from
// the reference's package nat and the compiler's BPF): the IPv4 header's (and an ICMP
// error's carried one), an ICMP message's, and a TCP or UDP segment's
// over its pseudo-header, unless in's was absent (UDP 0: out's must be
// 0) or partial (out's must be the pseudo-header sum of its addresses);
// a first fragment's segment is not all there to verify.
func checkNATChecksums(in, out []byte) error {
	l3 := 14
	for et := binary.BigEndian.Uint16(out[12:]); et == 0x8100 || et == 0x88a8; et = binary.BigEndian.Uint16(out[l3-2:]) {
		l3 += 4
	}
	ip := out[l3:]
	hl, total := int(ip[0]&0x0f)*4, int(binary.BigEndian.Uint16(ip[2:]))
	if checksum.Sum(ip[:hl], 0) != 0xffff {
		return errors.New("the IPv4 header checksum does not verify")
	}
	frag := binary.BigEndian.Uint16(ip[6:])
	if frag&0x1fff != 0 {
		return nil
	}
	seg, inSeg := ip[hl:total], in[l3+hl:]
	pseudo := func(b, seg []byte) uint32 { return checksum.Pseudo(b, len(seg)) }
	switch ip[9] {
	case 1:
		if checksum.Sum(seg, 0) != 0xffff {
			return errors.New("the ICMP checksum does not verify")
		}
		if t := seg[0]; t == 3 || t == 11 || t == 12 {
			carried := seg[8:]
			if checksum.Sum(carried[:int(carried[0]&0x0f)*4], 0) != 0xffff {
				return errors.New("the carried IPv4 header checksum does not verify")
			}
		}
	case 6, 17:
		field := 16
		if ip[9] == 17 {
			field = 6
		}
		got, was := binary.BigEndian.Uint16(seg[field:]), binary.BigEndian.Uint16(inSeg[field:])
		inIP := in[l3:]
		switch {
		case ip[9] == 17 && was == 0:
			if got != 0 {
				return fmt.Errorf("a UDP checksum of 0 became %#04x", got)
			}
		case uint32(was) == pseudo(inIP, inSeg[:len(seg)]) && checksum.Sum(inSeg[:len(seg)], pseudo(inIP, inSeg[:len(seg)])) != 0xffff:
			if want := uint16(pseudo(ip, seg)); got != want {
				return fmt.Errorf("a partial checksum became %#04x, want the pseudo-header sum %#04x", got, want)
			}
		case frag&0x2000 != 0:
		case checksum.Sum(seg, pseudo(ip, seg)) != 0xffff:
			return errors.New("the TCP or UDP checksum does not verify")
		}
	}
	return nil
}
