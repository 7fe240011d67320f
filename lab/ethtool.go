package lab

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtool commands (linux/ethtool.h) the lab uses to switch veth offloads.
const (
	ethtoolGetTxCsum = 0x16 // ETHTOOL_GTXCSUM
	ethtoolSetTxCsum = 0x17 // ETHTOOL_STXCSUM
	ethtoolSetGRO    = 0x2c // ETHTOOL_SGRO
)

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ethtoolRequest is struct ifreq with ifr_data pointing at an ethtool_value,
// padded to the kernel's 40 bytes.
type ethtoolRequest struct {
	name [unix.IFNAMSIZ]byte
	data *ethtoolValue
	_    [40 - unix.IFNAMSIZ - 8]byte
}

// ethtool runs one ethtool value command on ifname in the calling thread's
// network namespace and returns the value the kernel left.
func ethtool(ifname string, cmd, value uint32) (uint32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	v := &ethtoolValue{cmd: cmd, data: value}
	req := &ethtoolRequest{data: v}
	copy(req.name[:unix.IFNAMSIZ-1], ifname)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(req)))
	if errno != 0 {
		return 0, fmt.Errorf("ethtool command %#x on %s: %w", cmd, ifname, errno)
	}
	return v.data, nil
}

// disableOffloads turns off tx checksum offload (so frames a local socket
// sends carry full checksums, never CHECKSUM_PARTIAL) and GRO (so every
// frame reaches the stack as it arrived) on ifname.
func disableOffloads(ifname string) error {
	if _, err := ethtool(ifname, ethtoolSetTxCsum, 0); err != nil {
		return fmt.Errorf("turn off tx checksum offload: %w", err)
	}
	if _, err := ethtool(ifname, ethtoolSetGRO, 0); err != nil {
		return fmt.Errorf("turn off gro: %w", err)
	}
	return nil
}

// txChecksumOffload reports whether tx checksum offload is on for ifname.
func txChecksumOffload(ifname string) (bool, error) {
	v, err := ethtool(ifname, ethtoolGetTxCsum, 0)
	return v != 0, err
}
