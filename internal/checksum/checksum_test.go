package checksum

import "testing"

// TestSumOfRFC1071Example: RFC 1071's worked example sums to ddf2; a
// header carrying its checksum sums to 0xffff, one flipped bit does not.
func TestSumOfRFC1071Example(t *testing.T) {
	if got := Sum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0); got != 0xddf2 {
		t.Errorf("Sum = %#x, want 0xddf2", got)
	}
	hdr := []byte{0x45, 0, 0, 0x1c, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	c := ^uint16(Sum(hdr, 0))
	hdr[10], hdr[11] = byte(c>>8), byte(c)
	if Sum(hdr, 0) != 0xffff {
		t.Error("a header with its checksum does not verify")
	}
	if errs := Errors(append(hdr, 0, 1, 0, 2, 0, 8, 0, 0)); errs != nil {
		t.Errorf("a UDP datagram without checksum: %v", errs)
	}
	hdr[15] ^= 1
	if errs := Errors(append(hdr, 0, 1, 0, 2, 0, 8, 0, 0)); len(errs) != 1 {
		t.Errorf("a header with a flipped bit: %v, want its checksum's error", errs)
	}
}
