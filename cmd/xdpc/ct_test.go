package main

import (
	"testing"
	"time"
)

// TestLeftText: ct list shows time left to the second, in days past one.
func TestLeftText(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{999 * time.Millisecond, "0s"},
		{59*time.Second + 900*time.Millisecond, "59s"},
		{2*time.Minute - time.Millisecond, "1m59s"},
		{time.Hour + 30*time.Second, "1h0m"},
		{24*time.Hour - time.Second, "23h59m"},
		{5*24*time.Hour - time.Second, "4d23h59m"},
		{5 * 24 * time.Hour, "5d"},
		{5*24*time.Hour + time.Minute, "5d1m"},
	} {
		if got := leftText(tt.d); got != tt.want {
			t.Errorf("leftText(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
