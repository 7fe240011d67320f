package eval

import (
	"bytes"
	"testing"
)

// FuzzHost sends arbitrary frames into the interfaces of a NAT host after
// a few conversations: it never panics, a frame it does not translate
// leaves as it came, and a translated frame whose checksums verified
// still verifies.
func FuzzHost(f *testing.F) {
	t := &testing.T{}
	seeds := [][]byte{
		udpFrame(t, "10.0.0.5", 40000, resolver, 53),
		udpFrame(t, resolver, 53, public, 40000),
		tcpFrame(t, client, 5555, public, 8080, 0x02),
		tcpFrame(t, "10.0.0.5", 80, client, 5555, 0x12),
		echoFrame(t, resolver, public, 0, 7),
		greFrame(t, "10.0.0.6", resolver),
		icmpErrorFrame(t, resolver, public, 3, 3, udpFrame(t, public, 40000, resolver, 53)),
		icmpErrorFrame(t, "10.0.0.5", client, 3, 3, udpFrame(t, client, 7777, "10.0.0.6", 5050)),
	}
	first, later := splitFragments(t, udpFrame(t, "10.0.0.5", 40000, resolver, 53, bytes.Repeat([]byte{7}, 40)...))
	seeds = append(seeds, first, later)
	for _, s := range seeds {
		for i := range 3 {
			f.Add(s, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte, ifn uint8) {
		h := newNATHost(t, "20000-20003")
		for i, s := range seeds {
			h.Ingress([]string{inside, outside}[i%2], s, uint64(i+1))
		}
		ifname := []string{inside, outside, "eth2"}[ifn%3]
		in := bytes.Clone(frame)
		r := h.Ingress(ifname, frame, 100)
		if !bytes.Equal(frame, in) {
			t.Fatal("the frame given was changed")
		}
		if r.NAT == nil {
			if !bytes.Equal(r.Frame, frame) {
				t.Fatalf("untranslated frame changed:\n% x\n% x", frame, r.Frame)
			}
			return
		}
		if len(r.Frame) != len(frame) {
			t.Fatalf("translation changed the length")
		}
		if checksumErrors(frame) == nil {
			if errs := checksumErrors(r.Frame); errs != nil {
				t.Fatalf("%v after %v of\n% x\ninto\n% x", errs, r.NAT, frame, r.Frame)
			}
		}
	})
}
