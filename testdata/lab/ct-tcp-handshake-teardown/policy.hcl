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

# The handshake as a test: the reply the host sends makes the peer's ACK
# established, and a stray ACK of an unknown flow is invalid.
test "handshake" {
  step {
    packet   = "tcp 192.0.2.1:40000 > 10.0.0.2:22 flags S"
    expect   = "pass"
    rule     = "ssh"
    ct_state = "new"
  }
  step {
    packet = "out tcp 10.0.0.2:22 > 192.0.2.1:40000 flags SA"
  }
  step {
    packet   = "tcp 192.0.2.1:40000 > 10.0.0.2:22 flags A"
    expect   = "pass"
    rule     = "replies"
    ct_state = "established"
  }
  step {
    packet   = "tcp 192.0.2.1:40001 > 10.0.0.2:22 flags A"
    expect   = "drop"
    rule     = "invalid"
    ct_state = "invalid"
  }
}
