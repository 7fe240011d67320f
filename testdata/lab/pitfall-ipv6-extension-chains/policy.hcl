# PITFALLS.md, parsing: IPv6 hop-by-hop, routing, destination options,
# fragment and AH headers (AH length in 4-octet units), chains longer than
# the bound, header lengths past the frame, "no next header" (59).
policy "ipv6-ext" {
  default   = "pass"
  malformed = "drop"

  rule "no-ssh" {
    proto    = "tcp"
    dst_port = 22
    action   = "drop"
  }

  rule "ah" {
    proto  = 51
    action = "count"
  }

  rule "no-next" {
    proto  = 59
    action = "count"
  }
}
