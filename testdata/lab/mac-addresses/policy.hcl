# Source and destination MACs: broadcast, multicast and unicast lists.
policy "macs" {
  default   = "pass"
  malformed = "drop"

  rule "broadcast-non-arp" {
    dst_mac    = "ff:ff:ff:ff:ff:ff"
    ether_type = ["ipv4", "ipv6"]
    action     = "drop"
  }

  rule "bad-source" {
    src_mac = ["02:00:00:00:00:66", "ff:ff:ff:ff:ff:ff"]
    action  = "drop"
  }

  rule "lldp-dest" {
    dst_mac = "01:80:c2:00:00:0e"
    action  = "count"
  }
}
