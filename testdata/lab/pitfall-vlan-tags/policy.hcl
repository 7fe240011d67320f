# PITFALLS.md, parsing: one 802.1Q tag, 802.1ad + 802.1Q double tags, and
# tag id 0 (a priority tag). L3 fields apply inside the tags.
policy "vlans" {
  default   = "drop"
  malformed = "drop"

  rule "vlan-100" {
    vlan   = 100
    action = "pass"
  }

  rule "inner-200" {
    inner_vlan = 200
    action     = "pass"
  }

  rule "priority-tagged-ssh" {
    vlan     = 0
    proto    = "tcp"
    dst_port = 22
    action   = "pass"
  }

  rule "dns-any-tag" {
    proto    = "udp"
    dst_port = 53
    action   = "pass"
  }
}
