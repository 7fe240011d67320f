# PITFALLS.md, parsing: frames under 60 bytes are padded; lengths come from
# the IP header, not the frame.
policy "padding" {
  default   = "drop"
  malformed = "drop"

  rule "small-ip" {
    length = "20-46"
    action = "count"
  }

  rule "udp" {
    proto  = "udp"
    action = "pass"
  }

  rule "tcp" {
    proto  = "tcp"
    action = "pass"
  }

  rule "icmp" {
    proto  = ["icmp", "icmpv6"]
    action = "pass"
  }
}
