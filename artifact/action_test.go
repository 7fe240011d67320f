package artifact_test

import (
	"encoding/json"
	"testing"

	"github.com/xdpc/xdpc/artifact"
)

// TestActionIsXDPAction pins Action to the kernel's enum xdp_action
// (include/uapi/linux/bpf.h) and its names to the language's.
func TestActionIsXDPAction(t *testing.T) {
	want := []struct {
		a    artifact.Action
		code uint32
		name string
	}{
		{artifact.ActionAborted, 0, "aborted"},
		{artifact.ActionDrop, 1, "drop"},
		{artifact.ActionPass, 2, "pass"},
		{artifact.ActionTX, 3, "tx"},
		{artifact.ActionRedirect, 4, "redirect"},
	}
	for _, w := range want {
		if uint32(w.a) != w.code || w.a.String() != w.name {
			t.Errorf("%s = %d, want %s = %d", w.a, uint32(w.a), w.name, w.code)
		}
		text, err := json.Marshal(w.a)
		if err != nil {
			t.Fatal(err)
		}
		var back artifact.Action
		if err := json.Unmarshal(text, &back); err != nil || back != w.a {
			t.Errorf("%s round-trips through JSON %s as %s, %v", w.a, text, back, err)
		}
	}
	var a artifact.Action
	if err := json.Unmarshal([]byte(`"reject"`), &a); err == nil {
		t.Error(`decoding action "reject" succeeded`)
	}
	if _, err := json.Marshal(artifact.Action(5)); err == nil {
		t.Error("encoding action 5 succeeded")
	}
}
