package artifact

import (
	"fmt"
	"strconv"
	"strings"
)

// NumberProblem says why number text is refused.
type NumberProblem uint8

const (
	// NumberNotANumber: neither a decimal nor a 0x-hexadecimal number,
	// nor a range of two.
	NumberNotANumber NumberProblem = iota + 1
	// NumberNoRanges: a range "LO-HI" where single values are wanted.
	NumberNoRanges
	// NumberTooLarge: a value above the largest allowed (Lo holds it).
	NumberTooLarge
	// NumberReversed: a range whose first value is above its last.
	NumberReversed
)

// NumberError is number text the policy language refuses: Text as given,
// Max the largest value allowed, Lo and Hi the values read (Lo alone for
// NumberTooLarge).
type NumberError struct {
	Text    string
	Problem NumberProblem
	Max     uint32
	Lo, Hi  uint64
}

func (e *NumberError) Error() string {
	switch e.Problem {
	case NumberNoRanges:
		return fmt.Sprintf("%q: a range where a single number is wanted", e.Text)
	case NumberTooLarge:
		return fmt.Sprintf("%q: %d is above %d", e.Text, e.Lo, e.Max)
	case NumberReversed:
		return fmt.Sprintf("%q: the range %d-%d runs backwards", e.Text, e.Lo, e.Hi)
	}
	return fmt.Sprintf("%q is not a number from 0 to %d", e.Text, e.Max)
}

// ParseNumberRange reads a number, or with ranges an inclusive range
// "LO-HI", as the policy language reads one written in a string: decimal
// or 0x-hexadecimal, no sign, no digit separators, spaces around the
// numbers ignored, every value at most max. Errors are *NumberError.
func ParseNumberRange(s string, max uint32, ranges bool) (lo, hi uint32, err error) {
	fail := func(p NumberProblem, lo, hi uint64) (uint32, uint32, error) {
		return 0, 0, &NumberError{Text: s, Problem: p, Max: max, Lo: lo, Hi: hi}
	}
	loText, hiText, isRange := strings.Cut(s, "-")
	if !isRange {
		hiText = loText
	}
	l, okLo := parseUintText(strings.TrimSpace(loText))
	h, okHi := parseUintText(strings.TrimSpace(hiText))
	if isRange && !ranges {
		if okLo {
			return fail(NumberNoRanges, 0, 0)
		}
		return fail(NumberNotANumber, 0, 0)
	}
	if !okLo || !okHi {
		return fail(NumberNotANumber, 0, 0)
	}
	for _, n := range []uint64{l, h} {
		if n > uint64(max) {
			return fail(NumberTooLarge, n, 0)
		}
	}
	if l > h {
		return fail(NumberReversed, l, h)
	}
	return uint32(l), uint32(h), nil
}

// parseUintText parses a decimal or 0x-hexadecimal number.
func parseUintText(s string) (uint64, bool) {
	base := 10
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s, base = s[2:], 16
	}
	if s == "" || s[0] == '+' || s[0] == '-' || strings.Contains(s, "_") {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 64)
	return n, err == nil
}
