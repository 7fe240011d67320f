# A server's host firewall: SSH only from the management network, web for
# everyone, outgoing connections' replies, ARP and neighbour discovery.
variable "mgmt" {
  default = "10.10.0.0/16"
}

variable "mgmt6" {
  default = "2001:db8:10::/48"
}

policy "host" {
  default   = "drop"
  malformed = "drop"

  rule "arp" {
    ether_type = "arp"
    action     = "pass"
  }

  rule "nd" {
    proto     = "icmpv6"
    icmp_type = [133, 134, 135, 136]
    action    = "pass"
  }

  rule "ssh-from-mgmt" {
    proto    = "tcp"
    src      = [var.mgmt, var.mgmt6]
    dst_port = 22
    action   = "pass"
  }

  rule "ssh-others" {
    proto    = "tcp"
    dst_port = 22
    action   = "count"
  }

  rule "web" {
    proto    = "tcp"
    dst_port = [80, 443]
    action   = "pass"
  }

  rule "established" {
    proto     = "tcp"
    tcp_flags = "ack"
    dst_port  = "32768-60999"
    action    = "pass"
  }

  rule "ping-from-mgmt" {
    proto     = "icmp"
    src       = var.mgmt
    icmp_type = "echo-request"
    action    = "pass"
  }
}

# What the policy promises, checked by xdpc check --test and xdpc test on
# every backend, beside the golden replay.
test "ssh from mgmt" {
  packet = "tcp 10.10.3.4:40000 > 192.0.2.10:22 flags S"
  expect = "pass"
  rule   = "ssh-from-mgmt"
}

test "ssh from elsewhere is counted and dropped" {
  packet = "tcp 203.0.113.9:40003 > 192.0.2.10:22 flags S"
  expect = "drop"
  rule   = "default"
}

test "web for everyone" {
  packet = "tcp 203.0.113.9:40006 > 192.0.2.10:443 flags S"
  expect = "pass"
  rule   = "web"
}
