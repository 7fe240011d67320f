# Port forwarding and 1:1 NAT: a forward keeping the port over a range, a
# forward to a fixed port, and a static host within the masquerade's src
# (static wins), reachable both ways. Invalid and untracked packets are
# never translated, not even by static; a flow that collides with a live
# translated tuple is dropped on nat-exhausted.
interface "eth0" { policy = "outside" }
interface "eth1" { policy = "inside" }

policy "outside" {
  default   = "pass"
  malformed = "drop"
}

policy "inside" {
  default   = "pass"
  malformed = "drop"
}

nat "edge" {
  outside = "eth0"
  inside  = "eth1"

  masquerade {
    src   = "10.0.0.0/24"
    to    = "203.0.113.1"
    ports = "20000-59999"
  }

  forward "web" {
    proto    = "tcp"
    dst      = "203.0.113.1"
    dst_port = 8080
    to       = "10.0.0.5:80"
  }

  forward "games" {
    proto    = "udp"
    dst      = "203.0.113.1"
    dst_port = "27000-27010"
    to       = "10.0.0.6"
  }

  forward "web-alt" {
    proto    = "tcp"
    dst      = "203.0.113.1"
    dst_port = 8081
    to       = "10.0.0.5:80"
  }

  static {
    inside  = "10.0.0.7"
    outside = "203.0.113.7"
  }
}
