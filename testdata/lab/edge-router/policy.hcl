# An edge router's outside interface: anti-spoofing, a blocklist, services
# published behind it, replies and neighbour traffic.
set "bogons" {
  type     = "cidr"
  elements = ["0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4", "fc00::/7"]
}

set "published" {
  type     = "port"
  elements = ["25", "80", "443", "8000-8099"]
}

policy "edge" {
  default   = "drop"
  malformed = "drop"

  rule "spoofed" {
    src    = set.bogons
    action = "drop"
  }

  rule "fragments" {
    fragment = "later"
    action   = "drop"
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

  rule "published" {
    proto    = "tcp"
    dst      = ["203.0.113.0/24", "2001:db8:100::/48"]
    dst_port = set.published
    action   = "pass"
  }

  rule "replies" {
    proto     = "tcp"
    tcp_flags = "ack"
    src_port  = [80, 443]
    action    = "pass"
  }

  rule "dns-replies" {
    proto    = "udp"
    src_port = 53
    action   = "pass"
  }

  rule "pmtu" {
    proto     = "icmp"
    icmp_type = "dest-unreachable"
    icmp_code = 4
    action    = "pass"
  }

  rule "ping" {
    proto     = "icmp"
    icmp_type = "echo-request"
    action    = "pass"
  }

  rule "ping6" {
    proto     = "icmpv6"
    icmp_type = 128
    action    = "pass"
  }
}
