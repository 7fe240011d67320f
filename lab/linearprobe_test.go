package lab

import (
	"errors"
	"testing"
)

// TestKernelBackendRefusesSplitFrames checks that the kernel backend
// refuses a frame the test run would split, rather than report the
// program's verdict on its first part: the reference passes this frame,
// the program alone would call it malformed (its IPv4 length runs past
// what it can see).
func TestKernelBackendRefusesSplitFrames(t *testing.T) {
	cfg, p := loadTestPolicy(t, "policy \"p\" {\n  default = \"pass\"\n}\n")
	b, err := NewBackend(BackendKernel, cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for _, tc := range []struct {
		packet string
		split  bool
	}{
		{"udp 10.0.0.1:1 > 10.0.0.2:2 len 1000", false},
		{"udp 10.0.0.1:1 > 10.0.0.2:2 len 3500", true},
		{"udp 10.0.0.1:1 > 10.0.0.2:2 len 9000", true},
	} {
		frame, err := ParsePacket(tc.packet)
		if err != nil {
			t.Fatal(err)
		}
		v, err := b.Run(Frame{Data: frame})
		se, isSplit := errors.AsType[SplitFrameError](err)
		switch {
		case tc.split && (!isSplit || se.Len != len(frame) || se.Seen >= len(frame)):
			t.Errorf("%s: Run = %v, %v; want a SplitFrameError", tc.packet, v, err)
		case !tc.split && (err != nil || v.Rule != "default"):
			t.Errorf("%s: Run = %v, %v; want pass default", tc.packet, v, err)
		}
	}
}
