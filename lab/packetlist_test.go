package lab

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestReadPacketListLineKinds reads every kind of line a packet list holds
// and checks the frames each gives, in order.
func TestReadPacketListLineKinds(t *testing.T) {
	list := `# a comment
tcp 10.0.0.1:1 > 10.0.0.2:22

	class short-tcp 2
hex 0200000000020200000000010806
  # an indented comment
class lldp
`
	got, err := ReadPacketList("list.txt", strings.NewReader(list), PacketListOptions{Case: "kinds", Hex: true})
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := ParsePacket("tcp 10.0.0.1:1 > 10.0.0.2:22")
	if err != nil {
		t.Fatal(err)
	}
	// The class lines draw what a case named "kinds" draws at lines 4 and 7.
	short := mustClassLine(t, "kinds", 4, "short-tcp", "2")
	lldp := mustClassLine(t, "kinds", 7, "lldp")
	want := [][]byte{tcp, short[0], short[1], {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 6}, lldp[0]}
	if diff := cmp.Diff(want, FrameData(got)); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
	for i, f := range got {
		if f.Index != i+1 {
			t.Errorf("frame %d has index %d", i+1, f.Index)
		}
	}
	if other := mustClassLine(t, "other", 7, "lldp"); cmp.Equal(other, lldp) {
		t.Error("class lines of two cases drew the same frames: the case name does not seed them")
	}
}

// TestReadPacketListTimeAndDirection checks the clock of a list (frames 1
// ms apart, wait lines moving it on) and its out lines (the host's own
// frames).
func TestReadPacketListTimeAndDirection(t *testing.T) {
	list := `tcp 10.0.0.9:40000 > 10.0.0.2:22 flags S
out tcp 10.0.0.2:22 > 10.0.0.9:40000 flags SA
wait 31s
tcp 10.0.0.9:40000 > 10.0.0.2:22 flags A
class short-tcp 2
`
	got, err := ReadPacketList("list.txt", strings.NewReader(list), PacketListOptions{Case: "clock"})
	if err != nil {
		t.Fatal(err)
	}
	type at struct {
		Time time.Duration
		Out  bool
	}
	var times []at
	for _, f := range got {
		times = append(times, at{f.Time, f.Out})
	}
	ms := time.Millisecond
	want := []at{{0, false}, {ms, true}, {2*ms + 31*time.Second, false}, {3*ms + 31*time.Second, false}, {4*ms + 31*time.Second, false}}
	if diff := cmp.Diff(want, times); diff != "" {
		t.Errorf("times and directions (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"wait", "wait 5", "wait -1s", "wait 1s 2s", "out"} {
		if _, err := ReadPacketList("list.txt", strings.NewReader(bad+"\n"), PacketListOptions{}); err == nil {
			t.Errorf("%q read without an error", bad)
		}
	}
}

func mustClassLine(t *testing.T, caseName string, line int, args ...string) [][]byte {
	t.Helper()
	fs, err := PacketListOptions{Case: caseName}.classLine(line, args)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestReadPacketListReportsEveryBadLine checks that a list is read to its
// end and every bad line is reported with its file and line number.
func TestReadPacketListReportsEveryBadLine(t *testing.T) {
	list := `tcp 10.0.0.1:1 > 10.0.0.2:22
tcp 10.0.0.1 > 10.0.0.2:22
# fine
class no-such-class
class short-tcp 0
hex 02000000
udp 10.0.0.1:1 > 10.0.0.2:2
sctp 10.0.0.1:1 > 10.0.0.2:2
`
	_, err := ReadPacketList("cases/x/packets.txt", strings.NewReader(list), PacketListOptions{Case: "x"})
	bad, ok := errors.AsType[*PacketListError](err)
	if !ok {
		t.Fatalf("error %v, want a *PacketListError", err)
	}
	var lines []int
	for _, l := range bad.Lines {
		lines = append(lines, l.Line)
	}
	if diff := cmp.Diff([]int{2, 4, 5, 6, 8}, lines); diff != "" {
		t.Errorf("bad lines (-want +got):\n%s", diff)
	}
	want := `cases/x/packets.txt:2: parse packet "tcp 10.0.0.1 > 10.0.0.2:22": word 2 "10.0.0.1": expected ADDRESS:PORT, like 10.0.0.1:1234 or [2001:db8::1]:443
cases/x/packets.txt:4: no corpus class "no-such-class"
cases/x/packets.txt:5: count "0": want 1 to 100
cases/x/packets.txt:6: hex frames are not allowed in cases: describe the packet, or name a corpus class
cases/x/packets.txt:8: parse packet "sctp 10.0.0.1:1 > 10.0.0.2:2": word 1 "sctp": expected a body: tcp, udp, icmp, icmpv6, ip, arp or ether 0xTYPE`
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

// TestReplayLeavesOutFramesUnfiltered checks that a frame the host sent
// gets an "out" line and is counted by no slot, on every backend.
func TestReplayLeavesOutFramesUnfiltered(t *testing.T) {
	cfg, p := loadTestPolicy(t, `policy "p" {
  default = "drop"
}
`)
	frames, err := ReadPacketList("list.txt", strings.NewReader("out udp 10.0.0.2:53 > 10.0.0.9:5353\nudp 10.0.0.9:5353 > 10.0.0.2:53\n"), PacketListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{BackendReference, BackendKernel} {
		b, err := NewBackend(name, cfg, p)
		if err != nil {
			t.Fatal(err)
		}
		got := Replay(b, frames)
		rows, err := Counters(b, p, got)
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Verdict != VerdictOut || got[1].Verdict != "drop" {
			t.Errorf("%s: verdicts %q, %q; want out, drop", name, got[0].Verdict, got[1].Verdict)
		}
		if rows[p.DefaultSlot()].Packets != 1 {
			t.Errorf("%s: the default counted %d packets, want 1 (the out frame is not filtered)", name, rows[p.DefaultSlot()].Packets)
		}
	}
}

// TestReadPacketListInterfaces reads "on IFACE" before a packet, an out
// line and a class line, and refuses it without a packet.
func TestReadPacketListInterfaces(t *testing.T) {
	list := "on eth1 udp 10.0.0.5:1 > 192.0.2.1:2\non eth0 out udp 192.0.2.1:2 > 10.0.0.5:1\nudp 10.0.0.5:1 > 192.0.2.1:2\non eth1 class short-tcp 2\n"
	frames, err := ReadPacketList("packets.txt", strings.NewReader(list), PacketListOptions{Case: "c"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range frames {
		got = append(got, fmt.Sprintf("%s/%v", f.Iface, f.Out))
	}
	if want := []string{"eth1/false", "eth0/true", "/false", "eth1/false", "eth1/false"}; !slices.Equal(got, want) {
		t.Errorf("interfaces %v, want %v", got, want)
	}
	if _, err := ReadPacketList("packets.txt", strings.NewReader("on eth1\n"), PacketListOptions{}); err == nil || !strings.Contains(err.Error(), `"on" needs`) {
		t.Errorf("on without a packet: %v", err)
	}
}
