# IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are IPv6 addresses: in a
# declared set and in a list long enough to become an implicit set, they
# sit in the IPv6 trie and match IPv6 packets from that address, never
# IPv4 packets from a.b.c.d (nor the other way round).
set "mapped" {
  type     = "cidr"
  elements = ["::ffff:192.0.2.1", "::ffff:198.51.100.0/120", "203.0.113.9"]
}

policy "mapped" {
  default   = "drop"
  malformed = "drop"

  rule "declared-set" {
    src    = set.mapped
    action = "pass"
  }

  # 40 destinations: more than a rule compares inline.
  rule "long-list" {
    dst    = ["::ffff:192.0.2.77", "192.0.2.78", "2001:db8:ff::1", "2001:db8:ff::2", "2001:db8:ff::3", "2001:db8:ff::4", "2001:db8:ff::5", "2001:db8:ff::6", "2001:db8:ff::7", "2001:db8:ff::8", "2001:db8:ff::9", "2001:db8:ff::a", "2001:db8:ff::b", "2001:db8:ff::c", "2001:db8:ff::d", "2001:db8:ff::e", "2001:db8:ff::f", "2001:db8:ff::10", "2001:db8:ff::11", "2001:db8:ff::12", "2001:db8:ff::13", "2001:db8:ff::14", "2001:db8:ff::15", "2001:db8:ff::16", "2001:db8:ff::17", "2001:db8:ff::18", "2001:db8:ff::19", "2001:db8:ff::1a", "2001:db8:ff::1b", "2001:db8:ff::1c", "2001:db8:ff::1d", "2001:db8:ff::1e", "2001:db8:ff::1f", "2001:db8:ff::20", "2001:db8:ff::21", "2001:db8:ff::22", "2001:db8:ff::23", "2001:db8:ff::24", "2001:db8:ff::25", "2001:db8:ff::26"]
    action = "pass"
  }

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }
}
