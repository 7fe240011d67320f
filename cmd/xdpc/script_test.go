package main

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/internal/cttest"
	"github.com/xdpc/xdpc/internal/nstest"
)

// runAsXDPC makes the test binary run as xdpc itself, for tests that need
// a real child process (signals).
const runAsXDPC = "XDPC_TEST_RUN_AS_XDPC"

func TestMain(m *testing.M) {
	if os.Getenv(runAsXDPC) != "" {
		main()
	}
	testscript.Main(m, map[string]func(){
		"xdpc": main,
	})
}

// namespaces holds each script's namespace by name, for sendudp.
var namespaces sync.Map

// TestScripts runs the CLI scenarios in testdata/script: each is a txtar of
// commands, the files they read and the output they must print.
//
// Every script gets its own network namespace $NETNS holding a veth pair
// src0 <-> dut0 (policies attach to dut0, sendudp sends from src0), a
// private pin root ($XDPC_PIN_ROOT, on a bpffs) and state directory
// ($XDPC_STATE_DIR); all are removed when the script ends.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: os.Getenv("XDPC_UPDATE_SCRIPTS") != "",
		Setup:         setupRuntime,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"sendudp":     cmdSendUDP,
			"waitpending": cmdWaitPending,
			"newnetns":    cmdNewNetns,
			"ctartifact":  cmdCTArtifact,
			"hostsend":    cmdHostSend,
			"hostconnect": cmdHostConnect,
		},
	})
}

func setupRuntime(env *testscript.Env) error {
	ns, err := nstest.Create()
	if err != nil {
		return err
	}
	env.Defer(func() {
		namespaces.Delete(ns.Name)
		if err := ns.Close(); err != nil {
			env.T().Log(err)
		}
	})
	if _, _, err := ns.AddVeth("src0", "dut0"); err != nil {
		return err
	}
	namespaces.Store(ns.Name, ns)
	scratch := filepath.Join(env.WorkDir, ".bpffs")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return err
	}
	pins, cleanup, err := nstest.MakePinRoot(scratch)
	if err != nil {
		return err
	}
	env.Defer(func() {
		if err := cleanup(); err != nil {
			env.T().Log(err)
		}
	})
	env.Setenv("NETNS", ns.Name)
	env.Setenv("XDPC_PIN_ROOT", pins)
	env.Setenv("XDPC_STATE_DIR", filepath.Join(env.WorkDir, ".state"))
	return nil
}

// cmdSendUDP sends COUNT IPv4 UDP frames from 192.0.2.1 to 192.0.2.2 port
// DPORT out of src0 in $NETNS: sendudp COUNT DPORT [SRC].
func cmdSendUDP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: sendudp COUNT DPORT [SRC]")
	}
	count, err := strconv.Atoi(args[0])
	ts.Check(err)
	dport, err := strconv.Atoi(args[1])
	ts.Check(err)
	src := "192.0.2.1"
	if len(args) == 3 {
		src = args[2]
	}
	v, ok := namespaces.Load(ts.Getenv("NETNS"))
	if !ok {
		ts.Fatalf("no namespace %s", ts.Getenv("NETNS"))
	}
	ns := v.(*nstest.Netns)
	frame := udpFrame(ts, netip.MustParseAddr(src), uint16(dport))
	l, err := ns.Handle.LinkByName("src0")
	ts.Check(err)
	ts.Check(ns.Run(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Ifindex: l.Attrs().Index, Halen: 6}
		for range count {
			if err := unix.Sendto(fd, frame, 0, to); err != nil {
				return err
			}
		}
		return nil
	}))
	time.Sleep(50 * time.Millisecond) // let the receiver count them
}

func udpFrame(ts *testscript.TestScript, src netip.Addr, dport uint16) []byte {
	eth := &layers.Ethernet{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4,
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: net.IP{192, 0, 2, 2}}
	udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(dport)}
	ts.Check(udp.SetNetworkLayerForChecksum(ip))
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	ts.Check(gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload("xdpc")))
	return buf.Bytes()
}

// cmdNewNetns makes another network namespace holding a veth pair
// src0 <-> dut0, removed when the script ends, and puts its name in the
// environment variable VAR: newnetns VAR.
func cmdNewNetns(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: newnetns VAR")
	}
	ns, err := nstest.Create()
	ts.Check(err)
	ts.Defer(func() {
		namespaces.Delete(ns.Name)
		ts.Check(ns.Close())
	})
	_, _, err = ns.AddVeth("src0", "dut0")
	ts.Check(err)
	namespaces.Store(ns.Name, ns)
	ts.Setenv(args[0], ns.Name)
}

// cmdWaitPending waits up to ten seconds for an apply to await
// confirmation.
func cmdWaitPending(ts *testscript.TestScript, neg bool, args []string) {
	path := filepath.Join(ts.Getenv("XDPC_STATE_DIR"), "pending", "pending.json")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts.Fatalf("no apply awaits confirmation after 10s")
}

// cmdCTArtifact writes a hand-written artifact of policy "track" for dut0
// that tracks connections (internal/cttest): ctartifact FILE [MARK
// [ASSURED UNASSURED]].
func cmdCTArtifact(ts *testscript.TestScript, neg bool, args []string) {
	if neg || (len(args) != 1 && len(args) != 2 && len(args) != 4) {
		ts.Fatalf("usage: ctartifact FILE [MARK [ASSURED UNASSURED]]")
	}
	var o cttest.Options
	n := make([]int, len(args))
	for i := 1; i < len(args); i++ {
		v, err := strconv.Atoi(args[i])
		ts.Check(err)
		n[i] = v
	}
	if len(args) >= 2 {
		o.Mark = uint8(n[1])
	}
	if len(args) == 4 {
		o.Assured, o.Unassured = uint32(n[2]), uint32(n[3])
	}
	elf, err := cttest.ELF(o)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), elf, 0o644))
}

// Addresses of the host's own traffic in a script's namespace: dut0 has
// hostAddr, and peerAddr is a permanent neighbour behind it (src0).
const (
	hostAddr = "192.0.2.1"
	peerAddr = "192.0.2.2"
)

// hostNet gives dut0 in $NETNS the address hostAddr/24 and the neighbour
// peerAddr (src0's MAC), unless it has them, so that what the namespace
// sends to peerAddr leaves through dut0's egress.
func hostNet(ts *testscript.TestScript) *nstest.Netns {
	v, ok := namespaces.Load(ts.Getenv("NETNS"))
	if !ok {
		ts.Fatalf("no namespace %s", ts.Getenv("NETNS"))
	}
	ns := v.(*nstest.Netns)
	dut, err := ns.Handle.LinkByName("dut0")
	ts.Check(err)
	src, err := ns.Handle.LinkByName("src0")
	ts.Check(err)
	addr, err := netlink.ParseAddr(hostAddr + "/24")
	ts.Check(err)
	if err := ns.Handle.AddrAdd(dut, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		ts.Fatalf("add address: %v", err)
	}
	ts.Check(ns.Handle.NeighSet(&netlink.Neigh{
		LinkIndex: dut.Attrs().Index, IP: net.ParseIP(peerAddr), HardwareAddr: src.Attrs().HardwareAddr,
		State: netlink.NUD_PERMANENT, Family: unix.AF_INET,
	}))
	return ns
}

// cmdHostSend sends COUNT UDP datagrams from hostAddr:40000 in $NETNS to
// peerAddr, to ports PORT, PORT+1, ...: hostsend COUNT PORT. They leave
// through dut0's egress.
func cmdHostSend(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: hostsend COUNT PORT")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	port, err := strconv.Atoi(args[1])
	ts.Check(err)
	ns := hostNet(ts)
	ts.Check(ns.Run(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: netip.MustParseAddr(hostAddr).As4(), Port: 40000}); err != nil {
			return err
		}
		for i := range n {
			to := &unix.SockaddrInet4{Addr: netip.MustParseAddr(peerAddr).As4(), Port: port + i}
			if err := unix.Sendto(fd, []byte("xdpc"), 0, to); err != nil {
				return err
			}
		}
		return nil
	}))
}

// cmdHostConnect starts a TCP connection from hostAddr:41000 in $NETNS to
// peerAddr:PORT and closes it at once: its SYN leaves through dut0's
// egress and nothing more follows. hostconnect PORT.
func cmdHostConnect(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: hostconnect PORT")
	}
	port, err := strconv.Atoi(args[0])
	ts.Check(err)
	ns := hostNet(ts)
	ts.Check(ns.Run(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: netip.MustParseAddr(hostAddr).As4(), Port: 41000}); err != nil {
			return err
		}
		err = unix.Connect(fd, &unix.SockaddrInet4{Addr: netip.MustParseAddr(peerAddr).As4(), Port: port})
		if err != nil && !errors.Is(err, unix.EINPROGRESS) {
			return err
		}
		return nil
	}))
}
