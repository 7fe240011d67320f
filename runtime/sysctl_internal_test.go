package runtime

import "testing"

// TestSysctlPath: a dotted name maps to its file, an interface name with
// dots included.
func TestSysctlPath(t *testing.T) {
	for name, want := range map[string]string{
		"net.ipv4.ip_forward":                 "/proc/sys/net/ipv4/ip_forward",
		"net.ipv4.conf.all.rp_filter":         "/proc/sys/net/ipv4/conf/all/rp_filter",
		"net.ipv4.conf.eth0.100.accept_local": "/proc/sys/net/ipv4/conf/eth0.100/accept_local",
	} {
		if got := sysctlPath(name); got != want {
			t.Errorf("sysctlPath(%q) = %q, want %q", name, got, want)
		}
	}
}
