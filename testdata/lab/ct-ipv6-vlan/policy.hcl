# A dual-stack host on tagged VLANs that lets in only what answers it: the
# same tracking over IPv6 as over IPv4, and a flow is one flow on every
# VLAN (tags take no part in its key).
policy "host" {
  default   = "drop"
  malformed = "drop"

  rule "nd" {
    proto     = "icmpv6"
    icmp_type = [133, 134, 135, 136]
    action    = "pass"
  }

  rule "replies" {
    ct_state = ["established", "related"]
    action   = "pass"
  }

  rule "web" {
    proto     = "tcp"
    dst       = "2001:db8::2"
    dst_port  = 443
    tcp_flags = "syn,!ack"
    action    = "pass"
  }
}
