package lab

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/lab/corpus"
)

// fuzzTrackingPolicy tracks connections with short timeouts, so that
// fuzzed gaps cross them, and counts every ct_state on its own rule.
const fuzzTrackingPolicy = `
conntrack {
  max_entries = 1024
  timeouts = {
    tcp_syn_sent    = "5s"
    tcp_syn_recv    = "6s"
    tcp_established = "1m"
    tcp_fin_wait    = "7s"
    tcp_close_wait  = "8s"
    tcp_last_ack    = "9s"
    tcp_time_wait   = "10s"
    tcp_close       = "3s"
    udp             = "4s"
    udp_stream      = "20s"
    icmp            = "2s"
    other           = "30s"
  }
}

policy "fuzz-ct" {
  default   = "pass"
  malformed = "drop"

  rule "new" {
    ct_state = "new"
    action   = "count"
  }
  rule "established" {
    ct_state = "established"
    action   = "count"
  }
  rule "related" {
    ct_state = "related"
    action   = "count"
  }
  rule "invalid" {
    ct_state = "invalid"
    action   = "count"
  }
  rule "closed" {
    proto    = "tcp"
    dst_port = [23, 8080]
    action   = "drop"
  }
  rule "unsolicited" {
    ct_state = "new"
    proto    = "udp"
    src_port = 53
    action   = "drop"
  }
}
`

// fuzzFlowPrograms are loaded once per fuzzing process: the policy above
// and two generated tracking policies.
var fuzzFlowPrograms = sync.OnceValues(func() ([]*flowProgram, error) {
	gps := append([]corpus.GeneratedPolicy{{Name: "fuzz-ct.hcl", Policy: "fuzz-ct", Source: []byte(fuzzTrackingPolicy)}},
		corpus.TrackingPolicies(fuzzSeed, 2)...)
	var fps []*flowProgram
	for i, gp := range gps {
		fp, err := loadFlowProgram(gp, diffOptions(i))
		if err != nil {
			return nil, err
		}
		fps = append(fps, fp)
	}
	return fps, nil
})

// A fuzzed flow is a byte string of frames, each
//
//	u8   flags      bit 0: the host sends it (out)
//	u32  gap        milliseconds since the frame before, little-endian
//	u16  length     of the frame, little-endian
//	     frame      that many bytes (fewer at the end of the input)
//
// so the fuzzer mutates frames, their order, direction and times alike.
const (
	fuzzFlowHeader    = 7
	fuzzFlowMaxFrames = 64
	fuzzFlowMaxFrame  = 1514
)

// encodeFlow writes fl as a fuzzed flow.
func encodeFlow(fl corpus.Flow) []byte {
	var b []byte
	var last time.Duration
	for _, f := range fl.Frames {
		var flags byte
		if f.Out {
			flags = 1
		}
		b = append(b, flags)
		b = binary.LittleEndian.AppendUint32(b, uint32((f.Time-last)/time.Millisecond))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(f.Data)))
		b = append(b, f.Data...)
		last = f.Time
	}
	return b
}

// decodeFlow reads a fuzzed flow. Frames shorter than an Ethernet header
// (which no kernel path runs) or longer than fuzzFlowMaxFrame are left
// out, as are frames past fuzzFlowMaxFrames.
func decodeFlow(b []byte) corpus.Flow {
	var fl corpus.Flow
	var at time.Duration
	for len(b) >= fuzzFlowHeader && len(fl.Frames) < fuzzFlowMaxFrames {
		out := b[0]&1 != 0
		at += time.Duration(binary.LittleEndian.Uint32(b[1:])) * time.Millisecond
		n := int(binary.LittleEndian.Uint16(b[5:]))
		b = b[fuzzFlowHeader:]
		n = min(n, len(b))
		data := append([]byte(nil), b[:n]...)
		b = b[n:]
		if n < 14 || n > fuzzFlowMaxFrame {
			continue
		}
		fl.Frames = append(fl.Frames, corpus.FlowFrame{Class: "fuzz", Data: data, Time: at, Out: out})
	}
	return fl
}

// FuzzDifferentialFlow replays fuzzed conversations on the reference and
// the kernel through tracking policies and requires the same verdicts,
// counter slots, ct_state and recorded entries, and the same tables after.
// A flow with a frame within corpus.TimingMargin of a time an entry could
// die is not checked: the kernel's clock runs on in real time, and either
// answer would be right.
func FuzzDifferentialFlow(f *testing.F) {
	fps, err := fuzzFlowPrograms()
	if err != nil {
		f.Fatal(err)
	}
	for i, fp := range fps {
		for _, fl := range corpus.Flows(fuzzSeed+int64(i), 20, fp.cfg.Conntrack.Timeouts) {
			f.Add(encodeFlow(fl))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fl := decodeFlow(data)
		for _, fp := range fps {
			if !corpus.TimingSafe(fl.Frames, fp.cfg.Conntrack.Timeouts) {
				continue
			}
			tally := newFlowTally()
			runFlow(fp, fl, tally)
			for _, r := range tally.reports {
				t.Fatalf("disagreement:\n%s", r)
			}
		}
	})
}

// TestFuzzFlowEncoding checks that a generated flow survives the fuzz
// encoding: the seeds are the flows they claim to be.
func TestFuzzFlowEncoding(t *testing.T) {
	for _, fl := range corpus.Flows(fuzzSeed, 20, conntrack.Timeouts{}) {
		got := decodeFlow(encodeFlow(fl))
		if len(got.Frames) != len(fl.Frames) {
			t.Fatalf("%d frames decoded, %d encoded", len(got.Frames), len(fl.Frames))
		}
		for i := range fl.Frames {
			w, g := fl.Frames[i], got.Frames[i]
			if string(w.Data) != string(g.Data) || w.Out != g.Out || w.Time != g.Time {
				t.Fatalf("frame %d: %+v decoded as %+v", i, w, g)
			}
		}
	}
}
