# ICMP and ICMPv6 types and codes, by name and number.
policy "icmp" {
  default   = "drop"
  malformed = "drop"

  rule "echo" {
    proto     = "icmp"
    icmp_type = ["echo-request", "echo-reply"]
    action    = "pass"
  }

  rule "frag-needed" {
    proto     = "icmp"
    icmp_type = 3
    icmp_code = 4
    action    = "pass"
  }

  rule "echo6" {
    proto     = "icmpv6"
    icmp_type = [128, 129]
    action    = "pass"
  }

  rule "too-big6" {
    proto     = "icmpv6"
    icmp_type = 2
    action    = "pass"
  }
}
