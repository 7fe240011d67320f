package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/xdpc/xdpc/artifact"
)

// A NAT deployment needs the stack to forward what XDP passes to it
// (docs/nat.md "Forwarding"): net.ipv4.ip_forward = 1, accept_local = 1
// on the inside interface, and an effective rp_filter (the larger of
// conf.all's and the interface's) of 0 or 2 on both. Apply sets what is
// not so, saying so, and records what it found in
// STATEDIR/nat/NETNS/sysctls.json; the detach of the namespace's last NAT
// interface puts back the values it found, each one only if it still
// holds the value apply set.

// SysctlChange is one sysctl apply changed for NAT.
type SysctlChange struct {
	// Name is the sysctl's dotted name, as net.ipv4.ip_forward.
	Name string `json:"name"`
	// Found is the value it had before; Set the value apply wrote.
	Found string `json:"found"`
	Set   string `json:"set"`
	// By names the sysctl whose write made the kernel change this one
	// (a follower of ip_forward); "" for one apply wrote.
	By string `json:"by,omitempty"`
}

// ipForward is the sysctl that has followers.
const ipForward = "net.ipv4.ip_forward"

// forwardFollowers are the sysctls the kernel sets when ip_forward is
// written (inet_forward_change): conf.all.accept_redirects to its
// opposite, and the forwarding of conf.default, conf.all and every
// interface to it.
func forwardFollowers() ([]string, error) {
	dirs, err := os.ReadDir("/proc/sys/net/ipv4/conf")
	if err != nil {
		return nil, fmt.Errorf("list interface sysctls: %w", err)
	}
	names := []string{"net.ipv4.conf.all.accept_redirects"}
	for _, d := range dirs {
		names = append(names, "net.ipv4.conf."+d.Name()+".forwarding")
	}
	return names, nil
}

// readSysctls reads names; one that is gone (its interface was deleted)
// is left out.
func readSysctls(names []string) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range names {
		v, err := readSysctl(n)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[n] = v
	}
	return out, nil
}

type sysctlRecord struct {
	Changes []SysctlChange `json:"changes"`
}

func (l layout) sysctlRecordFile() string {
	return filepath.Join(l.stateDir, "nat", l.netns, "sysctls.json")
}

// sysctlPath is the file of a dotted sysctl name under /proc/sys. In
// net.ipv4.conf.IFACE.KEY the interface's name may hold dots (a VLAN's,
// eth0.100): it is all between the prefix and the last dot.
func sysctlPath(name string) string {
	if rest, ok := strings.CutPrefix(name, "net.ipv4.conf."); ok {
		if i := strings.LastIndex(rest, "."); i > 0 {
			return filepath.Join("/proc/sys/net/ipv4/conf", rest[:i], rest[i+1:])
		}
	}
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// readSysctl reads a sysctl in the calling thread's network namespace.
func readSysctl(name string) (string, error) {
	b, err := os.ReadFile(sysctlPath(name))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctl(name, value string) error {
	if err := os.WriteFile(sysctlPath(name), []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("set %s to %s: %w", name, value, err)
	}
	return nil
}

// natSysctl is a sysctl a NAT deployment wants, the value to write when
// it is not so, and why.
type natSysctl struct {
	name, want string
	// ok says the current value does; nil: it must equal want.
	ok  func(v string) (bool, error)
	why string
}

// wantedSysctls lists the sysctls the NAT bindings need.
func wantedSysctls(bindings []artifact.InterfaceBinding) []natSysctl {
	var out []natSysctl
	var ifaces []string
	for _, b := range bindings {
		if b.NAT != "" && !slices.Contains(ifaces, b.Name) {
			ifaces = append(ifaces, b.Name)
		}
	}
	if len(ifaces) == 0 {
		return nil
	}
	out = append(out, natSysctl{name: "net.ipv4.ip_forward", want: "1", why: "the stack forwards the translated packets XDP passes to it"})
	for _, b := range bindings {
		if b.NAT == "inside" {
			out = append(out, natSysctl{name: "net.ipv4.conf." + b.Name + ".accept_local", want: "1",
				why: "a masqueraded packet reaches the stack from " + b.Name + " with the host's own outside address as its source"})
		}
	}
	for _, name := range ifaces {
		out = append(out, natSysctl{
			name: "net.ipv4.conf." + name + ".rp_filter", want: "2",
			why: "strict reverse-path filtering drops translated packets on " + name,
			// The interface's value counts as the larger of it and conf.all's.
			ok: func(v string) (bool, error) {
				all, err := readSysctl("net.ipv4.conf.all.rp_filter")
				if err != nil {
					return false, err
				}
				return max(atoiOr(all), atoiOr(v)) != 1, nil
			},
		})
	}
	return out
}

func atoiOr(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// sysctlSetup is what one apply changed, for undo.
type sysctlSetup struct {
	l       layout
	changed []SysctlChange
	// before is the record as it was, written back by undo.
	before sysctlRecord
}

// setSysctls sets the sysctls the NAT bindings need in the namespace,
// adds what it changed to the namespace's record and returns a note per
// change.
func setSysctls(l layout, bindings []artifact.InterfaceBinding) (*sysctlSetup, []string, error) {
	wanted := wantedSysctls(bindings)
	if len(wanted) == 0 {
		return nil, nil, nil
	}
	s := &sysctlSetup{l: l}
	if err := readJSON(l.sysctlRecordFile(), &s.before); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	rec := sysctlRecord{Changes: slices.Clone(s.before.Changes)}
	var notes []string
	err := inNetns(l.nsName, func() error {
		for _, w := range wanted {
			v, err := readSysctl(w.name)
			if err != nil {
				return err
			}
			good := v == w.want
			if w.ok != nil {
				if good, err = w.ok(v); err != nil {
					return err
				}
			}
			if good {
				continue
			}
			c := SysctlChange{Name: w.name, Found: v, Set: w.want}
			rec.add(c)
			// Recorded before it is changed, so that no change goes unrecorded.
			if err := writeJSON(l.sysctlRecordFile(), rec); err != nil {
				return err
			}
			var followers []string
			var before map[string]string
			if w.name == ipForward {
				if followers, err = forwardFollowers(); err != nil {
					return err
				}
				if before, err = readSysctls(followers); err != nil {
					return err
				}
			}
			if err := writeSysctl(w.name, w.want); err != nil {
				return err
			}
			// What the kernel changed with it goes before it in the
			// lists: restored (in reverse) after it.
			var also []SysctlChange
			if before != nil {
				after, err := readSysctls(followers)
				if err != nil {
					return err
				}
				for _, f := range followers {
					if b, ok := before[f]; ok && after[f] != b {
						also = append(also, SysctlChange{Name: f, Found: b, Set: after[f], By: w.name})
					}
				}
				for _, a := range also {
					rec.addBefore(a, w.name)
				}
				if err := writeJSON(l.sysctlRecordFile(), rec); err != nil {
					return err
				}
			}
			s.changed = append(s.changed, also...)
			s.changed = append(s.changed, c)
			note := fmt.Sprintf("set %s to %s (was %s)%s: %s; detach of the last NAT interface restores it",
				w.name, w.want, v, l.inNetnsPhrase(), w.why)
			if len(also) > 0 {
				note += fmt.Sprintf(" (and the %s the kernel changed with it)", count(len(also), "sysctl", "sysctls"))
			}
			notes = append(notes, note)
		}
		return nil
	})
	if err != nil {
		s.undo()
		return nil, nil, fmt.Errorf("NAT sysctls: %w", err)
	}
	return s, notes, nil
}

// add records c; for a sysctl already recorded only the value set
// changes: the value found first is the one to restore.
func (r *sysctlRecord) add(c SysctlChange) {
	if i := slices.IndexFunc(r.Changes, func(x SysctlChange) bool { return x.Name == c.Name }); i >= 0 {
		r.Changes[i].Set = c.Set
		return
	}
	r.Changes = append(r.Changes, c)
}

// addBefore records c before the change of cause.
func (r *sysctlRecord) addBefore(c SysctlChange, cause string) {
	if i := slices.IndexFunc(r.Changes, func(x SysctlChange) bool { return x.Name == c.Name }); i >= 0 {
		r.Changes[i].Set = c.Set
		return
	}
	i := slices.IndexFunc(r.Changes, func(x SysctlChange) bool { return x.Name == cause })
	if i < 0 {
		i = len(r.Changes)
	}
	r.Changes = slices.Insert(r.Changes, i, c)
}

// inNetnsPhrase is " in network namespace NAME", or "" for the caller's.
func (l layout) inNetnsPhrase() string {
	if l.nsName == "" {
		return ""
	}
	return " in network namespace " + l.nsName
}

// undo puts back what this apply changed and the record as it was.
func (s *sysctlSetup) undo() {
	if s == nil {
		return
	}
	inNetns(s.l.nsName, func() error {
		for _, c := range slices.Backward(s.changed) {
			switch {
			case c.By != "":
			case c.Name == ipForward:
				restoreForward(sysctlRecord{Changes: s.changed}, c)
			default:
				writeSysctl(c.Name, c.Found)
			}
		}
		return nil
	})
	if len(s.before.Changes) == 0 {
		os.Remove(s.l.sysctlRecordFile())
		return
	}
	writeJSON(s.l.sysctlRecordFile(), s.before)
}

// restoreSysctls puts back the sysctls NAT apply changed in the
// namespace, when no interface there plays a part in NAT any more: each
// one that still holds the value apply set gets the value apply found; one
// changed since is left, said in a note. The record goes.
func restoreSysctls(l layout, recs []Attachment) ([]string, error) {
	for _, r := range recs {
		if r.Netns == l.netns && r.NAT != "" {
			return nil, nil
		}
	}
	var rec sysctlRecord
	if err := readJSON(l.sysctlRecordFile(), &rec); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var notes []string
	err := inNetns(l.nsName, func() error {
		for _, c := range slices.Backward(rec.Changes) {
			if c.By != "" {
				continue // restored with its cause
			}
			v, err := readSysctl(c.Name)
			if errors.Is(err, os.ErrNotExist) {
				continue // the interface is gone
			}
			if err != nil {
				return err
			}
			if v != c.Set {
				notes = append(notes, fmt.Sprintf("left %s at %s%s: it was changed since NAT set it to %s", c.Name, v, l.inNetnsPhrase(), c.Set))
				continue
			}
			if c.Name == ipForward {
				if err := restoreForward(rec, c); err != nil {
					return err
				}
			} else if err := writeSysctl(c.Name, c.Found); err != nil {
				return err
			}
			notes = append(notes, fmt.Sprintf("restored %s to %s%s", c.Name, c.Found, l.inNetnsPhrase()))
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return notes, fmt.Errorf("restore NAT sysctls: %w", err)
	}
	if err := os.RemoveAll(filepath.Dir(l.sysctlRecordFile())); err != nil {
		return notes, fmt.Errorf("remove NAT sysctl record: %w", err)
	}
	return notes, nil
}

// restoreForward writes ip_forward back and then gives each of its
// followers the value it should have: the value apply found when it is
// a follower apply's write changed and it still holds what that made it,
// else the value it held just before (the kernel changes them all
// again, whatever they were).
func restoreForward(rec sysctlRecord, c SysctlChange) error {
	followers, err := forwardFollowers()
	if err != nil {
		return err
	}
	want, err := readSysctls(followers)
	if err != nil {
		return err
	}
	for _, r := range rec.Changes {
		if r.By == ipForward {
			if v, ok := want[r.Name]; ok && v == r.Set {
				want[r.Name] = r.Found
			}
		}
	}
	if err := writeSysctl(ipForward, c.Found); err != nil {
		return err
	}
	now, err := readSysctls(followers)
	if err != nil {
		return err
	}
	for _, f := range followers {
		if v, ok := now[f]; ok && v != want[f] {
			if err := writeSysctl(f, want[f]); err != nil {
				return err
			}
		}
	}
	return nil
}
