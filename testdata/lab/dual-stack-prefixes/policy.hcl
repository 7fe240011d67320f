# src and dst lists mixing IPv4 and IPv6: each packet is checked against
# its own family; negations never match the other family.
policy "dual" {
  default   = "drop"
  malformed = "drop"

  rule "partners" {
    src    = ["192.0.2.0/24", "2001:db8:1::/48", "198.51.100.7"]
    action = "pass"
  }

  rule "not-internal-v4" {
    src    = "!10.0.0.0/8"
    dst    = "10.0.0.0/8"
    action = "count"
  }

  rule "internal" {
    dst    = ["10.0.0.0/8", "2001:db8:2::/48"]
    action = "pass"
  }
}
