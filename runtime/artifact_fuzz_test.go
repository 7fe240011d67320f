package runtime_test

import (
	"testing"

	"github.com/xdpc/xdpc/runtime"
)

// FuzzReadArtifact feeds mutated artifacts to the reader that `xdpc apply
// ARTIFACT` uses: an error or a consistent spec and manifest, never a
// panic.
func FuzzReadArtifact(f *testing.F) {
	f.Add(elfBytes(f, probeArtifact([]string{"10.0.0.0/8", "2001:db8::/32"}, []string{"80", "1000-1003"}, []string{"02:00:00:00:00:01"})))
	f.Add(elfBytes(f, passArtifact()))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, m, err := runtime.ReadArtifact(data)
		if err != nil {
			return
		}
		if spec.Programs[m.Program] == nil {
			t.Fatalf("ReadArtifact accepted an artifact without its program %q", m.Program)
		}
	})
}
