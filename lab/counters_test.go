package lab

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// countAndDrop has a count rule and a deciding rule besides the fallback
// verdicts. (Rules cannot be named "default" or "malformed": the
// language refuses names of the built-in counters.)
const countAndDrop = `
policy "names" {
  default   = "pass"
  malformed = "drop"

  rule "tcp-seen" {
    proto  = "tcp"
    action = "count"
  }

  rule "no-udp" {
    proto  = "udp"
    action = "drop"
  }
}
`

// TestCountersBySlot replays frames through a policy on the reference and
// kernel backends: the tallied and the kernel's counters agree slot by
// slot, count rules, deciding rules and fallbacks alike.
func TestCountersBySlot(t *testing.T) {
	cfg, p := loadTestPolicy(t, countAndDrop)
	var frames []Frame
	for i, line := range []string{
		"udp 10.0.0.1:1 > 10.0.0.2:2",          // rule "no-udp": drop
		"udp 10.0.0.1:1 > 10.0.0.2:3",          // rule "no-udp": drop
		"tcp 10.0.0.1:1 > 10.0.0.2:22 flags S", // count "tcp-seen", then the default verdict
		"arp",                                  // the default verdict
		"icmp 10.0.0.1 > 10.0.0.2 type echo-request",
	} {
		f, err := ParsePacket(line)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, Frame{Index: i + 1, Data: f})
	}
	// An IPv4 header cut short: the malformed verdict.
	frames = append(frames, Frame{Index: len(frames) + 1, Data: append(frames[0].Data[:20:20], 0x45)})

	rows := map[string][]CounterRow{}
	verdicts := map[string]string{}
	for _, name := range []string{BackendReference, BackendKernel} {
		b, err := NewBackend(name, cfg, p)
		if err != nil {
			t.Fatal(err)
		}
		replayed := Replay(b, frames)
		verdicts[name] = Golden(replayed)
		if rows[name], err = Counters(b, p, replayed); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	if diff := cmp.Diff(verdicts[BackendReference], verdicts[BackendKernel]); diff != "" {
		t.Errorf("verdicts (-reference +kernel):\n%s", diff)
	}
	if diff := cmp.Diff(rows[BackendReference], rows[BackendKernel]); diff != "" {
		t.Errorf("counters (-reference +kernel):\n%s", diff)
	}
	packets := func(slot int) uint64 { return rows[BackendReference][slot].Packets }
	if packets(0) != 1 || packets(1) != 2 || packets(p.DefaultSlot()) != 3 || packets(p.MalformedSlot()) != 1 {
		t.Errorf("reference counters %+v, want 1 on count rule malformed, 2 on rule default, 3 on the default verdict, 1 on the malformed verdict", rows[BackendReference])
	}
}
