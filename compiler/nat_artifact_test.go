package compiler_test

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/nat"
)

// TestNATArtifact checks what a policy bound to a NAT interface adds to
// its artifact: the four NAT maps, shared like the connection table's
// and sized as docs/nat.md says, a manifest naming them, the interface's
// part in its nat block, and the two NAT counter slots after the
// malformed one; the manifest reads back.
func TestNATArtifact(t *testing.T) {
	for _, c := range []struct {
		src, role, iface string
	}{{natPolicy, "outside", "out0"}, {insideFirst(natPolicy), "inside", "in0"}} {
		t.Run(c.role, func(t *testing.T) {
			art := compileSource(t, c.src)
			want := &artifact.NATTables{Alias: compiler.NATAliasMap, Fragments: compiler.NATFragmentsMap,
				Settings: compiler.NATSettingsMap, Reserved: compiler.NATReservedMap}
			if diff := cmp.Diff(want, art.Manifest.NAT); diff != "" {
				t.Errorf("manifest's NAT maps (-want +got):\n%s", diff)
			}
			kinds := map[string]artifact.MapKind{compiler.NATAliasMap: artifact.MapNATAlias, compiler.NATFragmentsMap: artifact.MapNATFragments,
				compiler.NATSettingsMap: artifact.MapNATSettings, compiler.NATReservedMap: artifact.MapNATReserved}
			sizes := map[string]uint32{compiler.NATAliasMap: 65536, compiler.NATFragmentsMap: nat.FragmentEntries, compiler.NATSettingsMap: 1, compiler.NATReservedMap: 4096}
			seen := 0
			for _, m := range art.Maps {
				k, ok := kinds[m.Name]
				if !ok {
					continue
				}
				seen++
				l := k.Layout()
				if m.Type != l.Type || m.KeySize != l.KeySize || m.ValueSize != l.ValueSize || m.MaxEntries != sizes[m.Name] || l.Keep != artifact.KeepShared {
					t.Errorf("map %s: %v key %d value %d, %d entries; want a shared %v of %d entries", m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, k, sizes[m.Name])
				}
			}
			if seen != len(kinds) {
				t.Errorf("%d NAT maps, want %d", seen, len(kinds))
			}
			var bound bool
			for _, b := range art.Manifest.Interfaces {
				if b.Name == c.iface {
					bound = b.NAT == c.role && b.NATBlock == "edge"
				}
			}
			if !bound {
				t.Errorf("interfaces %+v: %s is not the %s of nat \"edge\"", art.Manifest.Interfaces, c.iface, c.role)
			}
			slots := art.Manifest.Counters.Slots
			n := len(slots)
			if n < 4 || slots[n-2].Kind != artifact.SlotNATExhausted || slots[n-1].Kind != artifact.SlotNATFragment ||
				slots[n-2].Slot != slots[n-3].Slot+1 || slots[n-1].Slot != slots[n-2].Slot+1 || slots[n-3].Kind != artifact.SlotMalformed {
				t.Errorf("counter slots end %+v, want malformed, nat-exhausted, nat-fragment", slots[max(n-3, 0):])
			}
			var elf bytes.Buffer
			if err := art.WriteELF(&elf); err != nil {
				t.Fatal(err)
			}
			if _, m, err := artifact.Read(elf.Bytes()); err != nil || m.NAT == nil {
				t.Errorf("read back: manifest NAT %+v, %v", m.NAT, err)
			}
		})
	}
	if art := compileSource(t, compiledPolicy); art.Manifest.NAT != nil {
		t.Errorf("a policy without NAT names NAT maps %+v", art.Manifest.NAT)
	}
}
