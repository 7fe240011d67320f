package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xdpc/xdpc/internal/nstest"
)

// Tests of 'apply --confirm' that need xdpc as a real process of its own:
// signalled, with its output gone, killed.

// confirmPolicies are the files of a confirmEnv: "one" is applied first,
// "two" under --confirm; their programs differ, so the kernel's program
// tag tells them apart.
var confirmPolicies = map[string]string{
	"one.hcl":   policyDropping("one", ""),
	"two.hcl":   policyDropping("two", "53"),
	"three.hcl": policyDropping("three", "80"),
}

// policyDropping is a policy file binding dut0 to a policy that passes
// everything but UDP to port (nothing when port is "").
func policyDropping(name, port string) string {
	rule := ""
	if port != "" {
		rule = "\n  rule \"udp-" + port + "\" {\n    proto    = \"udp\"\n    dst_port = " + port + "\n    action   = \"drop\"\n  }\n"
	}
	return "interface \"dut0\" {\n  policy = \"" + name + "\"\n}\n\npolicy \"" + name + "\" {\n  default = \"pass\"\n" + rule + "}\n"
}

// confirmEnv is a namespace with a veth pair src0 <-> dut0, a private pin
// root and state directory, and the files of confirmPolicies.
type confirmEnv struct {
	ns                *nstest.Netns
	pinRoot, stateDir string
	dir               string
}

func newConfirmEnv(t *testing.T) *confirmEnv {
	t.Helper()
	ns := nstest.New(t)
	ns.Veth(t, "src0", "dut0")
	e := &confirmEnv{ns: ns, pinRoot: nstest.PinRoot(t), stateDir: t.TempDir(), dir: t.TempDir()}
	for name, src := range confirmPolicies {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if _, stderr, code := e.run(t, "detach"); code != 0 {
			t.Errorf("detach all: exit %d: %s", code, stderr)
		}
	})
	return e
}

// policy is the path of one of confirmPolicies.
func (e *confirmEnv) policy(name string) string { return filepath.Join(e.dir, name) }

// run runs xdpc in this process on the environment's pins and state.
func (e *confirmEnv) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--pin-root", e.pinRoot, "--state-dir", e.stateDir)
	code = run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// mustRun is run that fails the test unless xdpc exits with want.
func (e *confirmEnv) mustRun(t *testing.T, want int, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, code := e.run(t, args...)
	if code != want {
		t.Fatalf("xdpc %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, stdout, stderr)
	}
	return stdout, stderr
}

// apply applies one of confirmPolicies and returns the tag of the program
// dut0 runs then.
func (e *confirmEnv) apply(t *testing.T, name string) string {
	t.Helper()
	e.mustRun(t, 0, "apply", "--netns", e.ns.Name, e.policy(name))
	tag := e.program(t)
	if tag == "" {
		t.Fatalf("apply %s attached nothing to dut0", name)
	}
	return tag
}

// program returns the kernel's tag of the XDP program attached to dut0,
// "" when there is none.
func (e *confirmEnv) program(t *testing.T) string {
	t.Helper()
	l, err := e.ns.Handle.LinkByName("dut0")
	if err != nil {
		t.Fatal(err)
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached || x.ProgId == 0 {
		return ""
	}
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(x.ProgId))
	if err != nil {
		t.Fatalf("open program %d of dut0: %v", x.ProgId, err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.Tag
}

// pendingPath is where an apply awaiting confirmation is recorded.
func (e *confirmEnv) pendingPath() string {
	return filepath.Join(e.stateDir, "pending", "pending.json")
}

// checkNothingPending fails t when a confirmation record is left.
func (e *confirmEnv) checkNothingPending(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(e.stateDir, "pending")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pending/ is left behind (stat: %v)", err)
	}
}

// lockedBuffer is a bytes.Buffer a child process writes while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// child is xdpc running as a process of its own.
type child struct {
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
	err            error
}

// start runs xdpc as a child process on the environment's pins and
// state. With output set, the child writes its stdout and stderr there;
// otherwise the test reads them.
func (e *confirmEnv) start(t *testing.T, output *os.File, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], args...), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), runAsXDPC+"=1", "XDPC_PIN_ROOT="+e.pinRoot, "XDPC_STATE_DIR="+e.stateDir)
	if output != nil {
		c.cmd.Stdout, c.cmd.Stderr = output, output
	} else {
		c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
	})
	return c
}

// waitStderr waits until the child has written want to stderr.
func (c *child) waitStderr(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(c.stderr.String(), want) {
		select {
		case <-c.done:
			t.Fatalf("xdpc exited (%v) before writing %q; stdout:\n%s\nstderr:\n%s", c.err, want, c.stdout.String(), c.stderr.String())
		case <-deadline:
			t.Fatalf("xdpc wrote no %q within 20s; stderr:\n%s", want, c.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// exitCode waits for the child to end and returns its exit code, -1 when
// a signal killed it.
func (c *child) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("xdpc did not exit within 30s; stderr:\n%s", c.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Logf("xdpc was killed by %s", ws.Signal())
		}
		return ee.ExitCode()
	}
	if c.err != nil {
		t.Fatal(c.err)
	}
	return 0
}

// waitMessage is what apply --confirm writes to stderr when it starts
// waiting.
const waitMessage = "run 'xdpc confirm' within"

// TestConfirmRollsBackOnSignal interrupts 'apply --confirm' while it waits
// with each signal that ends an operator's session (Ctrl-C, a kill, a
// closed terminal) and checks that dut0 runs the previous program again,
// or none when it had none, that no confirmation is left pending and that
// the exit code says the change was rolled back.
func TestConfirmRollsBackOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		for _, before := range []bool{true, false} {
			name := sig.String() + "/nothing before"
			if before {
				name = sig.String() + "/policy before"
			}
			t.Run(name, func(t *testing.T) {
				e := newConfirmEnv(t)
				var prev string
				if before {
					prev = e.apply(t, "one.hcl")
				}
				c := e.start(t, nil, "apply", "--netns", e.ns.Name, "--confirm", "60s", e.policy("two.hcl"))
				c.waitStderr(t, waitMessage)
				if got := e.program(t); got == prev || got == "" {
					t.Fatalf("while waiting dut0 runs %q, want the new program (previous %q)", got, prev)
				}
				if err := c.cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				if code := c.exitCode(t); code != exitPolicy {
					t.Errorf("xdpc exited with %d, want %d (rolled back); stderr:\n%s", code, exitPolicy, c.stderr.String())
				}
				if !strings.Contains(c.stdout.String(), "not confirmed: restored the previous policy") {
					t.Errorf("stdout does not say it rolled back:\n%s", c.stdout.String())
				}
				if got := e.program(t); got != prev {
					t.Errorf("after %s dut0 runs %q, want %q (the previous program; \"\" for none)", sig, got, prev)
				}
				e.checkNothingPending(t)
			})
		}
	}
}

// TestConfirmRollbackSurvivesMoreSignals keeps signalling 'apply --confirm'
// after the first signal, as an impatient operator or a supervisor
// escalating would: the rollback the first one started must finish.
func TestConfirmRollbackSurvivesMoreSignals(t *testing.T) {
	e := newConfirmEnv(t)
	prev := e.apply(t, "one.hcl")
	c := e.start(t, nil, "apply", "--netns", e.ns.Name, "--confirm", "60s", e.policy("two.hcl"))
	c.waitStderr(t, waitMessage)
	go func() {
		sigs := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}
		for i := 0; ; i++ {
			select {
			case <-c.done:
				return
			case <-time.After(time.Millisecond):
				c.cmd.Process.Signal(sigs[i%len(sigs)])
			}
		}
	}()
	if code := c.exitCode(t); code != exitPolicy {
		t.Errorf("xdpc exited with %d, want %d (rolled back); stderr:\n%s", code, exitPolicy, c.stderr.String())
	}
	if got := e.program(t); got != prev {
		t.Errorf("dut0 runs %q, want the previous program %q", got, prev)
	}
	e.checkNothingPending(t)
}

// TestConfirmWithoutOutput runs 'apply --confirm' with stdout and stderr
// on a pipe nobody reads any more, as 'ssh host xdpc apply --confirm'
// without a terminal has when the connection drops: writing must not kill
// it (SIGPIPE), and the deadline must still roll back.
func TestConfirmWithoutOutput(t *testing.T) {
	e := newConfirmEnv(t)
	prev := e.apply(t, "one.hcl")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	c := e.start(t, w, "apply", "--netns", e.ns.Name, "--confirm", "1500ms", e.policy("two.hcl"))
	w.Close()
	if code := c.exitCode(t); code != exitPolicy {
		t.Errorf("xdpc exited with %d, want %d (rolled back)", code, exitPolicy)
	}
	if got := e.program(t); got != prev {
		t.Errorf("dut0 runs %q, want the previous program %q", got, prev)
	}
	e.checkNothingPending(t)
}

// killWaiter starts 'apply --confirm 60s two.hcl', waits until it waits,
// and kills it with SIGKILL, which no process can handle: the
// confirmation stays pending with nobody to roll it back.
func (e *confirmEnv) killWaiter(t *testing.T) {
	t.Helper()
	c := e.start(t, nil, "apply", "--netns", e.ns.Name, "--confirm", "60s", e.policy("two.hcl"))
	c.waitStderr(t, waitMessage)
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.done
	if _, err := os.Stat(e.pendingPath()); err != nil {
		t.Fatalf("no confirmation pending after SIGKILL: %v", err)
	}
}

// TestConfirmAfterWaiterKilled kills the waiting apply with SIGKILL and
// checks what the operator sees and can do then: confirm says the waiter
// is gone instead of claiming success and changes nothing, status shows
// the confirmation and that nobody waits for it, and each way out
// (restore the previous policy, keep the new one, apply another) leaves
// nothing pending.
func TestConfirmAfterWaiterKilled(t *testing.T) {
	t.Run("confirm refuses, status tells", func(t *testing.T) {
		e := newConfirmEnv(t)
		e.apply(t, "one.hcl")
		e.killWaiter(t)
		applied := e.program(t)
		stdout, stderr, code := e.run(t, "confirm")
		if code != exitPolicy || strings.Contains(stdout, "confirmed") {
			t.Errorf("confirm: exit %d, stdout %q; want exit %d and no claim of success", code, stdout, exitPolicy)
		}
		for _, want := range []string{"is gone", "xdpc confirm --keep", "xdpc confirm --rollback"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("confirm: stderr does not say %q:\n%s", want, stderr)
			}
		}
		if _, err := os.Stat(e.pendingPath()); err != nil {
			t.Errorf("the refused confirm removed the confirmation: %v", err)
		}
		if got := e.program(t); got != applied {
			t.Errorf("the refused confirm changed dut0's program")
		}
		stdout, _ = e.mustRun(t, 0, "status")
		if !strings.Contains(stdout, "awaiting confirmation") || !strings.Contains(stdout, "gone") {
			t.Errorf("status does not show a confirmation whose waiter is gone:\n%s", stdout)
		}
		stdout, _ = e.mustRun(t, 0, "status", "--json")
		var rec struct {
			Policy  string `json:"policy"`
			Confirm *struct {
				Deadline time.Time `json:"deadline"`
				PID      int       `json:"pid"`
				Waiting  bool      `json:"waiting"`
			} `json:"confirm"`
		}
		if err := json.Unmarshal([]byte(stdout), &rec); err != nil {
			t.Fatalf("status --json: %v\n%s", err, stdout)
		}
		if rec.Policy != "two" || rec.Confirm == nil || rec.Confirm.Waiting || rec.Confirm.PID == 0 || rec.Confirm.Deadline.IsZero() {
			t.Errorf("status --json = %s; want policy two with a confirmation nobody waits for", stdout)
		}
	})
	t.Run("rollback", func(t *testing.T) {
		e := newConfirmEnv(t)
		prev := e.apply(t, "one.hcl")
		e.killWaiter(t)
		stdout, _ := e.mustRun(t, 0, "confirm", "--rollback")
		if !strings.Contains(stdout, "restored the previous policy") {
			t.Errorf("confirm --rollback: stdout %q", stdout)
		}
		if got := e.program(t); got != prev {
			t.Errorf("after confirm --rollback dut0 runs %q, want the previous program %q", got, prev)
		}
		e.checkNothingPending(t)
	})
	t.Run("rollback, nothing before", func(t *testing.T) {
		e := newConfirmEnv(t)
		e.killWaiter(t)
		e.mustRun(t, 0, "confirm", "--rollback")
		if got := e.program(t); got != "" {
			t.Errorf("after confirm --rollback dut0 runs %q, want nothing", got)
		}
		e.checkNothingPending(t)
	})
	t.Run("keep", func(t *testing.T) {
		e := newConfirmEnv(t)
		e.apply(t, "one.hcl")
		e.killWaiter(t)
		applied := e.program(t)
		stdout, _ := e.mustRun(t, 0, "confirm", "--keep")
		if !strings.Contains(stdout, "kept") {
			t.Errorf("confirm --keep: stdout %q", stdout)
		}
		if got := e.program(t); got != applied {
			t.Errorf("confirm --keep changed dut0's program")
		}
		e.checkNothingPending(t)
	})
	t.Run("apply", func(t *testing.T) {
		e := newConfirmEnv(t)
		e.apply(t, "one.hcl")
		e.killWaiter(t)
		_, stderr := e.mustRun(t, 0, "apply", "--netns", e.ns.Name, e.policy("three.hcl"))
		if !strings.Contains(stderr, "gone") {
			t.Errorf("apply over a confirmation whose waiter is gone does not say so:\n%s", stderr)
		}
		e.checkNothingPending(t)
	})
	t.Run("apply, process id reused", func(t *testing.T) {
		// The process id recorded may belong to another process by now
		// (this test's own, here): a later apply is still not refused.
		e := newConfirmEnv(t)
		e.apply(t, "one.hcl")
		e.killWaiter(t)
		data, err := os.ReadFile(e.pendingPath())
		if err != nil {
			t.Fatal(err)
		}
		var p map[string]any
		if err := json.Unmarshal(data, &p); err != nil {
			t.Fatal(err)
		}
		p["pid"] = os.Getpid()
		if data, err = json.Marshal(p); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.pendingPath(), data, 0o600); err != nil {
			t.Fatal(err)
		}
		e.mustRun(t, 0, "apply", "--netns", e.ns.Name, e.policy("three.hcl"))
		e.checkNothingPending(t)
	})
}

// TestDetachWhileConfirmPending: detach is refused while an apply waits
// for confirmation, since the rollback would attach the previous program
// again behind the operator's back; it says until when and what to do.
func TestDetachWhileConfirmPending(t *testing.T) {
	e := newConfirmEnv(t)
	e.apply(t, "one.hcl")
	c := e.start(t, nil, "apply", "--netns", e.ns.Name, "--confirm", "60s", e.policy("two.hcl"))
	c.waitStderr(t, waitMessage)
	applied := e.program(t)
	for _, args := range [][]string{{"detach"}, {"detach", "--netns", e.ns.Name, "dut0"}} {
		stdout, stderr, code := e.run(t, args...)
		if code != exitPolicy {
			t.Errorf("xdpc %s while a confirmation is pending: exit %d, want %d; stdout %q", strings.Join(args, " "), code, exitPolicy, stdout)
		}
		for _, want := range []string{"waiting for confirmation", "until ", "xdpc confirm"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("xdpc %s: stderr does not say %q:\n%s", strings.Join(args, " "), want, stderr)
			}
		}
		if got := e.program(t); got != applied {
			t.Fatalf("refused detach changed dut0's program to %q", got)
		}
	}
	e.mustRun(t, 0, "confirm")
	if code := c.exitCode(t); code != 0 {
		t.Errorf("confirmed apply exited %d", code)
	}
	e.mustRun(t, 0, "detach")
	if got := e.program(t); got != "" {
		t.Errorf("after detach dut0 runs %q", got)
	}
}

// TestSignalDuringApply signals an apply while it is inside the change
// (it waits for the lock this test holds): the apply is completed, not cut
// off half way; a plain apply then exits as the signal asks, an apply
// --confirm rolls back at once.
func TestSignalDuringApply(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		// wantNew: dut0 ends with two.hcl's program rather than one's.
		wantNew bool
	}{
		{"plain", nil, 130, true},
		{"confirm", []string{"--confirm", "60s"}, exitPolicy, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newConfirmEnv(t)
			prev := e.apply(t, "one.hcl")
			lock, err := os.OpenFile(filepath.Join(e.stateDir, "lock"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer lock.Close()
			if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"apply", "--netns", e.ns.Name}, tc.args...)
			c := e.start(t, nil, append(args, e.policy("two.hcl"))...)
			waitForOpen(t, c, filepath.Join(e.stateDir, "lock"))
			if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // let the signal land before the lock is free
			syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
			if code := c.exitCode(t); code != tc.wantCode {
				t.Errorf("xdpc exited with %d, want %d; stderr:\n%s", code, tc.wantCode, c.stderr.String())
			}
			if got := e.program(t); (got != prev) != tc.wantNew || got == "" {
				t.Errorf("dut0 runs %q (previous %q); want the new program: %v", got, prev, tc.wantNew)
			}
			if tc.wantNew && !strings.Contains(c.stderr.String(), "the apply was completed") {
				t.Errorf("stderr does not say the apply was completed:\n%s", c.stderr.String())
			}
			e.checkNothingPending(t)
		})
	}
}

// waitForOpen waits until the child has path open.
func waitForOpen(t *testing.T, c *child, path string) {
	t.Helper()
	fds := filepath.Join("/proc", strconv.Itoa(c.cmd.Process.Pid), "fd")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(fds)
		for _, fd := range entries {
			if target, err := os.Readlink(filepath.Join(fds, fd.Name())); err == nil && target == path {
				return
			}
		}
		select {
		case <-c.done:
			t.Fatalf("xdpc exited (%v) before opening %s; stderr:\n%s", c.err, path, c.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatalf("xdpc did not open %s within 20s", path)
}
