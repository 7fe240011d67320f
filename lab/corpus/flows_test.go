package corpus

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/xdpc/xdpc/conntrack"
)

// TestFlows checks what the flows hold: both directions, every kind of
// connection and ICMP error, waits that cross timeouts, frames of both
// families, tagged ones, and that every flow keeps its frames clear of
// the times entries could die.
func TestFlows(t *testing.T) {
	timeouts := conntrack.Timeouts{UDP: 5 * time.Second, TCPEstablished: time.Minute}
	flows := Flows(7, 300, timeouts)
	classes := map[string]int{}
	var frames, out, v6, tagged, longWaits int
	for i, f := range flows {
		if len(f.Frames) == 0 || len(f.Frames) > maxFlowFrames {
			t.Fatalf("flow %d has %d frames", i, len(f.Frames))
		}
		if !TimingSafe(f.Frames, timeouts) {
			t.Fatalf("flow %d has a frame within %s of a timeout", i, TimingMargin)
		}
		for j, fr := range f.Frames {
			frames++
			classes[strings.Fields(string(fr.Class))[0]]++
			classes[string(fr.Class)]++
			if fr.Out {
				out++
			}
			if len(fr.Data) < 14 {
				t.Fatalf("flow %d frame %d: %d bytes", i, j, len(fr.Data))
			}
			switch et := uint16(fr.Data[12])<<8 | uint16(fr.Data[13]); et {
			case 0x86dd:
				v6++
			case 0x8100, 0x88a8:
				tagged++
			}
			if j > 0 {
				gap := fr.Time - f.Frames[j-1].Time
				if gap < 0 {
					t.Fatalf("flow %d frame %d goes back in time", i, j)
				}
				if gap > 5*time.Second {
					longWaits++
				}
			}
		}
	}
	t.Logf("%d flows, %d frames (%d out, %d IPv6, %d tagged, %d long waits): %v", len(flows), frames, out, v6, tagged, longWaits, classes)
	for _, c := range []string{"tcp", "tcp S", "tcp SA", "tcp A", "tcp FA", "tcp R", "udp", "echo-request", "echo-reply", "other",
		"icmp-error", "icmp-error no-flow", "icmp-error fragment", "noise"} {
		if classes[c] == 0 {
			t.Errorf("no %q frame in the flows", c)
		}
	}
	if classes["icmp-error short"]+classes["icmp-error no-flow short"] == 0 {
		t.Error("no ICMP error carrying too little")
	}
	if out < frames/5 || out > frames*4/5 || v6 < frames/10 || tagged < frames/20 || longWaits < len(flows)/2 {
		t.Error("the flows lack frames of one direction, IPv6 or tagged frames, or waits")
	}
}

func TestFlowsDeterministic(t *testing.T) {
	a, b := Flows(3, 20, conntrack.Timeouts{}), Flows(3, 20, conntrack.Timeouts{})
	for i := range a {
		for j := range a[i].Frames {
			x, y := a[i].Frames[j], b[i].Frames[j]
			if !bytes.Equal(x.Data, y.Data) || x.Time != y.Time || x.Out != y.Out {
				t.Fatalf("flow %d frame %d differs between two runs with the same seed", i, j)
			}
		}
	}
}

// TestTimingSafe checks the margin around the times an entry could die.
func TestTimingSafe(t *testing.T) {
	to := conntrack.Timeouts{UDP: 30 * time.Second}
	at := func(ds ...time.Duration) []FlowFrame {
		var fs []FlowFrame
		for _, d := range ds {
			fs = append(fs, FlowFrame{Time: d})
		}
		return fs
	}
	for _, tc := range []struct {
		frames []FlowFrame
		safe   bool
	}{
		{at(0, time.Millisecond, 29*time.Second), true},
		{at(0, 29*time.Second+time.Millisecond), false},
		{at(0, 31*time.Second-time.Millisecond), false},
		{at(0, 31*time.Second), true},
		{at(0, 10*time.Second, 40*time.Second+500*time.Millisecond), false},
	} {
		if got := TimingSafe(tc.frames, to); got != tc.safe {
			t.Errorf("TimingSafe(%v) = %v, want %v", tc.frames, got, tc.safe)
		}
	}
}
