package artifact_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/xdpc/xdpc/artifact"
)

// TestMapKindLayouts checks every kind's layout against itself: its BTF
// key and value have the sizes it declares, a blueprint carries them, and
// Check accepts the blueprint and refuses it with any size or type changed.
func TestMapKindLayouts(t *testing.T) {
	kinds := artifact.MapKinds()
	if len(kinds) != 12 {
		t.Errorf("%d map kinds, want 12: %v", len(kinds), kinds)
	}
	for _, k := range kinds {
		t.Run(k.String(), func(t *testing.T) {
			l := k.Layout()
			for what, typ := range map[string]btf.Type{"key": l.Key(), "value": l.Value()} {
				size, err := btf.Sizeof(typ)
				want := l.KeySize
				if what == "value" {
					want = l.ValueSize
				}
				if err != nil || uint32(size) != want {
					t.Errorf("%s type %v has %d bytes (%v), want %d", what, typ, size, err, want)
				}
			}
			if l.Key() == l.Key() {
				t.Error("Key returns one type object twice; artifacts would share it")
			}
			m := k.Map("m", 7)
			spec := &ebpf.MapSpec{Type: m.Type, KeySize: m.KeySize, ValueSize: m.ValueSize}
			if m.MaxEntries != 7 || m.Type != l.Type || m.Flags != l.Flags || m.Key == nil || m.Value == nil {
				t.Errorf("blueprint %+v does not follow layout %+v", m, l)
			}
			if err := k.Check(spec); err != nil {
				t.Errorf("Check refuses the kind's own blueprint: %v", err)
			}
			for name, change := range map[string]func(*ebpf.MapSpec){
				"key size":   func(s *ebpf.MapSpec) { s.KeySize++ },
				"value size": func(s *ebpf.MapSpec) { s.ValueSize++ },
				"type": func(s *ebpf.MapSpec) {
					if s.Type = ebpf.Array; l.Type == ebpf.Array {
						s.Type = ebpf.Hash
					}
				},
			} {
				bad := *spec
				change(&bad)
				if err := k.Check(&bad); err == nil {
					t.Errorf("Check accepts the blueprint with another %s", name)
				}
			}
		})
	}
}

// TestCounterLayout checks that the counter map's value is Counter as the
// runtime reads it: two u64, packets then bytes.
func TestCounterLayout(t *testing.T) {
	l := artifact.MapCounters.Layout()
	if got := binary.Size(artifact.Counter{}); uint32(got) != l.ValueSize || got != 16 {
		t.Errorf("Counter has %d bytes, the counter map's values %d; want 16", got, l.ValueSize)
	}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, artifact.Counter{Packets: 1, Bytes: 2})
	if want := []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}; !bytes.Equal(b.Bytes(), want) {
		t.Errorf("Counter{1, 2} encodes as %v, want %v", b.Bytes(), want)
	}
	if l.Type != ebpf.PerCPUArray || l.Keep != artifact.KeepAlways {
		t.Errorf("counters are %s, keep %d; want a per-CPU array kept across applies", l.Type, l.Keep)
	}
}

// TestMapKindsLoad creates a map of every kind in the kernel, from the
// artifact that holds one of each.
func TestMapKindsLoad(t *testing.T) {
	spec, _, err := artifact.Read(writeELF(t, kindsArtifact()))
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		if ve, ok := errors.AsType[*ebpf.VerifierError](err); ok {
			t.Fatalf("load: %+v", ve)
		}
		t.Fatalf("load: %v", err)
	}
	defer coll.Close()
	for _, k := range artifact.MapKinds() {
		found := false
		for _, m := range coll.Maps {
			if k.Fits(m.Type(), m.KeySize(), m.ValueSize()) == nil {
				found = true
			}
		}
		if !found {
			t.Errorf("the kernel holds no map of kind %s", k)
		}
	}
}
