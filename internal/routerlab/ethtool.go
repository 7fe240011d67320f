package routerlab

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtool value commands (linux/ethtool.h) for checksum offloads.
const (
	ethtoolGetRxCsum = 0x14 // ETHTOOL_GRXCSUM
	ethtoolSetRxCsum = 0x15 // ETHTOOL_SRXCSUM
	ethtoolGetTxCsum = 0x16 // ETHTOOL_GTXCSUM
	ethtoolSetTxCsum = 0x17 // ETHTOOL_STXCSUM
)

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ethtoolRequest is struct ifreq with ifr_data pointing at an
// ethtool_value, padded to the kernel's 40 bytes.
type ethtoolRequest struct {
	name [unix.IFNAMSIZ]byte
	data *ethtoolValue
	_    [40 - unix.IFNAMSIZ - 8]byte
}

// ethtool runs one value command on ifname in the calling thread's
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
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(req))); errno != 0 {
		return 0, fmt.Errorf("ethtool command %#x on %s: %w", cmd, ifname, errno)
	}
	return v.data, nil
}

func setEthtool(ifname string, cmd uint32, on bool) error {
	var v uint32
	if on {
		v = 1
	}
	_, err := ethtool(ifname, cmd, v)
	return err
}

func getEthtool(ifname string, cmd uint32) (bool, error) {
	v, err := ethtool(ifname, cmd, 0)
	return v != 0, err
}
