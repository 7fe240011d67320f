package runtime_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/internal/livegen"
	"github.com/xdpc/xdpc/runtime"
)

// replaceRounds is how many applies each replace test runs under traffic.
const replaceRounds = 100

// bulkRule matches the flood's frames (UDP to port 9).
const bulkRule = `
  rule "bulk" {
    proto    = "udp"
    dst_port = 9
    action   = "drop"
  }
`

// TestReplaceUnderTraffic floods dut0 at full rate while applying two
// policies alternately: every frame dut0's XDP program saw was counted by
// one of the two programs, so no frame met a moment without a program.
func TestReplaceUnderTraffic(t *testing.T) {
	e := newEnv(t)
	alpha := compileSrc(t, policySrc("alpha", "native", []string{"dut0"}, "", webRule))
	beta := compileSrc(t, policySrc("beta", "native", []string{"dut0"}, "", dnsRule))
	e.replaceUnderFlood(t, [][]byte{alpha, beta}, "alpha", "beta")
}

// TestReplaceKeepsCountsWhenSlotsChange floods dut0 at full rate while one
// policy is applied replaceRounds times, so that its counter slots change
// on every apply: the counts of the rules must add up to the frames dut0's
// XDP program saw, exactly, though each apply gives the program a new
// counter map while the previous program still counts in the old one.
func TestReplaceKeepsCountsWhenSlotsChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v1, v2 string
	}{
		// The flood is counted by "bulk" and by the default verdict in
		// turn; "bulk" comes back with its counts.
		{"rule matching the flood added and removed", bulkRule + webRule, webRule},
		// The flood is always the default verdict's, whose slot moves.
		{"rule before the others added and removed", dnsRule + webRule, webRule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			v1 := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", tc.v1))
			v2 := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", tc.v2))
			maps := e.replaceUnderFlood(t, [][]byte{v1, v2}, "edge")
			if len(maps) < replaceRounds {
				t.Errorf("the policy had %d counter maps over %d applies; want a new one on each", len(maps), replaceRounds)
			}
			// Each apply folds the maps no program counts in any more.
			if n := len(e.retired(t, "edge")); n > replaceRounds/2 {
				t.Errorf("%d retired counter maps left after %d applies: they are not folded", n, replaceRounds)
			}
		})
	}
}

// TestReplaceReusesCountersWhenSlotsStay applies two versions of a policy
// whose rules count the same things (one rule matches other ports) under
// the same flood: the counter map is the first apply's all along and the
// counts add up.
func TestReplaceReusesCountersWhenSlotsStay(t *testing.T) {
	e := newEnv(t)
	other := strings.ReplaceAll(bulkRule, "dst_port = 9", "dst_port = 10")
	v1 := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", bulkRule+webRule))
	v2 := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", other+webRule))
	maps := e.replaceUnderFlood(t, [][]byte{v1, v2}, "edge")
	if len(maps) != 1 {
		t.Errorf("the policy had %d counter maps, want the first one reused by every apply", len(maps))
	}
}

// replaceUnderFlood applies every version once, versions[0] last, floods dut0 from src0 with UDP
// frames to port 9 and, while the flood runs, applies versions[1], versions[0], ...
// replaceRounds times. It then checks that the packets counted by the
// named policies are the frames dut0's XDP program ran on, and returns the
// ids of the counter maps the first policy had after each apply.
func (e *env) replaceUnderFlood(t *testing.T, versions [][]byte, policies ...string) map[ebpf.MapID]bool {
	t.Helper()
	for i := len(versions) - 1; i >= 0; i-- {
		e.apply(t, versions[i])
	}
	counted := func() uint64 {
		var n uint64
		for _, name := range policies {
			ps, err := runtime.PolicyCounters(e.opts, name)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range ps.Rules {
				n += r.Packets
			}
		}
		return n
	}
	seen0, counted0 := e.seen(t), counted()
	maps := map[ebpf.MapID]bool{e.counterMapID(t, policies[0]): true}

	flood := e.flood(t, "src0", "dut0")
	var durations []time.Duration
	overlapped := 0 // applies during which frames arrived
	for i := range replaceRounds {
		t0, before := time.Now(), e.seen(t)
		if _, err := runtime.Apply(versions[(i+1)%len(versions)], runtime.ApplyOptions{Options: e.opts}); err != nil {
			flood.stop(t)
			t.Fatalf("apply %d: %v", i, err)
		}
		durations = append(durations, time.Since(t0))
		if e.seen(t) != before {
			overlapped++
		}
		maps[e.counterMapID(t, policies[0])] = true
	}
	// Traffic after the last apply too, whatever the pauses between the
	// generator's runs.
	midway := e.seen(t)
	for deadline := time.Now().Add(5 * time.Second); e.seen(t) == midway && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	after := e.seen(t)
	res := flood.stop(t)

	// dut0 counts a frame after its program ran; wait for the last poll.
	seen, got := e.settle(t, seen0, func() uint64 { return counted() - counted0 })
	t.Logf("%d applies (%d while frames arrived) in %s (median %s) under a flood of %d frames at %.0f frames/s (%d runs restarted); dut0's program ran on %d, counted %d",
		replaceRounds, overlapped, res.Elapsed.Round(time.Millisecond), median(durations), res.Sent, res.Rate(), res.Interrupted, seen, got)
	if got != seen {
		t.Errorf("counted %d frames, dut0's program ran on %d: %d lost or counted twice (%s)", got, seen, int64(seen)-int64(got), e.drops(t))
	}
	if midway-seen0 < replaceRounds || after == midway {
		t.Errorf("dut0 saw %d frames during the %d applies and %d after: the flood did not overlap them", midway-seen0, replaceRounds, after-midway)
	}
	return maps
}

// retired returns the pins of the policy's retired counter maps.
func (e *env) retired(t testing.TB, policyName string) []string {
	t.Helper()
	pins, err := filepath.Glob(filepath.Join(e.opts.PinRoot, "maps", policyName, "counters_g*"))
	if err != nil {
		t.Fatal(err)
	}
	return pins
}

// flooding is a livegen flood into dut0 running in the background.
type flooding struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	res    livegen.Result
	err    error
}

// flood starts sending UDP frames to port 9 out of from as fast as the
// kernel can, for at most a minute, and returns once the XDP program of
// its peer to has seen the first.
func (e *env) flood(t *testing.T, from, to string) *flooding {
	t.Helper()
	frame := udpFrame(t, srcMAC, "192.0.2.1", "192.0.2.2", 9)
	ctx, cancel := context.WithCancel(context.Background())
	f := &flooding{cancel: cancel}
	t.Cleanup(cancel)
	before := e.seenOn(t, to)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.res, f.err = livegen.Send(ctx, livegen.Options{
			Netns: e.ns.Name, Interface: from, Frame: frame,
			Frames: 1 << 40, Duration: time.Minute,
		})
	}()
	for deadline := time.Now().Add(5 * time.Second); e.seenOn(t, to) == before; {
		if time.Now().After(deadline) {
			f.stop(t)
			t.Fatalf("%s saw no frame of the flood", to)
		}
		time.Sleep(time.Millisecond)
	}
	return f
}

// stop ends the flood and returns what it sent.
func (f *flooding) stop(t *testing.T) livegen.Result {
	t.Helper()
	f.cancel()
	f.wg.Wait()
	if f.err != nil {
		t.Fatalf("flood: %v", f.err)
	}
	return f.res
}

// seen returns the frames dut0's XDP program ran on so far.
func (e *env) seen(t testing.TB) uint64 {
	t.Helper()
	return e.seenOn(t, "dut0")
}

// seenOn returns the frames the XDP program of the veth ifname ran on so
// far: livegen.VethStats.XDPPackets, the exact count.
func (e *env) seenOn(t testing.TB, ifname string) uint64 {
	t.Helper()
	st, err := livegen.ReadVethStats(e.ns.Name, ifname)
	if err != nil {
		t.Fatal(err)
	}
	return st.XDPPackets
}

// settle waits, after a flood stopped, for the counters to reach what the
// veth (dut0, or the one named) says its program ran on since seen0, at
// most two seconds, and returns both.
func (e *env) settle(t testing.TB, seen0 uint64, counted func() uint64, ifname ...string) (seen, got uint64) {
	t.Helper()
	name := "dut0"
	if len(ifname) > 0 {
		name = ifname[0]
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		seen, got = e.seenOn(t, name)-seen0, counted()
		if got == seen || time.Now().After(deadline) {
			return seen, got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

// drops describes the veth pair's XDP ring and drop counters, to tell
// frames the veth refused (a full receive ring) from frames no program
// counted.
func (e *env) drops(t testing.TB) string {
	t.Helper()
	var parts []string
	for _, name := range []string{"src0", "dut0"} {
		st, err := livegen.ReadVethStats(e.ns.Name, name)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf("%s %+v", name, st))
	}
	return strings.Join(parts, ", ")
}
