package runtime_test

import (
	"testing"
	"time"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/runtime"
)

// BenchmarkApply measures one apply of a compiled 1,000-rule policy that
// replaces the previous one on a veth in native mode (load, verify,
// keep counters, BPF_LINK_UPDATE, pin, record); it reports the median.
func BenchmarkApply(b *testing.B) {
	e := newEnv(b)
	elf := compileBenchPolicy(b, 1000)
	opts := runtime.ApplyOptions{Options: e.opts, Interfaces: []artifact.InterfaceBinding{{Name: "dut0", Mode: "native"}}}
	if _, err := runtime.Apply(elf, opts); err != nil {
		b.Fatal(err)
	}
	var ds []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := runtime.Apply(elf, opts); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	b.ReportMetric(float64(median(ds).Microseconds())/1000, "ms/apply-median")
}
