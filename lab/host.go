package lab

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/policy"
	"github.com/xdpc/xdpc/policy/eval"
)

// A host case is a policy file of several interfaces: a nat block, or
// more than one policy. Its frames say which interface they arrive on
// (Frame.Iface, "on IFACE" in a packet list), and a host backend runs
// every interface of the file in one network namespace, sharing one
// connection table and one NAT state (docs/nat.md).

// HostSeed is the NAT table's seed of a host backend: the reference's
// and the one written into the datapath's settings map, so that port
// allocations are the same and a case's lines are fixed.
const HostSeed uint32 = 0

// IsHostConfig reports whether cfg needs a host backend: it has a nat
// block or more than one policy.
func IsHostConfig(cfg *policy.Config) bool { return len(cfg.NATs) > 0 || len(cfg.Policies) > 1 }

// ErrHostUnsupported is returned (wrapped, naming the policy) by the kernel
// and lab host backends for a file whose policies have sets or redirects:
// they do not load those on shared tables yet.
var ErrHostUnsupported = errors.New("the kernel and lab host backends run no sets or redirects yet: use the reference backend")

// NewHostBackend returns the named backend for every interface of cfg.
func NewHostBackend(name string, cfg *policy.Config) (Backend, error) {
	switch name {
	case BackendReference:
		return newHostReference(cfg), nil
	case BackendKernel:
		return newHostKernel(cfg)
	case BackendLab:
		return newHostLab(cfg)
	}
	return nil, UnknownBackendError(name)
}

// hostInterface returns the interface frame f arrives on (or leaves from)
// and its policy: f.Iface, or when empty the file's first interface.
func hostInterface(cfg *policy.Config, f Frame) (string, *policy.Policy, error) {
	for _, i := range cfg.Interfaces {
		if i.Name == f.Iface || f.Iface == "" {
			return i.Name, i.Policy, nil
		}
	}
	if f.Iface == "" {
		return "", nil, errors.New("the file binds no interface to a policy")
	}
	return "", nil, fmt.Errorf("the file binds no policy to interface %q", f.Iface)
}

// hostReference decides a conversation with one eval.Host, whose clock is
// the frames' times.
type hostReference struct {
	cfg *policy.Config
	h   *eval.Host
}

func newHostReference(cfg *policy.Config) *hostReference {
	return &hostReference{cfg: cfg, h: eval.NewHost(cfg, eval.HostOptions{Seed: HostSeed})}
}

func (r *hostReference) Run(f Frame) (Verdict, error) {
	ifname, p, err := hostInterface(r.cfg, f)
	if err != nil {
		return Verdict{}, err
	}
	now := uint64(f.Time)
	before := flowSnapshot(r.h.Flows(now))
	var v Verdict
	var st conntrack.Status
	if f.Out {
		v = outVerdict(f.Data)
		st = r.h.Egress(ifname, f.Data, now).CTState
	} else {
		res := r.h.Ingress(ifname, f.Data, now)
		v = referenceVerdict(p, f.Data, res.Slot, res.Counted)
		st = res.CTState
		if !bytes.Equal(res.Frame, f.Data) {
			v.Rewritten, v.Frame = summarize(res.Frame), res.Frame
		}
	}
	v.Iface = ifname
	if p.TracksConnections() {
		v.CTState = st.String()
		if v.CTEntry, err = before.entryChanged(flowSnapshot(r.h.Flows(now))); err != nil {
			return Verdict{}, err
		}
	}
	return v, nil
}

func (*hostReference) Close() error { return nil }

// flowSnapshot is flows by key, as ctSnapshot holds a datapath's.
func flowSnapshot(flows []conntrack.Flow) ctSnapshot {
	s := ctSnapshot{}
	for _, f := range flows {
		s[f.Key] = ctFlow(f)
	}
	return s
}
