package lab

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// namespaceExists reports whether the named namespace is mounted.
func namespaceExists(name string) bool {
	_, err := os.Stat(filepath.Join(namespaceDir, name))
	return err == nil
}

func newTestTopology(t *testing.T, kind string) *Topology {
	t.Helper()
	topo, err := NewTopology(kind)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	return topo
}

// TestTopologies checks what each topology promises: its ports, tx
// checksum offload off on every veth end, and nothing left after Close.
func TestTopologies(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		roles []string
	}{
		{TopologyHost, []string{"dut", "peer"}},
		{TopologyRouter, []string{"client", "inside", "outside", "server"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			topo := newTestTopology(t, tc.kind)
			var roles []string
			for role, p := range topo.Ports {
				roles = append(roles, role)
				var on bool
				err := inNamespace(p.ns.handle, func() error {
					var err error
					on, err = txChecksumOffload(p.Name)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if on {
					t.Errorf("%s (%s): tx checksum offload is on", role, p.Name)
				}
			}
			if diff := cmp.Diff(tc.roles, slices.Sorted(slices.Values(roles))); diff != "" {
				t.Errorf("ports (-want +got):\n%s", diff)
			}
			names := topo.Namespaces()
			for _, n := range names {
				if !strings.HasPrefix(n, NamespacePrefix) || !namespaceExists(n) {
					t.Errorf("namespace %s: want a mounted name starting with %s", n, NamespacePrefix)
				}
			}
			if err := topo.Close(); err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if namespaceExists(n) {
					t.Errorf("namespace %s is left after Close", n)
				}
			}
		})
	}
}

// TestRouterTopologyIsConfigured checks the router topology's sysctls
// (forwarding on, no reverse-path filter, no IPv6) and its static
// neighbours.
func TestRouterTopologyIsConfigured(t *testing.T) {
	topo := newTestTopology(t, TopologyRouter)
	router := topo.Ports["outside"].ns
	for sysctl, want := range map[string]string{
		"ipv4/ip_forward":                "1",
		"ipv4/conf/all/rp_filter":        "0",
		"ipv4/conf/outside/rp_filter":    "0",
		"ipv4/conf/inside/rp_filter":     "0",
		"ipv6/conf/all/disable_ipv6":     "1",
		"ipv6/conf/outside/disable_ipv6": "1",
	} {
		var got []byte
		err := inNamespace(router.handle, func() error {
			var err error
			got, err = os.ReadFile("/proc/sys/net/" + sysctl)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(got)); got != want {
			t.Errorf("router %s = %s, want %s", sysctl, got, want)
		}
	}
	for _, n := range []struct{ at, of string }{{"client", "outside"}, {"outside", "client"}, {"inside", "server"}, {"server", "inside"}} {
		at, of := topo.Ports[n.at], topo.Ports[n.of]
		neighs, err := at.ns.nl.NeighList(at.Index, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ne := range neighs {
			if ne.IP.Equal(of.Address.IP) && ne.HardwareAddr.String() == of.MAC.String() && ne.State == netlink.NUD_PERMANENT {
				found = true
			}
		}
		if !found {
			t.Errorf("%s has no permanent neighbour %s at %s: %v", n.at, of.Address.IP, of.MAC, neighs)
		}
	}
}

// TestRouterTopologyForwardsWhatPasses replays through the router: a passed
// packet leaves on the inside, rewritten by the forwarding (MACs, TTL); a
// dropped one never does.
func TestRouterTopologyForwardsWhatPasses(t *testing.T) {
	cfg, p := loadTestPolicy(t, `
policy "r" {
  default   = "pass"
  malformed = "drop"

  rule "no-telnet" {
    proto    = "tcp"
    dst_port = 23
    action   = "drop"
  }
}
`)
	b, err := NewLabBackend(cfg, p, LabOptions{Topology: TopologyRouter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for _, tc := range []struct{ packet, want string }{
		{"tcp 10.200.1.2:40000 > 10.200.2.2:80 flags S",
			"   1  pass      default           tcp 10.200.1.2:40000 > 10.200.2.2:80 flags S  rewritten to ether 02:00:00:00:00:03 > 02:00:00:00:00:04 tcp 10.200.1.2:40000 > 10.200.2.2:80 flags S ttl 63"},
		{"tcp 10.200.1.2:40000 > 10.200.2.2:23 flags S",
			"   1  drop      no-telnet         tcp 10.200.1.2:40000 > 10.200.2.2:23 flags S"},
	} {
		frame, err := ParsePacket(tc.packet)
		if err != nil {
			t.Fatal(err)
		}
		v, err := b.Run(Frame{Data: frame})
		if err != nil {
			t.Fatalf("%s: %v", tc.packet, err)
		}
		v.Index = 1
		if diff := cmp.Diff(tc.want, v.String()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.packet, diff)
		}
	}
}

// TestRouterTopologyAttributesOnlyTheInjectedFrame sends frames the router
// itself answers or discards, each followed by the frames its answer makes:
// an ICMP error or echo reply to the client, an ARP request on the inside,
// an ICMP error to the server's network, a frame routed back to the
// client. The line of each is the injected frame's own fate: the verdict
// its counters show, confirmed on the router's ingress, and no "rewritten
// to" when the frame never left towards the server. None of the router's
// frames is taken for one of the lab's, nor makes a later frame fail.
func TestRouterTopologyAttributesOnlyTheInjectedFrame(t *testing.T) {
	cfg, p := loadTestPolicy(t, `
policy "r" {
  default   = "pass"
  malformed = "drop"

  rule "no-telnet" {
    proto    = "tcp"
    dst_port = 23
    action   = "drop"
  }
}
`)
	b, err := NewLabBackend(cfg, p, LabOptions{Topology: TopologyRouter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	const forwarded = "   1  pass      default           tcp 10.200.1.2:40000 > 10.200.2.2:80 flags S  rewritten to ether 02:00:00:00:00:03 > 02:00:00:00:00:04 tcp 10.200.1.2:40000 > 10.200.2.2:80 flags S ttl 63"
	for _, tc := range []struct {
		why, packet string
		want        string // "" for the reference's line: the frame did not leave
	}{
		{"time exceeded: the router answers the client", "udp 10.200.1.2:40000 > 10.200.2.2:53 ttl 1", ""},
		{"a ping to the router: it answers with an echo reply", "icmp 10.200.1.2 > 10.200.1.1", ""},
		{"no route: the router answers net unreachable", "udp 10.200.1.2:40000 > 192.0.2.9:53", ""},
		{"no neighbour: the router asks for it in ARP on the inside", "udp 10.200.1.2:40000 > 10.200.2.9:53", ""},
		{"a forwarded frame while the router still asks", "tcp 10.200.1.2:40000 > 10.200.2.2:80 flags S", forwarded},
		{"time exceeded for a source behind the router: the error goes to the server's network", "udp 10.200.2.7:40000 > 10.200.2.2:53 ttl 1", ""},
		{"time exceeded with no route back: the router discards it", "udp 10.0.0.1:40000 > 10.200.2.2:53 ttl 1", ""},
		{"an ARP request for the router: it answers the client", "arp 10.200.1.2 > 10.200.1.1", ""},
		{"routed back out to the client, whose stack would answer through the DUT", "udp 10.0.0.1:40000 > 10.200.1.2:53", ""},
		{"dropped by the policy: the router never sees it", "tcp 10.200.1.2:40000 > 10.200.2.2:23 flags S ttl 1", ""},
		{"forwarded after all of it", "tcp 10.200.1.2:40000 > 10.200.2.2:80 flags S", forwarded},
	} {
		frame, err := ParsePacket(tc.packet)
		if err != nil {
			t.Fatal(err)
		}
		want := tc.want
		if want == "" {
			ref, _ := newReferenceBackend(cfg, p).Run(Frame{Data: frame})
			ref.Index = 1
			want = ref.String()
		}
		v, err := b.Run(Frame{Data: frame})
		if err != nil {
			t.Errorf("%s (%s): %v", tc.why, tc.packet, err)
			continue
		}
		v.Index = 1
		if diff := cmp.Diff(want, v.String()); diff != "" {
			t.Errorf("%s (%s) (-want +got):\n%s", tc.why, tc.packet, diff)
		}
	}
}

// TestTeardownOnPanic checks that a deferred Close removes the namespaces
// while a panic unwinds.
func TestTeardownOnPanic(t *testing.T) {
	var names []string
	func() {
		defer func() { recover() }()
		topo, err := NewTopology(TopologyHost)
		if err != nil {
			t.Fatal(err)
		}
		defer topo.Close()
		names = topo.Namespaces()
		panic("boom")
	}()
	if len(names) == 0 {
		t.Fatal("no namespaces were created")
	}
	for _, n := range names {
		if namespaceExists(n) {
			t.Errorf("namespace %s is left after a panic", n)
		}
	}
}

// TestTeardownOnInterrupt sends this process SIGINT and checks that every
// live topology is gone before the exit the handler reports.
func TestTeardownOnInterrupt(t *testing.T) {
	topo := newTestTopology(t, TopologyHost)
	names := topo.Namespaces()
	exited := make(chan int, 1)
	stop := TeardownOnInterrupt(func(code int) { exited <- code })
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 130 {
			t.Errorf("exit code %d, want 130", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the interrupt handler did not run within 5 s")
	}
	for _, n := range names {
		if namespaceExists(n) {
			t.Errorf("namespace %s is left after SIGINT", n)
		}
	}
}

// TestCollectGarbage checks that gc removes the namespaces of a dead
// process and keeps those of live ones unless told otherwise.
func TestCollectGarbage(t *testing.T) {
	suffix, err := randomSuffix()
	if err != nil {
		t.Fatal(err)
	}
	// No process has pid 2^22+1 (above the kernel's pid_max limit).
	dead, err := newNamespace(NamespacePrefix + "4194305-" + suffix + "-gc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.delete() })
	alive := newTestTopology(t, TopologyHost)
	deleted, err := CollectGarbage(GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Another process's gc may have collected it first; either way it must
	// be gone.
	if namespaceExists(dead.name) {
		t.Errorf("gc deleted %v; want %s gone", deleted, dead.name)
	}
	for _, n := range alive.Namespaces() {
		if slices.Contains(deleted, n) || !namespaceExists(n) {
			t.Errorf("gc deleted %s of a live process", n)
		}
	}
}
