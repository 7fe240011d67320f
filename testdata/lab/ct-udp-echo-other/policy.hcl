# A host serving DNS that lets in only what answers it otherwise: UDP
# both ways, ICMP echo, another protocol (GRE), and what tracking leaves
# alone (neighbour discovery, later fragments, ARP).
policy "host" {
  default   = "drop"
  malformed = "drop"

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }

  rule "nd" {
    proto     = "icmpv6"
    icmp_type = [133, 134, 135, 136]
    action    = "pass"
  }

  rule "replies" {
    ct_state = ["established", "related"]
    action   = "pass"
  }

  rule "dns" {
    proto    = "udp"
    dst_port = 53
    action   = "pass"
  }

  rule "not-new" {
    ct_state = "!new"
    action   = "count"
  }
}
