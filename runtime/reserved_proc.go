package runtime

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/internal/nsrun"
)

// procSockets lists the namespace's TCP and UDP sockets from
// /proc/thread-self/net/{tcp,tcp6,udp,udp6}, read by a thread inside the
// namespace: the fallback of a kernel without sock_diag for them.
func procSockets(nsName string) ([]hostSocket, error) {
	var out []hostSocket
	err := nsrun.Named(nsName, func() error {
		for _, f := range []struct {
			name  string
			proto uint8
		}{{"tcp", unix.IPPROTO_TCP}, {"tcp6", unix.IPPROTO_TCP}, {"udp", unix.IPPROTO_UDP}, {"udp6", unix.IPPROTO_UDP}} {
			b, err := os.ReadFile("/proc/thread-self/net/" + f.name)
			if os.IsNotExist(err) && strings.HasSuffix(f.name, "6") {
				continue // no IPv6 in this kernel
			}
			if err != nil {
				return fmt.Errorf("list %s sockets: %w", strings.ToUpper(f.name), err)
			}
			socks, err := parseProcSockets(b, f.proto)
			if err != nil {
				return fmt.Errorf("/proc/net/%s: %w", f.name, err)
			}
			out = append(out, socks...)
		}
		return nil
	})
	return out, err
}

// parseProcSockets reads a /proc/net/{tcp,udp}[6] table: after its title
// line, one socket per line, "sl local_address rem_address st ...", the
// local address as hex 32-bit words in host order and the port and state
// as hex.
func parseProcSockets(b []byte, proto uint8) ([]hostSocket, error) {
	var out []hostSocket
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 0; sc.Scan(); line++ {
		fs := strings.Fields(sc.Text())
		if line == 0 || len(fs) < 4 {
			continue
		}
		addrPort := strings.Split(fs[1], ":")
		if len(addrPort) != 2 {
			return nil, fmt.Errorf("line %d: local address %q", line+1, fs[1])
		}
		addr, err := procAddr(addrPort[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line+1, err)
		}
		port, err := strconv.ParseUint(addrPort[1], 16, 16)
		if err != nil {
			return nil, fmt.Errorf("line %d: port %q", line+1, addrPort[1])
		}
		state, err := strconv.ParseUint(fs[3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("line %d: state %q", line+1, fs[3])
		}
		out = append(out, hostSocket{proto, addr, uint16(port), uint8(state)})
	}
	return out, sc.Err()
}

// procAddr decodes an address of /proc/net: 8 or 32 hex digits, each
// group of 8 a 32-bit word in host order.
func procAddr(h string) (netip.Addr, error) {
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, fmt.Errorf("address %q", h)
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(raw)
	return a, nil
}
