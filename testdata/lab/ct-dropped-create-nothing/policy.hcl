# Only packets the policy lets through (and the host's own) change the
# table: what it drops creates and moves nothing, so a flood it drops
# cannot fill the table, and a connection it refused never becomes one.
# This host also refuses every reset from outside, its connections'
# included.
policy "host" {
  default   = "drop"
  malformed = "drop"

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }

  rule "resets" {
    proto     = "tcp"
    tcp_flags = "rst"
    action    = "drop"
  }

  rule "replies" {
    ct_state = ["established", "related"]
    action   = "pass"
  }

  rule "blocked" {
    src    = "203.0.113.0/24"
    action = "drop"
  }

  rule "ssh" {
    proto    = "tcp"
    dst_port = 22
    action   = "pass"
  }
}
