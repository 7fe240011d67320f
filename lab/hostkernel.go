package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/artifact"
	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/nat"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/runtime"
)

// hostKernel runs every interface's compiled program under
// BPF_PROG_TEST_RUN, all sharing one connection table and one set of NAT
// maps as the runtime shares them in a network namespace, with HostSeed in
// the NAT settings map. The programs run inside a throwaway network
// namespace of nothing but a loopback device that is down: bpf_fib_lookup
// finds no route there, so a translated packet is handed to the stack
// (XDP_PASS), always. Its ct_state is read by status probes on the same
// tables (ctobserve.go), one reading the NAT map as a NAT interface does.
type hostKernel struct {
	cfg *policy.Config
	// progs are the programs by interface name; one per policy.
	progs map[string]*hostProgram
	all   []*hostProgram
	maps  sharedMaps
	// probe reads ct_state on an interface without NAT, natProbe on a NAT
	// interface; nil when nothing needs them.
	probe, natProbe *hostProgram
	status          map[int]conntrack.Status
	ns              *nsThread
	last            time.Duration
	started         bool
}

// hostProgram is one loaded artifact.
type hostProgram struct {
	coll     *ebpf.Collection
	xdp      *ebpf.Program
	egress   *ebpf.Program
	counters *ebpf.Map
	manifest *artifact.Manifest
	slots    slotTable
	nat      bool
}

// sharedMaps are the namespace's tables, by their part.
type sharedMaps map[string]*ebpf.Map

// Parts of the shared tables.
const (
	partAssured   = "assured"
	partUnassured = "unassured"
	partAlias     = "alias"
	partFragments = "fragments"
	partSettings  = "settings"
	partReserved  = "reserved"
)

// parts names the shared maps of manifest m by part.
func parts(m *artifact.Manifest) map[string]string {
	p := map[string]string{}
	if c := m.Conntrack; c != nil {
		p[partAssured], p[partUnassured] = c.Assured, c.Unassured
	}
	if n := m.NAT; n != nil {
		p[partAlias], p[partFragments], p[partSettings], p[partReserved] = n.Alias, n.Fragments, n.Settings, n.Reserved
	}
	return p
}

func newHostKernel(cfg *policy.Config) (_ *hostKernel, err error) {
	k := &hostKernel{cfg: cfg, progs: map[string]*hostProgram{}, maps: sharedMaps{}}
	defer func() {
		if err != nil {
			k.Close()
		}
	}()
	byPolicy := map[*policy.Policy]*hostProgram{}
	for _, i := range cfg.Interfaces {
		hp, ok := byPolicy[i.Policy]
		if !ok {
			art, err := compiler.Compile(cfg, i.Policy, compiler.Options{})
			if err != nil {
				return nil, CompileError{err}
			}
			if len(art.Manifest.Sets) > 0 || len(art.Manifest.Redirects) > 0 {
				return nil, fmt.Errorf("policy %s: %w", i.Policy.Name, ErrHostUnsupported)
			}
			if hp, err = k.load(art); err != nil {
				return nil, fmt.Errorf("load policy %s: %w", i.Policy.Name, err)
			}
			byPolicy[i.Policy] = hp
		}
		k.progs[i.Name] = hp
	}
	if m := k.maps[partSettings]; m != nil {
		if err := m.Put(uint32(0), HostSeed); err != nil {
			return nil, fmt.Errorf("write the NAT seed: %w", err)
		}
	}
	if k.maps[partAssured] != nil {
		if err := k.loadProbes(); err != nil {
			return nil, err
		}
	}
	if k.ns, err = newNSThread(); err != nil {
		return nil, err
	}
	return k, nil
}

// load loads art with the shared maps it has in place of its own, and
// shares those it brings first.
func (k *hostKernel) load(art *artifact.Artifact) (*hostProgram, error) {
	var elf bytes.Buffer
	if err := art.WriteELF(&elf); err != nil {
		return nil, err
	}
	spec, m, err := artifact.Read(elf.Bytes())
	if err != nil {
		return nil, err
	}
	repl := map[string]*ebpf.Map{}
	ps := parts(m)
	for part, name := range ps {
		if have := k.maps[part]; have != nil {
			repl[name] = have
			if ms, ok := spec.Maps[name]; ok {
				ms.MaxEntries = have.MaxEntries()
			}
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, err
	}
	for part, name := range ps {
		if k.maps[part] == nil {
			k.maps[part] = coll.Maps[name]
		}
	}
	hp := &hostProgram{coll: coll, xdp: coll.Programs[m.Program], manifest: m, slots: newSlotTable(m.Counters), nat: m.NAT != nil}
	if m.Egress != "" {
		hp.egress = coll.Programs[m.Egress]
	}
	if m.Counters.Map != "" {
		hp.counters = coll.Maps[m.Counters.Map]
	}
	k.all = append(k.all, hp)
	return hp, nil
}

// natProbeSource is the status probe (probeSource) bound to the outside
// interface of a nat block that translates nothing: its tracker reads the
// NAT map as every NAT interface's does.
const natProbeSource = probeSource + `
policy "xdpc_ct_probe_inside" {
  default = "drop"
}
interface "xdpc-probe-out" { policy = "xdpc_ct_probe" }
interface "xdpc-probe-in" { policy = "xdpc_ct_probe_inside" }
nat "xdpc_probe" {
  outside = "xdpc-probe-out"
  inside  = "xdpc-probe-in"
}
`

// loadProbes loads the status probes on the shared tables.
func (k *hostKernel) loadProbes() error {
	probe := func(name, src string) (*hostProgram, *policy.Policy, error) {
		cfg, diags := policy.Load(name, []byte(src), policy.LoadOptions{})
		if diags.HasErrors() {
			panic("lab: a status probe's policy does not load: " + diags.Error())
		}
		cfg.Conntrack = k.cfg.Conntrack
		p := cfg.Policy("xdpc_ct_probe")
		art, err := compiler.Compile(cfg, p, compiler.Options{})
		if err != nil {
			return nil, nil, fmt.Errorf("compile the ct_state probe: %w", err)
		}
		hp, err := k.load(art)
		return hp, p, err
	}
	var p *policy.Policy
	var err error
	if k.probe, p, err = probe("xdpc-ct-probe.hcl", probeSource); err != nil {
		return err
	}
	if k.maps[partAlias] != nil {
		if k.natProbe, _, err = probe("xdpc-ct-nat-probe.hcl", natProbeSource); err != nil {
			return err
		}
	}
	k.status = map[int]conntrack.Status{}
	for i, r := range p.Rules {
		k.status[i] = r.Match(policy.FieldCTState).CTStates.Statuses()[0]
	}
	return nil
}

func (k *hostKernel) Run(f Frame) (Verdict, error) {
	ifname, p, err := hostInterface(k.cfg, f)
	if err != nil {
		return Verdict{}, err
	}
	hp := k.progs[ifname]
	if err := k.age(f.Time); err != nil {
		return Verdict{}, err
	}
	tracks := p.TracksConnections()
	var st conntrack.Status
	var before ctSnapshot
	if tracks {
		probe := k.probe
		if hp.nat {
			probe = k.natProbe
		}
		if st, err = k.statusOf(probe, f.Data); err != nil {
			return Verdict{}, err
		}
		if before, err = k.snapshot(); err != nil {
			return Verdict{}, err
		}
	}
	var v Verdict
	if f.Out {
		v = outVerdict(f.Data)
		if hp.egress != nil {
			if _, _, _, err := k.run(hp.egress, nil, f.Data); err != nil {
				return Verdict{}, err
			}
		}
	} else {
		ret, out, moved, err := k.run(hp.xdp, hp.counters, f.Data)
		if err != nil {
			return Verdict{}, err
		}
		if v, err = hp.slots.decide(f.Data, moved); err != nil {
			return Verdict{}, fmt.Errorf("%w (program returned %s)", err, artifact.Action(ret))
		}
		if artifact.Action(ret) != v.Action {
			return Verdict{}, fmt.Errorf("program returned %s but counted the packet on %q (%s)", artifact.Action(ret), v.Rule, v.Verdict)
		}
		if v.Action != artifact.ActionDrop && !bytes.Equal(out, f.Data) {
			v.Rewritten, v.Frame = summarize(out), out
		}
	}
	v.Iface = ifname
	if tracks {
		v.CTState = st.String()
		after, err := k.snapshot()
		if err != nil {
			return Verdict{}, err
		}
		if v.CTEntry, err = before.entryChanged(after); err != nil {
			return Verdict{}, err
		}
	}
	return v, nil
}

// run runs frame through prog in the throwaway namespace and returns what
// it returned, the frame it left and the counter slots of counters that
// moved.
func (k *hostKernel) run(prog *ebpf.Program, counters *ebpf.Map, frame []byte) (uint32, []byte, []int, error) {
	if len(frame) < runtime.MinTestFrame {
		return 0, nil, nil, fmt.Errorf("kernel test run needs a frame of at least %d bytes", runtime.MinTestFrame)
	}
	before, err := readCounters(counters)
	if err != nil {
		return 0, nil, nil, err
	}
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
	var ret uint32
	if err := k.ns.do(func() error {
		var err error
		ret, err = prog.Run(opts)
		return err
	}); err != nil {
		return 0, nil, nil, fmt.Errorf("test run %d-byte frame: %w", len(frame), err)
	}
	after, err := readCounters(counters)
	if err != nil {
		return 0, nil, nil, err
	}
	return ret, opts.DataOut, runtime.MovedSlots(before, after), nil
}

// statusOf runs frame through probe and returns the ct_state it counted.
func (k *hostKernel) statusOf(probe *hostProgram, frame []byte) (conntrack.Status, error) {
	_, _, moved, err := k.run(probe.xdp, probe.counters, frame)
	if err != nil {
		return 0, fmt.Errorf("ct_state probe: %w", err)
	}
	st := conntrack.StatusNone
	for _, slot := range moved {
		if s, ok := k.status[slot]; ok {
			st = s
		}
	}
	return st, nil
}

// readCounters returns every slot of counter map m summed over CPUs; nil
// for no map.
func readCounters(m *ebpf.Map) ([]artifact.Counter, error) {
	if m == nil {
		return nil, nil
	}
	sums := make([]artifact.Counter, m.MaxEntries())
	var per []artifact.Counter
	for slot := range sums {
		if err := m.Lookup(uint32(slot), &per); err != nil {
			return nil, fmt.Errorf("read counter %d: %w", slot, err)
		}
		for _, c := range per {
			sums[slot].Packets += c.Packets
			sums[slot].Bytes += c.Bytes
		}
	}
	return sums, nil
}

// age makes the tables older by the time since the frame before: the
// connection table's entries and the NAT map's aliases.
func (k *hostKernel) age(at time.Duration) error {
	if k.started && at > k.last {
		d := at - k.last
		if a, u := k.maps[partAssured], k.maps[partUnassured]; a != nil {
			if err := runtime.AgeConntrack(d, a, u); err != nil {
				return err
			}
		}
		if m := k.maps[partAlias]; m != nil {
			if err := ageAliases(m, uint64(d)); err != nil {
				return err
			}
		}
	}
	if !k.started || at > k.last {
		k.last, k.started = at, true
	}
	return nil
}

// ageAliases takes by off the expiry of every alias of NAT map m.
func ageAliases(m *ebpf.Map, by uint64) error {
	var keys [][]byte
	var key, value []byte
	it := m.Iterate()
	for it.Next(&key, &value) {
		keys = append(keys, bytes.Clone(key))
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("age aliases: %w", err)
	}
	for _, kb := range keys {
		if err := m.Lookup(kb, &value); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				continue
			}
			return fmt.Errorf("age aliases: %w", err)
		}
		a, err := nat.DecodeAlias(value)
		if err != nil {
			return err
		}
		a.Expires -= min(a.Expires, by)
		if err := m.Update(kb, a.Encode(), ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("age aliases: %w", err)
		}
	}
	return nil
}

// snapshot reads the shared connection table.
func (k *hostKernel) snapshot() (ctSnapshot, error) {
	flows, _, err := runtime.ReadConntrack(k.maps[partAssured], k.maps[partUnassured])
	if err != nil {
		return nil, err
	}
	return snapshotOf(flows), nil
}

// flush empties the shared tables and restarts the clock, for a new
// conversation.
func (k *hostKernel) flush() error {
	for _, part := range []string{partAssured, partUnassured, partAlias, partFragments} {
		m := k.maps[part]
		if m == nil {
			continue
		}
		var keys [][]byte
		var kb, vb []byte
		it := m.Iterate()
		for it.Next(&kb, &vb) {
			keys = append(keys, bytes.Clone(kb))
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("flush %s: %w", part, err)
		}
		for _, kb := range keys {
			if err := m.Delete(kb); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("flush %s: %w", part, err)
			}
		}
	}
	k.started = false
	return nil
}

func (k *hostKernel) Close() error {
	for _, hp := range k.all {
		hp.coll.Close()
	}
	k.all = nil
	if k.ns != nil {
		k.ns.close()
	}
	return nil
}

// nsThread is an OS thread in a network namespace of its own, made for
// it and gone with it: the thread never returns to the Go scheduler.
type nsThread struct {
	calls chan func()
}

func newNSThread() (*nsThread, error) {
	t := &nsThread{calls: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		// The thread ends with this goroutine, still locked: its
		// namespace goes with it.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("make a network namespace for the test runs: %w", os.NewSyscallError("unshare", err))
			return
		}
		errc <- nil
		for call := range t.calls {
			call()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return t, nil
}

// do runs fn on the thread.
func (t *nsThread) do(fn func() error) error {
	errc := make(chan error, 1)
	t.calls <- func() { errc <- fn() }
	return <-errc
}

func (t *nsThread) close() { close(t.calls) }
