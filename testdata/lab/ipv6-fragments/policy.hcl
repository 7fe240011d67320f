# IPv6 fragment headers: first, later, last, atomic, and fragment rules.
policy "v6frag" {
  default   = "pass"
  malformed = "drop"

  rule "no-later" {
    fragment = "later"
    action   = "drop"
  }

  rule "first" {
    fragment = "first"
    action   = "count"
  }

  rule "any" {
    fragment = "any"
    action   = "count"
  }

  rule "unfragmented-udp" {
    fragment = "none"
    proto    = "udp"
    action   = "count"
  }
}
