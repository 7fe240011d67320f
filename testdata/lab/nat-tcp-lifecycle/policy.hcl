# A masqueraded TCP connection through its life: opened, closed by both
# ends, reopened from time_wait by a new SYN (the entry keeps its
# translation: its port is decided once), then left unreplied until its
# entry and alias time out, after which a late SYN-ACK finds no flow
# (invalid, dropped on the outside), and the same connection opened again
# decides anew (the hash gives it the same port).
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
