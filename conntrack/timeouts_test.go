package conntrack

import (
	"testing"
	"time"
)

func TestTimeoutsOf(t *testing.T) {
	set := Timeouts{UDP: 5 * time.Second, TCPTimeWait: time.Minute}
	for _, s := range States() {
		def := Timeouts{}.Of(s)
		if def == 0 || def != DefaultTimeouts.Of(s) {
			t.Errorf("%s: unset timeout %v, want the default %v", s, def, DefaultTimeouts.Of(s))
		}
		want := def
		switch s {
		case UDPUnreplied:
			want = 5 * time.Second
		case TCPTimeWait:
			want = time.Minute
		}
		if got := set.Of(s); got != want {
			t.Errorf("%s: timeout %v, want %v", s, got, want)
		}
		if got := set.WithDefaults().Of(s); got != want {
			t.Errorf("%s: timeout with defaults filled in %v, want %v", s, got, want)
		}
	}
	// The table asks for a timeout on every packet it records.
	if n := testing.AllocsPerRun(100, func() { set.Of(TCPEstablished) }); n != 0 {
		t.Errorf("Of allocates %v times", n)
	}
}
