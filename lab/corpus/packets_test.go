package corpus

import (
	"bytes"
	"testing"
)

func TestGenerateDeterministic(t *testing.T) {
	a, b := Generate(7, 500), Generate(7, 500)
	for i := range a {
		if a[i].Class != b[i].Class || !bytes.Equal(a[i].Frame, b[i].Frame) {
			t.Fatalf("packet %d differs between two runs with the same seed", i)
		}
	}
}

func TestGenerateEveryClass(t *testing.T) {
	seen := map[Class]int{}
	for _, p := range Generate(1, 2000) {
		seen[p.Class]++
	}
	for _, c := range Classes() {
		if seen[c] == 0 {
			t.Errorf("class %s missing from 2000 packets", c)
		}
	}
}
