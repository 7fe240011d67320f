# Fragments through NAT: a first fragment has the ports and is
# translated, and its later fragment gets the same address; a later
# fragment of a translated address whose first was never seen is dropped
# on nat-fragment; the host's own fragmented traffic on the NAT address
# (its first not translated) passes unchanged, and fragments of addresses
# no NAT rule names pass.
interface "eth0" { policy = "outside" }
interface "eth1" { policy = "inside" }

policy "outside" {
  default   = "pass"
  malformed = "drop"
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
