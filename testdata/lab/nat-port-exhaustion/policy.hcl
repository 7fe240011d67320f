# Masquerade with a range of two ports: flows that collide on a port get
# the next one, a third flow to the same destination finds none and is
# dropped on nat-exhausted, and once the flows time out their ports are
# free again. A flow to another destination reuses a port: its
# translated tuple differs.
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
    ports = "20000-20001"
  }
}
