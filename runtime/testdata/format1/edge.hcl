set "allow" {
  type         = "cidr"
  elements     = ["10.9.0.0/16", "2001:db8:9::/48"]
  dynamic      = true
  max_elements = 16
}

set "ports" {
  type         = "port"
  elements     = ["8000-8003", 22]
  dynamic      = true
  max_elements = 16
}

set "static" {
  type     = "port"
  elements = [7]
}

interface "dut0" {
  policy = "edge"
  mode   = "native"
}

policy "edge" {
  default = "drop"

  rule "udp" {
    proto  = "udp"
    action = "count"
  }

  rule "allowed" {
    src    = set.allow
    action = "pass"
  }

  rule "service" {
    proto    = "udp"
    dst_port = set.ports
    action   = "pass"
  }

  rule "echo" {
    proto    = "udp"
    dst_port = set.static
    action   = "pass"
  }
}
