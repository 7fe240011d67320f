// Package ethtool switches the offloads the lab and the NAT tests set on
// veths (checksum offload on transmit and receive, GRO), with the ethtool
// ioctl in the calling thread's network namespace: no ethtool binary.
package ethtool

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An Offload is one ethtool value setting, by its get and set commands
// (linux/ethtool.h).
type Offload struct {
	Name     string
	get, set uint32
}

// The offloads the tests switch.
var (
	RxChecksum = Offload{"rx checksum offload", 0x14, 0x15} // ETHTOOL_[GS]RXCSUM
	TxChecksum = Offload{"tx checksum offload", 0x16, 0x17} // ETHTOOL_[GS]TXCSUM
	GRO        = Offload{"gro", 0x2b, 0x2c}                 // ETHTOOL_[GS]GRO
)

// Get reports whether o is on for ifname.
func Get(ifname string, o Offload) (bool, error) {
	v, err := value(ifname, o.get, 0)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", o.Name, err)
	}
	return v != 0, nil
}

// Set turns o on or off for ifname.
func Set(ifname string, o Offload, on bool) error {
	var v uint32
	if on {
		v = 1
	}
	if _, err := value(ifname, o.set, v); err != nil {
		return fmt.Errorf("turn %s %s: %w", o.Name, map[bool]string{true: "on", false: "off"}[on], err)
	}
	return nil
}

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// request is struct ifreq with ifr_data pointing at an ethtool_value,
// padded to the kernel's 40 bytes.
type request struct {
	name [unix.IFNAMSIZ]byte
	data *ethtoolValue
	_    [40 - unix.IFNAMSIZ - 8]byte
}

// value runs one ethtool value command on ifname and returns the value
// the kernel left.
func value(ifname string, cmd, data uint32) (uint32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	v := &ethtoolValue{cmd: cmd, data: data}
	req := &request{data: v}
	copy(req.name[:unix.IFNAMSIZ-1], ifname)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(req))); errno != 0 {
		return 0, fmt.Errorf("ethtool command %#x on %s: %w", cmd, ifname, errno)
	}
	return v.data, nil
}
