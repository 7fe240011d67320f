# Ports: single, ranges, lists, source and destination, and the edges.
policy "ports" {
  default   = "drop"
  malformed = "drop"

  rule "low" {
    proto    = "tcp"
    dst_port = "0-1023"
    src_port = "1024-65535"
    action   = "pass"
  }

  rule "alt-web" {
    proto    = ["tcp", "udp"]
    dst_port = [8080, "8000-8099", 65535]
    action   = "pass"
  }

  rule "ntp" {
    proto    = "udp"
    src_port = 123
    dst_port = 123
    action   = "pass"
  }
}
