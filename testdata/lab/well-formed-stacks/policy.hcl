# The corpus's well-formed stacks against a policy drawn from its pools.
policy "stacks" {
  default   = "drop"
  malformed = "drop"

  rule "from-ten" {
    src    = ["10.0.0.0/8", "2001:db8::/32"]
    proto  = ["tcp", "udp"]
    action = "pass"
  }

  rule "web" {
    proto    = ["tcp", "udp"]
    dst_port = [80, 443, "8000-8099"]
    action   = "pass"
  }

  rule "icmp" {
    proto  = ["icmp", "icmpv6"]
    action = "count"
  }

  rule "local" {
    dst    = ["192.168.0.0/16", "fe80::/10"]
    action = "pass"
  }
}
