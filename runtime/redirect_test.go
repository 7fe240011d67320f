package runtime_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/runtime"
)

const redirectRule = `
  rule "scrub" {
    proto    = "udp"
    dst_port = 53
    action   = "redirect"
    to       = "out0"
  }
`

// TestRedirect attaches a policy to dut0 that redirects DNS to out0 and
// checks that the frames arrive, unchanged, on out0's peer sink0, while
// other frames are dropped there.
func TestRedirect(t *testing.T) {
	e := newEnv(t)
	e.ns.Veth(t, "out0", "sink0")
	// Frames redirected into a veth reach its peer only when the peer has
	// an XDP program: sink0 gets one that passes everything.
	e.apply(t, compileSrc(t, strings.Replace(policySrc("sink", "native", []string{"sink0"}, "", ""), `default = "drop"`, `default = "pass"`, 1)))
	e.apply(t, compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", redirectRule)))

	capture := e.capture(t, "sink0")
	s := e.sender(t)
	dns := udpFrame(t, srcMAC, "192.0.2.1", "192.0.2.2", 53)
	other := udpFrame(t, srcMAC, "192.0.2.1", "192.0.2.2", 54)
	s.sendN(t, dns, 5)
	s.sendN(t, other, 3)

	want := map[string]uint64{"scrub": 5, "default": 3}
	if diff := cmp.Diff(want, e.counts(t, "edge", want)); diff != "" {
		t.Errorf("edge counters (-want +got):\n%s", diff)
	}
	got := capture(5, time.Second)
	if len(got) != 5 {
		t.Fatalf("sink0 received %d frames, want the 5 redirected", len(got))
	}
	for i, f := range got {
		if !bytes.Equal(f, dns) {
			t.Errorf("frame %d on sink0 differs from the one sent:\n got %x\nwant %x", i, f, dns)
		}
	}
	sink := e.counts(t, "sink", map[string]uint64{"default": 5})
	if sink["default"] != 5 {
		t.Errorf("sink counted %v, want 5 frames", sink)
	}

	// A missing target fails the apply and keeps the previous program.
	before := e.status(t)
	missing := compileSrc(t, strings.Replace(policySrc("edge", "native", []string{"dut0"}, "", redirectRule), `"out0"`, `"nosuch0"`, 1))
	_, err := runtime.Apply(missing, runtime.ApplyOptions{Options: e.opts})
	if err == nil || !strings.Contains(err.Error(), "redirect target: find interface nosuch0") {
		t.Fatalf("apply with a missing target: error %v", err)
	}
	if after := e.status(t); after[0].ProgramID != before[0].ProgramID {
		t.Errorf("dut0 program %d after the failed apply, want %d", after[0].ProgramID, before[0].ProgramID)
	}
}

// capture opens a packet socket on ifname in the namespace; the returned
// function collects up to n frames (of our test protocol) within d.
func (e *env) capture(t *testing.T, ifname string) func(n int, d time.Duration) [][]byte {
	t.Helper()
	l, err := e.ns.Handle.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	e.ns.Do(t, func() {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_IP)))
	})
	if err != nil {
		t.Fatalf("open capture socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: l.Attrs().Index}); err != nil {
		t.Fatalf("bind capture socket: %v", err)
	}
	tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return func(n int, d time.Duration) [][]byte {
		var frames [][]byte
		buf := make([]byte, 2048)
		deadline := time.Now().Add(d)
		for len(frames) < n && time.Now().Before(deadline) {
			m, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			frames = append(frames, append([]byte(nil), buf[:m]...))
		}
		// Anything more within a short while is a frame too many.
		time.Sleep(20 * time.Millisecond)
		for {
			m, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if err != nil {
				break
			}
			frames = append(frames, append([]byte(nil), buf[:m]...))
		}
		return frames
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
