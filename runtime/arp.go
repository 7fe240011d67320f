package runtime

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/xdpc/xdpc/artifact"
)

// arpNotes warns about each outside address of a nat block (masquerade
// to, forward dst, static outside) that is not an address of the block's
// outside interface: nothing answers ARP for it on the outside network,
// so replies and new inbound flows never arrive. An interface with proxy
// ARP on (its own setting or conf.all's) answers for it and gets no
// warning; so does an address of another interface while arp_ignore is 0
// (the larger of conf.all's and the interface's), the kernel answering
// for every address of the host then.
func arpNotes(l layout, bindings []artifact.InterfaceBinding, blocks []NATAddresses) ([]string, error) {
	var notes []string
	for _, b := range bindings {
		if b.NAT != "outside" {
			continue
		}
		i := slices.IndexFunc(blocks, func(a NATAddresses) bool { return a.Block == b.NATBlock })
		if i < 0 {
			continue
		}
		have, err := interfaceAddrs(l.nsName, b.Name)
		if err != nil {
			return nil, err
		}
		local, err := interfaceAddrs(l.nsName, "")
		if err != nil {
			return nil, err
		}
		proxy, ignore := false, 0
		err = inNetns(l.nsName, func() error {
			for _, scope := range []string{"all", b.Name} {
				v, err := readSysctl("net.ipv4.conf." + scope + ".proxy_arp")
				if err != nil {
					return err
				}
				proxy = proxy || v == "1"
				if v, err = readSysctl("net.ipv4.conf." + scope + ".arp_ignore"); err != nil {
					return err
				}
				ignore = max(ignore, atoiOr(v))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if proxy {
			continue
		}
		if ignore == 0 {
			// The kernel answers for any address of the host on any
			// interface (arp_ignore 0).
			have = local
		}
		blk := blocks[i]
		for _, role := range []struct {
			what  string
			addrs []netip.Addr
		}{{"masquerade to", blk.Masquerade}, {"forward dst", blk.Forward}, {"static outside", blk.Static}} {
			for _, a := range role.addrs {
				if slices.Contains(have, a) {
					continue
				}
				notes = append(notes, fmt.Sprintf("warning: nat %q: %s address %s is not an address of the outside interface %s%s: nothing answers ARP for it there; add it (ip addr add %s/32 dev %s) or enable proxy ARP (net.ipv4.conf.%s.proxy_arp = 1)",
					blk.Block, role.what, a, b.Name, l.inNetnsPhrase(), a, b.Name, b.Name))
			}
		}
	}
	return notes, nil
}

// interfaceAddrs lists the IPv4 addresses of ifname in the namespace, of
// every interface when ifname is "".
func interfaceAddrs(nsName, ifname string) ([]netip.Addr, error) {
	h, err := linkHandle(nsName)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var lk netlink.Link
	if ifname != "" {
		if lk, err = h.LinkByName(ifname); err != nil {
			return nil, fmt.Errorf("find %s: %w", ifname, err)
		}
	}
	as, err := h.AddrList(lk, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", cmp.Or(ifname, "the namespace"), err)
	}
	var out []netip.Addr
	for _, a := range as {
		if x, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, x.Unmap())
		}
	}
	return out, nil
}
