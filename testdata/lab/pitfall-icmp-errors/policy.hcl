# PITFALLS.md, parsing: ICMPv6 behind extension headers; ICMP errors carry
# an inner packet whose ports are not the outer packet's.
policy "icmp" {
  default   = "drop"
  malformed = "drop"

  rule "no-inner-ssh" {
    proto    = ["tcp", "udp"]
    dst_port = 22
    action   = "drop"
  }

  rule "errors4" {
    proto     = "icmp"
    icmp_type = ["dest-unreachable", "time-exceeded"]
    action    = "pass"
  }

  rule "errors6" {
    proto     = "icmpv6"
    icmp_type = [1, 2, 3, 4]
    action    = "pass"
  }

  rule "nd" {
    proto     = "icmpv6"
    icmp_type = [133, 134, 135, 136]
    action    = "pass"
  }
}
