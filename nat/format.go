package nat

import "github.com/xdpc/xdpc/conntrack"

// Describe returns flow f as `xdpc ct list` shows it: originator first,
// then the translation when the entry records one. Source NAT shows what
// the originator leaves as, destination NAT where the flow is delivered:
//
//	10.0.0.5:40000 -> 8.8.8.8:53 via 203.0.113.1:20001
//	198.51.100.9:5000 -> 203.0.113.1:8080 to 10.0.0.5:80
func Describe(f conntrack.Flow) string {
	from, to := f.Key.Original(f.Entry.Flags&conntrack.FlagOrigLo != 0)
	s := from.String() + " -> " + to.String()
	tr := TranslationOf(f.Entry)
	switch tr.Kind {
	case conntrack.NATSource:
		s += " via " + tr.To.String()
	case conntrack.NATDestination:
		s += " to " + tr.To.String()
	}
	return s
}
