set "blocklist" {
  type     = "cidr"
  elements = ["198.51.100.0/24", "2001:db8:bad::/48"]
  dynamic  = true
}

set "web" {
  type     = "port"
  elements = [80, 443, "8000-8001"]
}

interface "eth0" {
  policy = "edge"
}

policy "edge" {
  default   = "drop"
  malformed = "drop"

  rule "blocked" {
    src    = set.blocklist
    action = "drop"
  }

  rule "web" {
    proto    = "tcp"
    dst_port = set.web
    action   = "pass"
  }

  rule "seen" {
    proto  = "udp"
    action = "count"
  }

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }
}
