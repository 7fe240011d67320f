package runtime_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpc/xdpc/internal/livegen"
	"github.com/xdpc/xdpc/runtime"
)

// napiBudget is the most frames a veth's NAPI poll takes at once (the
// kernel's NAPI_POLL_WEIGHT). The veth adds them to its count of frames
// its XDP program ran on when the poll ends, so counters read meanwhile
// may be ahead of that count by up to this many.
const napiBudget = 64

// foldRounds is how many applies TestStatsDuringFold reads through.
const foldRounds = 50

// TestStatsDuringFold reads the counters without pause while applies
// retire counter maps and fold the ones retired before, under a flood:
// every read lies between the frames dut0's program had run on just before
// and just after it (no generation missed, none counted twice), never below
// the read before, and once the flood stops the counts are the frames
// exactly. The flood is the default verdict's in both versions, so every
// count is shown.
func TestStatsDuringFold(t *testing.T) {
	e := newEnv(t)
	v1 := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", dnsRule+webRule))
	v2 := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", webRule))
	e.apply(t, v2)
	e.apply(t, v1)
	seen0, counted0 := e.seen(t), e.shown(t, "edge")
	flood := e.flood(t, "src0", "dut0")

	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		mu       sync.Mutex // guards reads, failures and quit
		reads    int
		failures []string
		quit     bool // the reader gave up
	)
	readsSoFar := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		return reads, quit
	}
	// waitRead returns once the reader has finished a read after n, or
	// has given up.
	waitRead := func(n int) {
		for {
			if r, q := readsSoFar(); r > n || q {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var last uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			lo, c, hi, err := e.bracketedRead(seen0, counted0)
			mu.Lock()
			reads++
			if err != nil {
				failures = append(failures, err.Error())
			} else if c < lo || c > hi+napiBudget || c < last {
				failures = append(failures, fmt.Sprintf("read %d: counted %d, dut0's program had run on %d before the read and %d after; the read before counted %d", reads, c, lo, hi, last))
			}
			quit = err != nil
			mu.Unlock()
			if quit {
				return
			}
			last = c
		}
	}()
	waitRead(0)
	pins := map[string]bool{}
	for i := range foldRounds {
		elf := v2
		if i%2 == 1 {
			elf = v1
		}
		if _, err := runtime.Apply(elf, runtime.ApplyOptions{Options: e.opts}); err != nil {
			close(stop)
			wg.Wait()
			flood.stop(t)
			t.Fatalf("apply %d: %v", i, err)
		}
		for _, p := range e.retired(t, "edge") {
			pins[p] = true
		}
	}
	n, _ := readsSoFar()
	waitRead(n)
	close(stop)
	wg.Wait()
	res := flood.stop(t)
	folded := 0
	for p := range pins {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			folded++
		}
	}

	seen, got := e.settle(t, seen0, func() uint64 { return e.shown(t, "edge") - counted0 })
	t.Logf("%d reads during %d applies that folded %d retired counter maps, under a flood of %d frames at %.0f frames/s; dut0's program ran on %d, counted %d",
		reads, foldRounds, folded, res.Sent, res.Rate(), seen, got)
	for _, f := range failures[:min(len(failures), 5)] {
		t.Error(f)
	}
	if len(failures) > 5 {
		t.Errorf("and %d more", len(failures)-5)
	}
	if got != seen {
		t.Errorf("counted %d frames, dut0's program ran on %d: %d lost or counted twice", got, seen, int64(seen)-int64(got))
	}
	if folded == 0 {
		t.Errorf("no retired counter map was folded during %d applies", foldRounds)
	}
}

// TestCountersOfInterfaceLeftBehind floods dut1, which an apply that names
// only dut0 leaves on the previous version of the policy: dut1's program
// still counts in the retired map, so later applies must not fold it, and
// its counts go on adding up. Once dut1 is detached the map is folded and
// nothing is lost.
func TestCountersOfInterfaceLeftBehind(t *testing.T) {
	e := newEnv(t)
	e.ns.Veth(t, "src1", "dut1")
	both := compileSrc(t, policySrc("edge", "native", []string{"dut0", "dut1"}, "", dnsRule+webRule))
	only0 := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", webRule))
	only0again := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", webRule+dnsRule))
	e.apply(t, both)
	seen0, counted0 := e.seenOn(t, "dut1"), e.shown(t, "edge")
	flood := e.flood(t, "src1", "dut1")

	rep := e.apply(t, only0)
	if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "dut1 still runs the previous version") }) {
		t.Errorf("notes %q, want a warning that dut1 still runs the previous version", rep.Notes)
	}
	left := e.retired(t, "edge")
	if len(left) != 1 {
		flood.stop(t)
		t.Fatalf("retired counter maps %q after the apply that left dut1 behind, want one", left)
	}
	for i := range 10 {
		elf := only0again
		if i%2 == 1 {
			elf = only0
		}
		e.apply(t, elf)
	}
	if _, err := os.Stat(left[0]); err != nil {
		t.Errorf("the counter map dut1's program counts in was folded while it ran: %v", err)
	}
	res := flood.stop(t)
	counted := func() uint64 { return e.shown(t, "edge") - counted0 }
	seen, got := e.settle(t, seen0, counted, "dut1")
	t.Logf("11 applies to dut0 under a flood of dut1 of %d frames at %.0f frames/s; dut1's program ran on %d, counted %d", res.Sent, res.Rate(), seen, got)
	if got != seen {
		t.Errorf("counted %d frames, dut1's program ran on %d: %d lost or counted twice", got, seen, int64(seen)-int64(got))
	}

	// The kernel lets go of a program whose pin was removed shortly after
	// (once an RCU grace period has passed): the detach folds the map if
	// the program is gone by then, another detach (of nothing) otherwise.
	if _, err := runtime.Detach(e.opts, "dut1"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := os.Stat(left[0]); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the counter map of dut1's program is still pinned after detaching dut1")
			break
		}
		time.Sleep(10 * time.Millisecond)
		if _, err := runtime.Detach(e.opts, "dut1"); err != nil {
			t.Fatal(err)
		}
	}
	if after := counted(); after != seen {
		t.Errorf("counted %d frames after detaching dut1, %d before", after, seen)
	}
}

// shown returns the packets of every rule runtime.Stats shows for the
// policy, as `xdpc stats` reads them.
func (e *env) shown(t testing.TB, policyName string) uint64 {
	t.Helper()
	n, err := e.shownErr(policyName)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) shownErr(policyName string) (uint64, error) {
	stats, err := runtime.Stats(e.opts)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, ps := range stats {
		if ps.Policy == policyName {
			for _, r := range ps.Rules {
				n += r.Packets
			}
		}
	}
	return n, nil
}

// bracketedRead reads dut0's count of frames its program ran on, the
// counters of policy edge, and dut0's count again, each less the given
// starting points.
func (e *env) bracketedRead(seen0, counted0 uint64) (lo, counted, hi uint64, err error) {
	before, err := livegen.ReadVethStats(e.ns.Name, "dut0")
	if err != nil {
		return 0, 0, 0, err
	}
	c, err := e.shownErr("edge")
	if err != nil {
		return 0, 0, 0, err
	}
	after, err := livegen.ReadVethStats(e.ns.Name, "dut0")
	if err != nil {
		return 0, 0, 0, err
	}
	return before.XDPPackets - seen0, c - counted0, after.XDPPackets - seen0, nil
}

// TestFailedApplyKeepsCounts floods dut0 while applies of a new version
// fail half way: each replaces dut0's program, fails on lo (which has no
// native XDP) and gives dut0 its program back. The new program counted
// some frames in its own map meanwhile; they are kept, the previous
// counter map is current again and stats show the previous rules.
func TestFailedApplyKeepsCounts(t *testing.T) {
	e := newEnv(t)
	good := compileSrc(t, policySrc("edge", "native", []string{"dut0"}, "", dnsRule+webRule))
	bad := compileSrc(t, policySrc("edge", "native", []string{"dut0", "lo"}, "", webRule))
	e.apply(t, good)
	first := e.counterMapID(t, "edge")
	seen0, counted0 := e.seen(t), e.shown(t, "edge")
	flood := e.flood(t, "src0", "dut0")
	const rounds = 20
	for range rounds {
		_, err := runtime.Apply(bad, runtime.ApplyOptions{Options: e.opts})
		if err == nil || !strings.Contains(err.Error(), "native mode") {
			flood.stop(t)
			t.Fatalf("apply error %v, want one about native mode on lo", err)
		}
	}
	res := flood.stop(t)
	seen, got := e.settle(t, seen0, func() uint64 { return e.shown(t, "edge") - counted0 })
	t.Logf("%d failed applies under a flood of %d frames at %.0f frames/s; dut0's program ran on %d, counted %d", rounds, res.Sent, res.Rate(), seen, got)
	if got != seen {
		t.Errorf("counted %d frames, dut0's program ran on %d: %d lost or counted twice", got, seen, int64(seen)-int64(got))
	}
	if id := e.counterMapID(t, "edge"); id != first {
		t.Errorf("counter map %d after the failed applies, want the previous one %d", id, first)
	}
	var rules []string
	for _, ps := range mustStats(t, e) {
		for _, r := range ps.Rules {
			rules = append(rules, r.Rule)
		}
	}
	if want := []string{"dns", "web", "default", "malformed"}; !slices.Equal(rules, want) {
		t.Errorf("stats show rules %q after the failed applies, want the previous version's %q", rules, want)
	}
}

func mustStats(t testing.TB, e *env) []runtime.PolicyStats {
	t.Helper()
	stats, err := runtime.Stats(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	return stats
}
