# Protocols by name and number, including those without ports.
policy "protocols" {
  default   = "drop"
  malformed = "drop"

  rule "tunnels" {
    proto  = ["gre", "esp", 4, 41]
    action = "pass"
  }

  rule "sctp" {
    proto  = "sctp"
    action = "count"
  }

  rule "ah" {
    proto  = 51
    action = "pass"
  }
}
