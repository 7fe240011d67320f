package runtime

import (
	"path/filepath"
	"time"
)

// Default locations of what the runtime keeps on a host.
const (
	// DefaultPinRoot is where links, programs and kept maps are pinned. It
	// must be on a bpf filesystem; Apply mounts one there when it is absent.
	DefaultPinRoot = "/sys/fs/bpf/xdpc"
	// DefaultStateDir holds the lock, the attachment records and the
	// artifacts applied (bpffs holds no regular files).
	DefaultStateDir = "/run/xdpc"
)

// hostNetns names the current network namespace in the layout.
const hostNetns = "host"

// Options say where the runtime keeps its pins and state and which network
// namespace the interfaces are in. The zero value uses the defaults and the
// caller's network namespace.
type Options struct {
	// PinRoot is the bpffs directory of pins (default DefaultPinRoot).
	PinRoot string
	// StateDir is the directory of state files (default DefaultStateDir).
	StateDir string
	// Netns is the name of the network namespace (as in /run/netns) whose
	// interfaces are meant; "" is the caller's.
	Netns string
	// LockWait is how long an operation that changes attachments waits for
	// another one to finish; 0 fails at once when the lock is held.
	LockWait time.Duration
}

// layout is Options with defaults applied; it names every path.
//
//	PINROOT/links/NETNS/IFNAME/{link,prog}    one attachment
//	PINROOT/links/NETNS/IFNAME/egress_{link,prog}  its TC egress program (link: tcx only)
//	PINROOT/maps/POLICY/{counters,set_NAME}   maps kept across applies
//	PINROOT/conntrack/NETNS/{assured,unassured}  the namespace's connection table
//	PINROOT/conntrack/NETNS/{nat,nat_fragments,nat_settings,nat_reserved}  its NAT table
//	STATEDIR/lock                             serialises changes
//	STATEDIR/links/NETNS/IFNAME/{state.json,artifact.o}
//	STATEDIR/maps/POLICY/manifest.json        the manifest the kept maps follow
//	STATEDIR/conntrack/NETNS/table.json       the connection table's layout and map ids
//	STATEDIR/nat/NETNS/sysctls.json           the sysctls NAT apply changed, and what they were
//	STATEDIR/pending/                         an apply waiting for confirmation
type layout struct {
	pinRoot, stateDir string
	netns             string // "host" for the caller's namespace
	nsName            string // "" for the caller's namespace
	lockWait          time.Duration
}

func (o Options) layout() layout {
	l := layout{pinRoot: o.PinRoot, stateDir: o.StateDir, netns: o.Netns, nsName: o.Netns, lockWait: o.LockWait}
	if l.pinRoot == "" {
		l.pinRoot = DefaultPinRoot
	}
	if l.stateDir == "" {
		l.stateDir = DefaultStateDir
	}
	if l.netns == "" {
		l.netns = hostNetns
	}
	return l
}

// withNetns returns l for the namespace stored as ns in the layout.
func (l layout) withNetns(ns string) layout {
	l.netns, l.nsName = ns, ns
	if ns == hostNetns {
		l.nsName = ""
	}
	return l
}

func (l layout) linkPinDir(ifname string) string {
	return filepath.Join(l.pinRoot, "links", l.netns, ifname)
}
func (l layout) linkPin(ifname string) string { return filepath.Join(l.linkPinDir(ifname), "link") }
func (l layout) progPin(ifname string) string { return filepath.Join(l.linkPinDir(ifname), "prog") }
func (l layout) linkStateDir(ifname string) string {
	return filepath.Join(l.stateDir, "links", l.netns, ifname)
}
func (l layout) attachmentFile(ifname string) string {
	return filepath.Join(l.linkStateDir(ifname), "state.json")
}
func (l layout) artifactFile(ifname string) string {
	return filepath.Join(l.linkStateDir(ifname), "artifact.o")
}
func (l layout) egressLinkPin(ifname string) string {
	return filepath.Join(l.linkPinDir(ifname), "egress_link")
}
func (l layout) egressProgPin(ifname string) string {
	return filepath.Join(l.linkPinDir(ifname), "egress_prog")
}
func (l layout) tablePinDir() string { return filepath.Join(l.pinRoot, "conntrack", l.netns) }
func (l layout) tablePin(which string) string {
	return filepath.Join(l.tablePinDir(), which)
}
func (l layout) tableStateDir() string { return filepath.Join(l.stateDir, "conntrack", l.netns) }
func (l layout) tableRecordFile() string {
	return filepath.Join(l.tableStateDir(), "table.json")
}
func (l layout) mapPinDir(policy string) string { return filepath.Join(l.pinRoot, "maps", policy) }
func (l layout) mapStateDir(policy string) string {
	return filepath.Join(l.stateDir, "maps", policy)
}
func (l layout) keptManifest(policy string) string {
	return filepath.Join(l.mapStateDir(policy), "manifest.json")
}
func (l layout) lockFile() string   { return filepath.Join(l.stateDir, "lock") }
func (l layout) pendingDir() string { return filepath.Join(l.stateDir, "pending") }
