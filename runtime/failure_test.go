package runtime_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/google/go-cmp/cmp"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/runtime"
)

// unloadableMapArtifact returns an artifact for dut0 whose LPM trie lacks
// BPF_F_NO_PREALLOC: the kernel refuses to create the map.
func unloadableMapArtifact() *artifact.Artifact {
	return &artifact.Artifact{
		Program:      "xdpc_pass",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()},
		Maps: []artifact.Map{
			{Name: "nets_v4", Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 1, MaxEntries: 16, Key: lpmKeyType("xdpc_lpm_v4", 4), Value: u8Type},
		},
		Manifest: artifact.Manifest{Format: artifact.ManifestFormat, Policy: "nomap", Program: "xdpc_pass",
			Interfaces: []artifact.InterfaceBinding{{Name: "dut0", Mode: "native"}}},
	}
}

// TestApplyFailureKeepsOld applies a good policy, then one that fails in
// each way, and checks the error and that the good program still runs and
// counts.
func TestApplyFailureKeepsOld(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, e *env) []byte
		wantErr string
		check   func(t *testing.T, err error)
	}{
		{
			name: "verifier rejects the program",
			prepare: func(t *testing.T, e *env) []byte {
				a := rejectedArtifact()
				a.Manifest.Interfaces = []artifact.InterfaceBinding{{Name: "dut0", Mode: "native"}}
				return elfBytes(t, a)
			},
			wantErr: `load policy "bad"`,
			check: func(t *testing.T, err error) {
				var ve *ebpf.VerifierError
				if !errors.As(err, &ve) {
					t.Errorf("error %v does not carry the verifier log", err)
				}
				if !strings.Contains(err.Error(), rejectedSource) {
					t.Errorf("error %v does not name the rule and line the verifier stopped at", err)
				}
			},
		},
		{
			name: "interface vanished",
			prepare: func(t *testing.T, e *env) []byte {
				e.ns.Delete(t, "gone1")
				return compileSrc(t, policySrc("edge", "native", []string{"dut0", "gone0"}, "", dnsRule))
			},
			wantErr: "find interface gone0",
		},
		{
			name: "map cannot be created",
			prepare: func(t *testing.T, e *env) []byte {
				return elfBytes(t, unloadableMapArtifact())
			},
			wantErr: "nets_v4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.ns.Veth(t, "gone0", "gone1")
			good := compileSrc(t, policySrc("edge", "native", []string{"dut0", "gone0"}, "", webRule))
			e.apply(t, good)
			before := e.status(t)

			bad := tt.prepare(t, e)
			_, err := runtime.Apply(bad, runtime.ApplyOptions{Options: e.opts})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("apply error = %v, want one containing %q", err, tt.wantErr)
			}
			t.Logf("apply error: %v", err)
			if tt.check != nil {
				tt.check(t, err)
			}
			after := e.status(t)
			if len(after) != 2 || after[0].Interface != "dut0" {
				t.Fatalf("status after failure = %+v", after)
			}
			if after[0].ProgramID != before[0].ProgramID || after[0].Policy != "edge" || after[0].Gone {
				t.Errorf("dut0 after failed apply = %+v, want the previous program %d", after[0], before[0].ProgramID)
			}
			s := e.sender(t)
			s.sendN(t, udpFrame(t, srcMAC, "192.0.2.1", "192.0.2.2", 80), 4)
			want := map[string]uint64{"web": 4}
			if diff := cmp.Diff(want, e.counts(t, "edge", want)); diff != "" {
				t.Errorf("the previous program did not count (-want +got):\n%s", diff)
			}
		})
	}
}
