# A server that tracks connections (host 10.0.0.2): SSH for everyone, and
# whatever belongs to a connection the table knows, both the ones peers
# open and the ones the host opens itself, whose packets it sends out
# (out lines) and the TC egress program records.
policy "host" {
  default   = "drop"
  malformed = "drop"

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }

  rule "invalid" {
    ct_state = "invalid"
    action   = "drop"
  }

  rule "replies" {
    ct_state = ["established", "related"]
    action   = "pass"
  }

  rule "ssh" {
    proto     = "tcp"
    dst_port  = 22
    tcp_flags = "syn,!ack"
    action    = "pass"
  }
}
