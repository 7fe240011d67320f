package conntrack

import "testing"

func TestICMPKind(t *testing.T) {
	tests := []struct {
		family, typ uint8
		want        Kind
	}{
		{4, 8, KindEchoRequest},
		{4, 0, KindEchoReply},
		{4, 3, KindICMPError},
		{4, 11, KindICMPError},
		{4, 12, KindICMPError},
		{4, 4, KindUntracked},  // source quench
		{4, 5, KindUntracked},  // redirect
		{4, 9, KindUntracked},  // router advertisement
		{4, 13, KindUntracked}, // timestamp
		{4, 128, KindUntracked},
		{6, 128, KindEchoRequest},
		{6, 129, KindEchoReply},
		{6, 1, KindICMPError},
		{6, 2, KindICMPError},
		{6, 3, KindICMPError},
		{6, 4, KindICMPError},
		{6, 0, KindUntracked},
		{6, 8, KindUntracked},
		{6, 133, KindUntracked}, // router solicitation
		{6, 134, KindUntracked}, // router advertisement
		{6, 135, KindUntracked}, // neighbour solicitation
		{6, 136, KindUntracked}, // neighbour advertisement
		{6, 137, KindUntracked}, // redirect
	}
	for _, tc := range tests {
		if got := ICMPKind(tc.family, tc.typ); got != tc.want {
			t.Errorf("ICMPKind(%d, %d) = %d, want %d", tc.family, tc.typ, got, tc.want)
		}
	}
}

func TestLookupKeepsDeadEntries(t *testing.T) {
	tbl := NewTable(Timeouts{})
	p := udp(client, server)
	tbl.Commit(p, tbl.Status(p, 1e9), 1e9, false)
	k, _ := NewKey(4, 17, client, server)
	e, ok := tbl.Lookup(k)
	if !ok || e.State != UDPUnreplied || e.Expires != 31e9 {
		t.Fatalf("Lookup = %+v, %v; want unreplied expiring at 31 s", e, ok)
	}
	if !e.Live(31e9-1) || e.Live(31e9) {
		t.Errorf("entry expiring at %d: live just before %v, at %v", e.Expires, e.Live(31e9-1), e.Live(31e9))
	}
	if len(tbl.Flows(31e9)) != 0 {
		t.Error("a dead entry is among the flows")
	}
	if _, ok := tbl.Lookup(k); !ok {
		t.Error("Lookup lost the dead entry")
	}
	if _, ok := tbl.Lookup(Key{Family: 4, Proto: 6, Lo: client, Hi: server}); ok {
		t.Error("Lookup found an entry of a flow never seen")
	}
}
