# PITFALLS.md, parsing: a first fragment whose L4 header is cut short;
# overlapping and tiny fragments.
policy "frag-first" {
  default   = "pass"
  malformed = "drop"

  rule "first-fragments" {
    fragment = "first"
    action   = "count"
  }

  rule "no-ssh" {
    proto    = "tcp"
    dst_port = 22
    action   = "drop"
  }
}
