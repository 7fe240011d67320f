# ether_type by name and number, tagged and untagged.
policy "ethertypes" {
  default   = "drop"
  malformed = "drop"

  rule "lldp" {
    ether_type = 35020
    action     = "count"
  }

  rule "ipv6" {
    ether_type = "ipv6"
    action     = "pass"
  }

  rule "arp" {
    ether_type = 2054
    action     = "pass"
  }

  rule "pppoe-discovery" {
    ether_type = 34915
    action     = "pass"
  }
}
