# What a TCP segment without a connection is: only a SYN may start one.
# New and invalid packets are counted on rules of their own, and port 80
# passes whatever its ct_state: the lines show that an invalid packet the
# policy lets through records nothing (the next one is invalid again).
policy "edge" {
  default   = "drop"
  malformed = "drop"

  rule "new" {
    ct_state = "new"
    action   = "count"
  }

  rule "invalid" {
    ct_state = "invalid"
    action   = "count"
  }

  rule "web-port" {
    proto    = "tcp"
    dst_port = 80
    action   = "pass"
  }
}
