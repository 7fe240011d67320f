package lab

import "github.com/xdpc/xdpc/internal/ethtool"

// disableOffloads turns off tx checksum offload (so frames a local socket
// sends carry full checksums, never CHECKSUM_PARTIAL) and GRO (so every
// frame reaches the stack as it arrived) on ifname.
func disableOffloads(ifname string) error {
	if err := ethtool.Set(ifname, ethtool.TxChecksum, false); err != nil {
		return err
	}
	return ethtool.Set(ifname, ethtool.GRO, false)
}

// txChecksumOffload reports whether tx checksum offload is on for ifname.
func txChecksumOffload(ifname string) (bool, error) {
	return ethtool.Get(ifname, ethtool.TxChecksum)
}
