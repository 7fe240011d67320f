# Count rules never decide; every one that matches is counted, in order.
policy "counts" {
  default   = "pass"
  malformed = "drop"

  rule "all-ipv4" {
    ether_type = "ipv4"
    action     = "count"
  }

  rule "all-tcp" {
    proto  = "tcp"
    action = "count"
  }

  rule "web-syn" {
    proto     = "tcp"
    dst_port  = 443
    tcp_flags = "syn"
    action    = "count"
  }

  rule "drop-telnet" {
    proto    = "tcp"
    dst_port = 23
    action   = "drop"
  }

  rule "after-the-drop" {
    proto  = "tcp"
    action = "count"
  }
}
