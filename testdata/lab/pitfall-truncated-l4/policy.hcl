# PITFALLS.md, parsing: truncated TCP (data offset < 5 or beyond the
# packet), UDP and ICMP headers are malformed; bounds are the IP packet.
policy "truncated-l4" {
  default   = "pass"
  malformed = "drop"

  rule "web" {
    proto    = "tcp"
    dst_port = [80, 443]
    action   = "pass"
  }
}
