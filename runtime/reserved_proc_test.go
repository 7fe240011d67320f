package runtime

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/internal/nstest"
)

// TestParseProcSockets reads the tables /proc/net prints, IPv4 and IPv6
// (a little-endian host's word order).
func TestParseProcSockets(t *testing.T) {
	tcp := []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 017100CB:1F90 020000C6:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
`)
	tcp6 := []byte(`  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
   1: B80D0120000000000000000001000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 100 0 0 10 0
`)
	got, err := parseProcSockets(tcp, unix.IPPROTO_TCP)
	if err != nil {
		t.Fatal(err)
	}
	more, err := parseProcSockets(tcp6, unix.IPPROTO_TCP)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, more...)
	want := []hostSocket{
		{unix.IPPROTO_TCP, netip.MustParseAddr("127.0.0.1"), 53, tcpListen},
		{unix.IPPROTO_TCP, netip.MustParseAddr("203.0.113.1"), 8080, 1},
		{unix.IPPROTO_TCP, netip.MustParseAddr("::"), 22, tcpListen},
		{unix.IPPROTO_TCP, netip.MustParseAddr("2001:db8::1"), 443, tcpListen},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(hostSocket{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("parsed sockets (-want +got):\n%s", diff)
	}
	if _, err := parseProcSockets([]byte("title\n 0: 0100007F 00000000:0000 0A\n"), unix.IPPROTO_TCP); err == nil {
		t.Error("a local address without a port parsed")
	}
}

// TestProcSocketsAgreeWithDiag: in a namespace with listening and bound
// sockets, /proc/net and sock_diag give the same reserved ports.
func TestProcSocketsAgreeWithDiag(t *testing.T) {
	ns := nstest.New(t)
	ns.Do(t, func() {
		for _, addr := range []string{"127.0.0.1:5353", "[::]:2222"} {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}
		u, err := net.ListenPacket("udp", "127.0.0.1:6000")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { u.Close() })
	})
	reserved := func(list func(string) ([]hostSocket, error)) []hostSocket {
		t.Helper()
		socks, err := list(ns.Name)
		if err != nil {
			t.Fatal(err)
		}
		var out []hostSocket
		for _, s := range socks {
			if s.proto == unix.IPPROTO_UDP || s.state == tcpListen {
				s.addr = s.addr.Unmap()
				out = append(out, s)
			}
		}
		slices.SortFunc(out, func(a, b hostSocket) int { return int(a.port) - int(b.port) })
		return out
	}
	diag, proc := reserved(diagSockets), reserved(procSockets)
	if len(diag) != 3 {
		t.Fatalf("sock_diag lists %+v, want the 3 sockets opened", diag)
	}
	if diff := cmp.Diff(diag, proc, cmp.AllowUnexported(hostSocket{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("/proc/net against sock_diag (-diag +proc):\n%s", diff)
	}
}
