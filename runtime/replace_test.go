package runtime_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpc/xdpc/runtime"
)

// replaceRounds is how many applies TestReplaceUnderTraffic runs.
const replaceRounds = 100

// TestReplaceUnderTraffic sends a constant stream of frames to dut0 while
// applying two policies alternately replaceRounds times. Every frame must
// be counted by one of the two programs: the sum of both policies'
// counters equals the frames sent, so no frame met a moment without a
// program.
func TestReplaceUnderTraffic(t *testing.T) {
	e := newEnv(t)
	alpha := compileSrc(t, policySrc("alpha", "native", []string{"dut0"}, "", webRule))
	beta := compileSrc(t, policySrc("beta", "native", []string{"dut0"}, "", dnsRule))
	e.apply(t, alpha)

	s := e.sender(t)
	frame := udpFrame(t, srcMAC, "192.0.2.1", "192.0.2.2", 9)
	var (
		sent atomic.Uint64
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	const maxFrames = 2_000_000 // bounds the stream should stop never come
	wg.Add(1)
	go func() {
		defer wg.Done()
		for sent.Load() < maxFrames {
			select {
			case <-stop:
				return
			default:
			}
			for range 8 {
				s.send(t, frame)
				sent.Add(1)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()

	start := time.Now()
	var durations []time.Duration
	for i := range replaceRounds {
		elf := beta
		if i%2 == 1 {
			elf = alpha
		}
		t0 := time.Now()
		if _, err := runtime.Apply(elf, runtime.ApplyOptions{Options: e.opts}); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("apply %d: %v", i, err)
		}
		durations = append(durations, time.Since(t0))
	}
	time.Sleep(20 * time.Millisecond) // traffic after the last apply
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	total := sent.Load()
	var counted uint64
	deadline := time.Now().Add(2 * time.Second)
	for {
		counted = 0
		for _, name := range []string{"alpha", "beta"} {
			ps, err := runtime.PolicyCounters(e.opts, name)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range ps.Rules {
				counted += r.Packets
			}
		}
		if counted >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d applies in %s (median %s) under %d frames; counted %d", replaceRounds, elapsed.Round(time.Millisecond), median(durations), total, counted)
	if counted != total {
		t.Errorf("counted %d frames, sent %d: %d lost or counted twice (%s)", counted, total, int64(total)-int64(counted), e.drops(t))
	}
	if total < replaceRounds {
		t.Errorf("only %d frames sent during %d applies; the stream did not overlap the replaces", total, replaceRounds)
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

// drops describes the veth pair's drop counters, to tell frames the veth
// dropped (a full receive ring) from frames no program saw.
func (e *env) drops(t testing.TB) string {
	t.Helper()
	var parts []string
	for _, name := range []string{"src0", "dut0"} {
		l, err := e.ns.Handle.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if st := l.Attrs().Statistics; st != nil {
			parts = append(parts, fmt.Sprintf("%s tx_dropped %d rx_dropped %d", name, st.TxDropped, st.RxDropped))
		}
	}
	return strings.Join(parts, ", ")
}
