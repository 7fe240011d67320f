package livegen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VethStats are a veth's own per-queue counters (ethtool -S), summed over
// its queues.
//
// XDPPackets is the ground truth of a test at full rate: the veth counts a
// frame there when its NAPI poll takes it off the receive ring, which it
// does only to run the attached XDP program on it (native XDP: frames sent
// by this package and skbs of the peer's stack alike), and it counts after
// the program ran. Frames the ring refused never reach the program and show
// as the peer's XmitErrors; a frame the program is running on shows in
// XDPPackets once its poll (at most 64 frames) ends.
type VethStats struct {
	// XDPPackets are the frames the veth's XDP program ran on.
	XDPPackets uint64
	// XDPDrops are those it dropped (XDP_DROP).
	XDPDrops uint64
	// Xmit are the XDP frames this veth put on its peer's receive ring,
	// XmitErrors those the full ring refused.
	Xmit, XmitErrors uint64
}

// From linux/ethtool.h.
const (
	ethSSStats    = 1  // ETH_SS_STATS: the string set of driver statistics
	ethGStringLen = 32 // ETH_GSTRING_LEN
)

// veth names its queue counters rx_queue_N_NAME and tx_queue_N_NAME; the
// transmit side reports the peer's receive ring as seen from here.
var vethStat = regexp.MustCompile(`^(rx|tx)_queue_([0-9]+)_(xdp_packets|xdp_drops|xdp_xmit|xdp_xmit_errors)$`)

// ReadVethStats reads the counters of the veth ifname in the named network
// namespace ("" is the caller's).
func ReadVethStats(netnsName, ifname string) (VethStats, error) {
	var st VethStats
	err := inNetns(netnsName, func() error {
		all, err := ethtoolStats(ifname)
		if err != nil {
			return err
		}
		found := false
		for name, v := range all {
			m := vethStat.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			found = true
			switch m[1] + "_" + m[3] {
			case "rx_xdp_packets":
				st.XDPPackets += v
			case "rx_xdp_drops":
				st.XDPDrops += v
			case "tx_xdp_xmit":
				st.Xmit += v
			case "tx_xdp_xmit_errors":
				st.XmitErrors += v
			}
		}
		if !found {
			return fmt.Errorf("statistics of %s: no per-queue XDP counters (not a veth?)", ifname)
		}
		return nil
	})
	return st, err
}

// ethtoolStats returns the driver statistics of ifname by name, as
// `ethtool -S` prints them (SIOCETHTOOL: ETHTOOL_GSTRINGS, ETHTOOL_GSTATS).
func ethtoolStats(ifname string) (map[string]uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("statistics of %s: open socket: %w", ifname, err)
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, ifname)
	if err != nil {
		return nil, fmt.Errorf("statistics of %s: driver info: %w", ifname, err)
	}
	n := int(info.N_stats)

	// struct ethtool_gstrings: cmd, string_set, len, then len names.
	names := make([]byte, 12+n*ethGStringLen)
	binary.NativeEndian.PutUint32(names[0:], unix.ETHTOOL_GSTRINGS)
	binary.NativeEndian.PutUint32(names[4:], ethSSStats)
	binary.NativeEndian.PutUint32(names[8:], uint32(n))
	if err := ethtool(fd, ifname, names); err != nil {
		return nil, fmt.Errorf("statistics of %s: names: %w", ifname, err)
	}
	// struct ethtool_stats: cmd, n_stats, then n values.
	values := make([]byte, 8+n*8)
	binary.NativeEndian.PutUint32(values[0:], unix.ETHTOOL_GSTATS)
	binary.NativeEndian.PutUint32(values[4:], uint32(n))
	if err := ethtool(fd, ifname, values); err != nil {
		return nil, fmt.Errorf("statistics of %s: values: %w", ifname, err)
	}
	if got := int(binary.NativeEndian.Uint32(values[4:])); got < n {
		n = got
	}
	stats := make(map[string]uint64, n)
	for i := range n {
		raw := names[12+i*ethGStringLen : 12+(i+1)*ethGStringLen]
		if j := bytes.IndexByte(raw, 0); j >= 0 {
			raw = raw[:j]
		}
		name := string(raw)
		if _, dup := stats[name]; dup {
			name += "#" + strconv.Itoa(i)
		}
		stats[name] = binary.NativeEndian.Uint64(values[8+i*8:])
	}
	return stats, nil
}

// ethtool issues SIOCETHTOOL on ifname with data as the command buffer.
func ethtool(fd int, ifname string, data []byte) error {
	// struct ifreq: the name, then (in the union) a pointer to the command.
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	if len(ifname) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface name %q is too long", ifname)
	}
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(&data[0])
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}
