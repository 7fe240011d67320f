package runtime_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/internal/nstest"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/runtime"
)

// env is a namespace with a veth pair "src0" <-> "dut0" and a private pin
// root and state directory: policies attach to dut0 and frames are sent
// from src0.
type env struct {
	ns   *nstest.Netns
	opts runtime.Options
	// ifindex of src0, for sending.
	src int
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ns := nstest.New(t)
	src, _ := ns.Veth(t, "src0", "dut0")
	e := &env{ns: ns, src: src, opts: runtime.Options{
		PinRoot:  nstest.PinRoot(t),
		StateDir: t.TempDir(),
		Netns:    ns.Name,
	}}
	t.Cleanup(func() {
		if _, err := runtime.Detach(e.opts, ""); err != nil {
			t.Errorf("detach all: %v", err)
		}
	})
	return e
}

// policySrc returns a policy file whose policy name binds to the given
// interfaces in mode, with body inside the policy block and extra
// (sets) before it.
func policySrc(name, mode string, ifaces []string, extra, body string) string {
	var s strings.Builder
	s.WriteString(extra)
	for _, i := range ifaces {
		fmt.Fprintf(&s, "interface %q {\n  policy = %q\n  mode   = %q\n}\n", i, name, mode)
	}
	fmt.Fprintf(&s, "policy %q {\n  default = \"drop\"\n%s}\n", name, body)
	return s.String()
}

// compileSrc compiles the only policy of src to an ELF artifact.
func compileSrc(t testing.TB, src string) []byte {
	t.Helper()
	return compileFile(t, "test.hcl", src)
}

// compileFile compiles the only policy of src, read as the file name.
func compileFile(t testing.TB, name, src string) []byte {
	t.Helper()
	cfg, diags := policy.Load(name, []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatalf("load policy: %s\n%s", diags.Error(), src)
	}
	art, err := compiler.Compile(cfg, cfg.Policies[0], compiler.Options{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	var buf bytes.Buffer
	if err := art.WriteELF(&buf); err != nil {
		t.Fatalf("write elf: %v", err)
	}
	return buf.Bytes()
}

func (e *env) apply(t *testing.T, elf []byte) *runtime.ApplyReport {
	t.Helper()
	rep, err := runtime.Apply(elf, runtime.ApplyOptions{Options: e.opts})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return rep
}

// sender is an AF_PACKET socket inside the namespace bound to src0.
type sender struct {
	fd int
	to unix.SockaddrLinklayer
}

func (e *env) sender(t testing.TB) *sender {
	t.Helper()
	s := &sender{fd: -1}
	e.ns.Do(t, func() {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			t.Errorf("open packet socket: %v", err)
			return
		}
		s.fd = fd
	})
	if s.fd < 0 {
		t.FailNow()
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	s.to = unix.SockaddrLinklayer{Ifindex: e.src, Halen: 6}
	return s
}

func (s *sender) send(t testing.TB, frame []byte) {
	t.Helper()
	if err := unix.Sendto(s.fd, frame, 0, &s.to); err != nil {
		t.Fatalf("send frame: %v", err)
	}
}

// sendN sends n copies of frame, paced so the receiver keeps up.
func (s *sender) sendN(t testing.TB, frame []byte, n int) {
	t.Helper()
	for i := range n {
		s.send(t, frame)
		if i%32 == 31 {
			time.Sleep(200 * time.Microsecond)
		}
	}
}

// counts returns packets by rule of the named applied policy, waiting up
// to a second for them to reach want (frames are counted asynchronously).
func (e *env) counts(t testing.TB, policyName string, want map[string]uint64) map[string]uint64 {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		got := map[string]uint64{}
		stats, err := runtime.Stats(e.opts)
		if err != nil {
			t.Fatalf("stats: %v", err)
		}
		for _, ps := range stats {
			if ps.Policy != policyName {
				continue
			}
			for _, r := range ps.Rules {
				if r.Packets > 0 {
					got[r.Rule] = r.Packets
				}
			}
		}
		if equalCounts(got, want) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func equalCounts(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// status returns the attachments, failing the test on error.
func (e *env) status(t testing.TB) []runtime.Attachment {
	t.Helper()
	st, err := runtime.Status(e.opts)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}
