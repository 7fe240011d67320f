# PITFALLS.md, parsing: non-first IPv4/IPv6 fragments have no L4 header, so a
# port rule must not match them and their bytes must not be read as ports.
policy "frag" {
  default   = "pass"
  malformed = "drop"

  rule "no-ssh" {
    proto    = "tcp"
    dst_port = 22
    action   = "drop"
  }

  rule "no-dns" {
    proto    = "udp"
    dst_port = 53
    action   = "drop"
  }

  rule "later-fragments" {
    fragment = "later"
    action   = "count"
  }

  rule "tcp-seen" {
    proto  = "tcp"
    action = "count"
  }
}
