# A router masquerading its inside network behind 203.0.113.1: TCP, UDP
# and ICMP echo leave with the router's address and a port of the range
# (the source port kept when it fits, the echo identifier taken as the
# port), and their replies come back translated to the inside host.
interface "eth0" { policy = "outside" }
interface "eth1" { policy = "inside" }

policy "outside" {
  default   = "drop"
  malformed = "drop"

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }

  rule "replies" {
    ct_state = ["established", "related"]
    action   = "pass"
  }
}

policy "inside" {
  default   = "pass"
  malformed = "drop"
}

nat "edge" {
  outside = "eth0"
  inside  = "eth1"

  masquerade {
    src   = "10.0.0.0/24"
    to    = "203.0.113.1"
    ports = "20000-59999"
  }
}
