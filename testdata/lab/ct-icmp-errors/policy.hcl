# ICMP errors are let in only when they are about a flow the table knows
# (related): path MTU discovery and traceroute keep working under a
# default-drop policy, and errors about flows that never were (a scan's
# backscatter, forged resets of other people's connections) do not.
policy "host" {
  default   = "drop"
  malformed = "drop"

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }

  rule "nd" {
    proto     = "icmpv6"
    icmp_type = [133, 134, 135, 136]
    action    = "pass"
  }

  rule "related" {
    ct_state = "related"
    action   = "pass"
  }

  rule "replies" {
    ct_state = "established"
    action   = "pass"
  }

  rule "invalid" {
    ct_state = "invalid"
    action   = "count"
  }
}
