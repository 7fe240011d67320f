# PITFALLS.md, parsing: non-IP frames (ARP, LLDP) never match L3 rules; ARP
# and neighbour discovery keep working under a default-drop policy.
policy "non-ip" {
  default   = "drop"
  malformed = "drop"

  rule "every-ipv4" {
    src    = "0.0.0.0/0"
    action = "drop"
  }

  rule "not-mgmt" {
    src    = "!10.0.0.0/8"
    action = "drop"
  }

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }

  rule "nd" {
    proto     = "icmpv6"
    icmp_type = [133, 134, 135, 136]
    action    = "pass"
  }
}
