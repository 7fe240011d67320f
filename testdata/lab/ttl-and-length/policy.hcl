# TTL / hop limit and IP length ranges.
policy "ttl" {
  default   = "pass"
  malformed = "drop"

  rule "expiring" {
    ttl    = "0-1"
    action = "drop"
  }

  rule "tiny" {
    length = "0-40"
    proto  = "tcp"
    action = "count"
  }

  rule "jumbo-ish" {
    length = "1000-65535"
    action = "drop"
  }
}
