# A DNS server: queries over UDP and TCP, nothing else but ARP/ND.
policy "dns" {
  default   = "drop"
  malformed = "drop"

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }

  rule "nd" {
    proto     = "icmpv6"
    icmp_type = [135, 136]
    action    = "pass"
  }

  rule "queries" {
    proto    = ["udp", "tcp"]
    dst_port = 53
    action   = "pass"
  }

  rule "port-zero" {
    proto    = "udp"
    src_port = 0
    action   = "drop"
  }
}
