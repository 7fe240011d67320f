# The example policy `xdpc demo` builds: a host firewall for a server that
# offers SSH to its management network, web to everyone and DNS to itself.

variable "mgmt" {
  default = "10.10.0.0/16"
}

set "blocklist" {
  type     = "cidr"
  elements = ["198.51.100.0/24", "2001:db8:bad::/48"]
}

interface "eth0" {
  policy = "host"
}

policy "host" {
  default   = "drop"
  malformed = "drop"

  rule "blocklisted" {
    src    = set.blocklist
    action = "drop"
  }

  rule "fragments" {
    fragment = "later"
    action   = "count"
  }

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }

  rule "neighbour-discovery" {
    proto     = "icmpv6"
    icmp_type = [133, 134, 135, 136]
    action    = "pass"
  }

  rule "ssh-from-mgmt" {
    proto    = "tcp"
    src      = var.mgmt
    dst_port = 22
    action   = "pass"
  }

  rule "web" {
    proto    = "tcp"
    dst_port = [80, 443, "8000-8099"]
    action   = "pass"
  }

  rule "syn-without-ack" {
    proto     = "tcp"
    tcp_flags = "syn,!ack"
    action    = "drop"
  }

  rule "ping" {
    proto     = "icmp"
    icmp_type = "echo-request"
    action    = "pass"
  }
}
