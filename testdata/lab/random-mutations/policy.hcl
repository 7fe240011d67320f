# Random single-byte flips of well-formed frames: whatever they turn into,
# every backend must decide them alike.
policy "mutations" {
  default   = "drop"
  malformed = "drop"

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }

  rule "tcp-web" {
    proto    = "tcp"
    dst_port = [22, 80, 443]
    action   = "pass"
  }

  rule "udp" {
    proto  = "udp"
    action = "pass"
  }

  rule "v6" {
    ether_type = "ipv6"
    action     = "count"
  }
}
