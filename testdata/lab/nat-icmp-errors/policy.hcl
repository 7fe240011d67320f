# ICMP errors about translated flows, both ways: from the outside about a
# masqueraded flow (port unreachable, fragmentation needed, time
# exceeded), the error goes to the inside host with the packet it carries
# translated back; from the inside about a forwarded flow, the error
# leaves as from the public address. An error about an untranslated flow
# is not translated.
interface "eth0" { policy = "outside" }
interface "eth1" { policy = "inside" }

policy "outside" {
  default   = "drop"
  malformed = "drop"

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }

  rule "replies" {
    ct_state = ["established", "related"]
    action   = "pass"
  }

  rule "web" {
    proto    = "tcp"
    dst      = "203.0.113.1"
    dst_port = 8080
    action   = "pass"
  }

  rule "host-dns" {
    proto    = "udp"
    dst      = "203.0.113.1"
    dst_port = 53
    action   = "pass"
  }
}

policy "inside" {
  default   = "pass"
  malformed = "drop"
}

nat "edge" {
  outside = "eth0"
  inside  = "eth1"

  masquerade {
    src   = "10.0.0.0/24"
    to    = "203.0.113.1"
    ports = "20000-59999"
  }

  forward "web" {
    proto    = "tcp"
    dst      = "203.0.113.1"
    dst_port = 8080
    to       = "10.0.0.5:80"
  }
}
