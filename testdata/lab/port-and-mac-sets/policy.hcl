# Sets of ports and of MACs.
set "admin-ports" {
  type     = "port"
  elements = ["22", "3389", "5900-5910"]
}

set "trusted-macs" {
  type     = "mac"
  elements = ["02:00:00:00:00:0a", "02:00:00:00:00:0b"]
}

policy "sets" {
  default   = "pass"
  malformed = "drop"

  rule "admin-from-trusted" {
    src_mac  = set.trusted-macs
    proto    = ["tcp", "udp"]
    dst_port = set.admin-ports
    action   = "pass"
  }

  rule "admin-others" {
    proto    = ["tcp", "udp"]
    dst_port = set.admin-ports
    action   = "drop"
  }
}
