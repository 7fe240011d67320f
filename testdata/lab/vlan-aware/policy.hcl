# A trunk port: each VLAN gets its own rules, untagged frames are the
# management network, QinQ customers are told apart by the inner tag.
policy "trunk" {
  default   = "drop"
  malformed = "drop"

  rule "arp-any-vlan" {
    ether_type = "arp"
    action     = "pass"
  }

  rule "mgmt-untagged-ssh" {
    vlan     = 0
    proto    = "tcp"
    dst_port = 22
    action   = "pass"
  }

  rule "guests-web-only" {
    vlan     = 20
    proto    = "tcp"
    dst_port = [80, 443]
    action   = "pass"
  }

  rule "guests-rest" {
    vlan   = 20
    action = "drop"
  }

  rule "servers" {
    vlan   = [30, 31]
    src    = "10.30.0.0/15"
    action = "pass"
  }

  rule "customer-a" {
    vlan       = 1000
    inner_vlan = [1, 2, 3]
    action     = "pass"
  }
}
