# An IPv6-only host: link-local management, global web, ND, and no IPv4.
policy "v6" {
  default   = "drop"
  malformed = "drop"

  rule "no-ipv4" {
    ether_type = "ipv4"
    action     = "drop"
  }

  rule "nd" {
    proto     = "icmpv6"
    icmp_type = ["neighbor-solicitation", "neighbor-advertisement", 133, 134]
    ttl       = 255
    action    = "pass"
  }

  rule "ssh-link-local" {
    proto    = "tcp"
    src      = "fe80::/10"
    dst_port = 22
    action   = "pass"
  }

  rule "web" {
    proto    = "tcp"
    dst      = "2001:db8::/64"
    dst_port = 443
    action   = "pass"
  }

  rule "ping6" {
    proto     = "icmpv6"
    icmp_type = "echo-request"
    action    = "pass"
  }
}
