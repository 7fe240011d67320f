# Entries die when no packet refreshed them for their state's timeout
# (netfilter's defaults, and a conntrack block that shortens the
# established one). The capture's timestamps are the clock: wait lines
# jump it forward, and every backend ages its table by the same.
conntrack {
  timeouts = {
    tcp_established = "10m"
  }
}

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

  rule "new" {
    ct_state = "new"
    action   = "count"
  }
}
