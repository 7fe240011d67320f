# Send suspicious traffic to a scrubbing interface instead of the stack:
# DNS from outside the resolvers' network and every fragment go to scrub0,
# telemetry to mirror0; the rest passes or is dropped. The lab creates
# scrub0 and mirror0 beside the DUT and checks each redirected frame
# leaves through the interface its rule names, unchanged.
policy "scrubber" {
  default   = "pass"
  malformed = "drop"

  rule "fragments" {
    fragment = ["first", "later"]
    action   = "redirect"
    to       = "scrub0"
  }

  rule "resolvers" {
    proto    = "udp"
    src      = "10.53.0.0/16"
    dst_port = 53
    action   = "pass"
  }

  rule "foreign-dns" {
    proto    = ["udp", "tcp"]
    dst_port = 53
    action   = "redirect"
    to       = "scrub0"
  }

  rule "telemetry" {
    proto    = "udp"
    dst_port = "4739-4740"
    action   = "redirect"
    to       = "mirror0"
  }

  rule "telnet" {
    proto    = "tcp"
    dst_port = 23
    action   = "drop"
  }
}

test "foreign DNS is scrubbed" {
  packet = "udp 203.0.113.9:40000 > 192.0.2.53:53"
  expect = "redirect"
  rule   = "foreign-dns"
  to     = "scrub0"
}

test "telemetry is mirrored" {
  packet = "udp 203.0.113.9:40000 > 192.0.2.53:4739"
  expect = "redirect"
  to     = "mirror0"
}
