# Permissive by default, with a small mixed-family blocklist and anti-spoof.
set "blocked" {
  type     = "cidr"
  elements = ["198.51.100.0/24", "203.0.113.128/25", "2001:db8:bad::/48", "192.0.2.9"]
}

policy "open" {
  default   = "pass"
  malformed = "drop"

  rule "blocked-src" {
    src    = set.blocked
    action = "drop"
  }

  rule "blocked-dst" {
    dst    = set.blocked
    action = "drop"
  }

  rule "loopback-spoof" {
    src    = ["127.0.0.0/8", "::1"]
    action = "drop"
  }
}
