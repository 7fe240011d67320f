# PITFALLS.md, parsing: IPv4 options (IHL > 5) put the L4 header at IHL*4.
policy "options" {
  default   = "drop"
  malformed = "drop"

  rule "ssh" {
    proto    = "tcp"
    dst_port = [22, 80, 443]
    action   = "pass"
  }

  rule "dns" {
    proto    = "udp"
    dst_port = [53, 123]
    action   = "pass"
  }

  rule "icmp" {
    proto  = "icmp"
    action = "pass"
  }
}
