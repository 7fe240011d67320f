# A policy that lets malformed frames through to the stack (malformed =
# "pass"): they are counted on "malformed" and reach the DUT unchanged.
policy "lenient" {
  default   = "drop"
  malformed = "pass"

  rule "web" {
    proto    = "tcp"
    dst_port = 80
    action   = "pass"
  }
}
