# A host whose policy only lets in what belongs to a connection it knows:
# tracking begins while its SSH session (the one that applied the policy)
# and a download are already open. The host's own ACK picks each of them
# up (netfilter's loose pick-up, on egress only), so their replies keep
# coming in; a peer's mid-stream packets never pick anything up.
policy "host" {
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
