# TCP flag tests: required and forbidden flags, and the odd combinations.
policy "flags" {
  default   = "pass"
  malformed = "drop"

  rule "xmas" {
    proto     = "tcp"
    tcp_flags = "fin,psh,urg"
    action    = "drop"
  }

  rule "null" {
    proto     = "tcp"
    tcp_flags = "!fin,!syn,!rst,!psh,!ack,!urg"
    action    = "drop"
  }

  rule "syn-fin" {
    proto     = "tcp"
    tcp_flags = "syn,fin"
    action    = "drop"
  }

  rule "new-connections" {
    proto     = "tcp"
    tcp_flags = "syn,!ack"
    action    = "count"
  }

  rule "ecn" {
    proto     = "tcp"
    tcp_flags = "ece,cwr"
    action    = "count"
  }
}
