# PITFALLS.md, parsing: IHL < 5, total length < header length, total length
# > frame are malformed; so is a version nibble that disagrees.
policy "ipv4-errors" {
  default   = "pass"
  malformed = "drop"

  rule "count-ipv4" {
    ether_type = "ipv4"
    action     = "count"
  }
}
