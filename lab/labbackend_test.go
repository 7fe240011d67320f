package lab

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/policy"
)

const labTestPolicy = `
policy "t" {
  default   = "drop"
  malformed = "pass"

  rule "ssh" {
    proto    = "tcp"
    dst_port = 22
    action   = "pass"
  }

  rule "udp" {
    proto  = "udp"
    action = "count"
  }

  rule "vlan-7" {
    vlan   = 7
    action = "pass"
  }
}
`

// loadTestPolicy loads src, which must hold one policy.
func loadTestPolicy(t *testing.T, src string) (*policy.Config, *policy.Policy) {
	t.Helper()
	cfg, diags := policy.Load("test.hcl", []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatalf("load policy: %s", diags.Error())
	}
	return cfg, cfg.Policies[0]
}

// TestLabBackendAgreesWithReference replays a few frames of every fate
// through the host topology and checks each line against the reference.
func TestLabBackendAgreesWithReference(t *testing.T) {
	cfg, p := loadTestPolicy(t, labTestPolicy)
	b, err := NewLabBackend(cfg, p, LabOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	lines := []string{
		"tcp 10.0.0.1:1000 > 10.0.0.2:22 flags S",
		"tcp 10.0.0.1:1000 > 10.0.0.2:23 flags S",
		"udp 10.0.0.1:53 > 10.0.0.2:53",
		"vlan 7 udp 10.0.0.1:53 > 10.0.0.2:53",
		"vlan 7 vlan 8 arp",
		"vlan 0 tcp [2001:db8::1]:1 > [2001:db8::2]:22",
		"ip 10.0.0.1 > 10.0.0.2 proto 6",
	}
	ref := newReferenceBackend(cfg, p)
	for i, line := range lines {
		frame, err := ParsePacket(line)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := ref.Run(Frame{Data: frame})
		got, err := b.Run(Frame{Data: frame})
		if err != nil {
			t.Errorf("packet %d (%s): %v", i+1, line, err)
			continue
		}
		if diff := cmp.Diff(want.String(), got.String()); diff != "" {
			t.Errorf("packet %d (%s): lab differs from reference (-want +got):\n%s", i+1, line, diff)
		}
	}
}

// TestLabBackendRefusesUndeliverableFrames checks that a frame the kernel
// would not deliver to the DUT gets an error, not a made-up verdict.
func TestLabBackendRefusesUndeliverableFrames(t *testing.T) {
	cfg, p := loadTestPolicy(t, labTestPolicy)
	b, err := NewLabBackend(cfg, p, LabOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	_, err = b.Run(Frame{Data: make([]byte, 13)})
	if _, ok := errors.AsType[ShortFrameError](err); !ok {
		t.Fatalf("Run(13 bytes) = %v, want a ShortFrameError", err)
	}
	// The kernel itself refuses to send it: the reason the lab cannot.
	if err := b.(*labBackend).inj.send(make([]byte, 13)); err == nil {
		t.Fatal("the kernel sent a 13-byte frame; the lab could observe it and should")
	}
	// The longest frame the veth carries (a tagged full-MTU frame) runs.
	longest, err := ParsePacket("vlan 7 udp 10.0.0.1:1 > 10.0.0.2:2 len 1472")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := b.Run(Frame{Data: longest}); err != nil || len(longest) != 1518 || v.Rule != "vlan-7" {
		t.Fatalf("Run(%d bytes) = %v, %v; want a verdict of vlan-7", len(longest), v, err)
	}
	// A frame longer than the veth carries is refused with its size.
	big, err := ParsePacket("udp 10.0.0.1:1 > 10.0.0.2:2 len 1600")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Run(Frame{Data: big})
	if fe, ok := errors.AsType[FrameSizeError](err); !ok || fe.Max != 1518 {
		t.Fatalf("Run(%d bytes) = %v, want a FrameSizeError with limit 1518", len(big), err)
	}
}
