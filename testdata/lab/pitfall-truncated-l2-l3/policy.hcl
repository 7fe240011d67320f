# PITFALLS.md, parsing: truncated VLAN, IPv4 and IPv6 headers are malformed.
# (Frames shorter than an Ethernet header never reach XDP; see docs/lab.md.)
policy "truncated" {
  default   = "pass"
  malformed = "drop"

  rule "any-ip" {
    ether_type = ["ipv4", "ipv6"]
    action     = "count"
  }
}
