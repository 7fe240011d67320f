# Checksums through NAT: a UDP checksum of 0 (none) stays 0 both ways;
# partial checksums (a local sender with transmit offload) are updated for
# the addresses only, TCP and UDP, out and back; a full checksum is
# updated in full.
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
