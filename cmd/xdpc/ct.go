package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpc/xdpc/conntrack"
	"github.com/xdpc/xdpc/runtime"
	"github.com/xdpc/xdpc/wire"
)

func newCTCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "ct list|flush",
		Short: "Show or empty the connection table of a network namespace",
		Long: `Every network namespace where an applied policy tracks connections (ct_state)
has one connection table, shared by every xdpc program there: an assured map
of established connections, which nothing evicts, and an unassured map of new,
unreplied and closing flows, which the kernel evicts from under a flood. Each
command works on the table of --netns (default: the namespace xdpc runs in),
and first removes the entries whose time is up.`,
	}
	c.AddCommand(newCTListCommand(), newCTFlushCommand())
	return c
}

func newCTListCommand() *cobra.Command {
	var (
		rf     runtimeFlags
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "list [--json] [--netns NAME]",
		Short: "List the live flows of the connection table",
		Long: `List every live flow of the connection table, one per line, in its original
direction (initiator first): protocol, endpoints (an ICMP echo's identifier
as "id N"), state, how long it lives without another packet, and flags:
assured (held in the assured map), egress (created by a packet the host
sent), picked-up (a connection the host was already in when tracking began).
A translated flow (NAT) ends in "via ADDR:PORT", what its originator's end
became (source NAT), or "to ADDR:PORT", what its responder's end became
(destination NAT). A last line says how full both maps are. --json prints one
object: the namespace, the fill of each map and the flows (nat, nat_addr and
nat_port for a translated one).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			ls, err := runtime.ListConntrack(rf.options())
			if errors.Is(err, runtime.ErrNoConntrack) {
				if asJSON {
					return json.NewEncoder(c.OutOrStdout()).Encode(ctListing{Netns: netnsName(rf.netns), Flows: []ctFlow{}})
				}
				fmt.Fprintln(c.OutOrStdout(), err)
				return nil
			}
			if err != nil {
				return runtimeError(err)
			}
			if asJSON {
				return json.NewEncoder(c.OutOrStdout()).Encode(jsonListing(ls))
			}
			return writeListing(c.OutOrStdout(), ls)
		},
	}
	rf.register(c, runtimeUse{noLockWait: readsOnly})
	c.Flags().BoolVar(&asJSON, "json", false, "one JSON object: the table's fill and its flows")
	return c
}

func newCTFlushCommand() *cobra.Command {
	var rf runtimeFlags
	c := &cobra.Command{
		Use:   "flush [--netns NAME]",
		Short: "Empty the connection table",
		Long: `Remove every entry of the connection table, and say how many went. The
programs go on tracking meanwhile: a packet that passes during the flush
may leave its entry. Connections that were open count as new again; the
host's own TCP connections are picked up again by its next segment. Where
NAT translates, the NAT map's aliases and the fragment map go too.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			in := holdInterruptions(c.ErrOrStderr())
			defer in.stop()
			fl, err := runtime.FlushConntrack(rf.options())
			if errors.Is(err, runtime.ErrNoConntrack) {
				fmt.Fprintln(c.OutOrStdout(), err)
				return nil
			}
			if err != nil {
				return runtimeError(err)
			}
			n := fl.Assured + fl.Unassured
			msg := fmt.Sprintf("flushed %s from %s (assured %d, unassured %d", count(n, "entry", "entries"), tableName(fl.Netns), fl.Assured, fl.Unassured)
			if fl.Dead > 0 {
				msg += fmt.Sprintf("; %d of them dead", fl.Dead)
			}
			msg += ")"
			if fl.NAT {
				msg += fmt.Sprintf(", and %s and %s from the NAT table", count(fl.Aliases, "alias", "aliases"), count(fl.Fragments, "fragment record", "fragment records"))
			}
			fmt.Fprintln(c.OutOrStdout(), msg)
			if sig := in.came(); sig != nil {
				return in.exitAfter(sig, "came while flushing; the flush was completed")
			}
			return nil
		},
	}
	holdSignals(c)
	rf.register(c, runtimeUse{})
	return c
}

// netnsName is how the runtime names the namespace of --netns.
func netnsName(flag string) string {
	if flag == "" {
		return "host"
	}
	return flag
}

// tableName names a namespace's table in a sentence.
func tableName(netns string) string {
	if netns == "" || netns == "host" {
		return "the connection table"
	}
	return "the connection table of network namespace " + netns
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// protoName names an IP protocol as the policy language does, else by
// number.
func protoName(p uint8) string {
	if n, ok := wire.Protocols.Name(uint16(p)); ok {
		return n
	}
	return fmt.Sprintf("proto-%d", p)
}

// hasPorts says whether a protocol's key holds ports (TCP, UDP) rather
// than an echo identifier (ICMP) or nothing (others).
func hasPorts(p uint8) bool { return p == wire.ProtoTCP || p == wire.ProtoUDP }

func isEcho(p uint8) bool { return p == wire.ProtoICMP || p == wire.ProtoICMPv6 }

// flowText is a flow's endpoints in its original direction, and its
// translation: "via" the address and port the originator's end becomes
// (source NAT), "to" those the responder's end becomes (destination NAT).
func flowText(f runtime.ConntrackFlow) string {
	from, to := f.Original()
	var s string
	switch {
	case hasPorts(f.Key.Proto):
		s = fmt.Sprintf("%s -> %s", from, to)
	case isEcho(f.Key.Proto):
		s = fmt.Sprintf("%s -> %s id %d", from.Addr, to.Addr, from.Port)
	default:
		s = fmt.Sprintf("%s -> %s", from.Addr, to.Addr)
	}
	if ep, ok := natEndpoint(f); ok {
		word := "via"
		if f.Entry.NAT == conntrack.NATDestination {
			word = "to"
		}
		s += " " + word + " " + endpointText(f.Key.Proto, ep)
	}
	return s
}

// natEndpoint is what the flow's rewritten end becomes; false when the
// flow is not translated. No translation gives 0.0.0.0, so an entry with
// that address counts as untranslated whatever its kind byte holds.
func natEndpoint(f runtime.ConntrackFlow) (conntrack.Endpoint, bool) {
	addr := netip.AddrFrom4(f.Entry.NATAddr)
	if (f.Entry.NAT != conntrack.NATSource && f.Entry.NAT != conntrack.NATDestination) || addr.IsUnspecified() {
		return conntrack.Endpoint{}, false
	}
	return conntrack.Endpoint{Addr: addr, Port: f.Entry.NATPort}, true
}

// endpointText is an endpoint as ct list shows it for the protocol.
func endpointText(proto uint8, ep conntrack.Endpoint) string {
	switch {
	case hasPorts(proto):
		return ep.String()
	case isEcho(proto):
		return fmt.Sprintf("%s id %d", ep.Addr, ep.Port)
	}
	return ep.Addr.String()
}

// flagWords are a flow's flags as ct list shows them.
func flagWords(f runtime.ConntrackFlow) []string {
	var w []string
	if f.Assured {
		w = append(w, "assured")
	}
	if f.Entry.Flags&conntrack.FlagEgress != 0 {
		w = append(w, "egress")
	}
	if f.Entry.Flags&conntrack.FlagPickedUp != 0 {
		w = append(w, "picked-up")
	}
	return w
}

// leftText is how long a flow lives on, to the second: "59s", "1m59s",
// "23h59m", "4d23h59m".
func leftText(d time.Duration) string {
	d = d.Truncate(time.Second)
	var days time.Duration
	if d >= 24*time.Hour {
		days, d = d/(24*time.Hour), d%(24*time.Hour)
	}
	s := d.String()
	if days > 0 || d >= time.Hour {
		s = strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s")
	}
	if days > 0 {
		s = fmt.Sprintf("%dd%s", days, strings.TrimPrefix(s, "0"))
	}
	return s
}

func writeListing(out io.Writer, ls *runtime.ConntrackListing) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if len(ls.Flows) > 0 {
		fmt.Fprintln(w, "PROTO\tORIGINAL\tSTATE\tEXPIRES\tFLAGS")
	}
	for _, f := range ls.Flows {
		flags := strings.Join(flagWords(f), ",")
		if flags == "" {
			flags = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", protoName(f.Key.Proto), flowText(f), f.Entry.State, leftText(f.Left(ls.Now)), flags)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	line := fmt.Sprintf("%s in %s; assured map %d of %d, unassured map %d of %d",
		count(len(ls.Flows), "flow", "flows"), tableName(ls.Netns),
		ls.Fill.Assured.Entries, ls.Fill.Assured.MaxEntries, ls.Fill.Unassured.Entries, ls.Fill.Unassured.MaxEntries)
	if ls.NAT != nil {
		line += fmt.Sprintf(", NAT map %d of %d", ls.NAT.Entries, ls.NAT.MaxEntries)
	}
	if ls.Removed > 0 {
		line += fmt.Sprintf("; removed %s", count(ls.Removed, "dead entry", "dead entries"))
	}
	_, err := fmt.Fprintln(out, line)
	return err
}

// ctListing is ct list --json.
type ctListing struct {
	Netns     string           `json:"netns"`
	Assured   *runtime.MapFill `json:"assured,omitempty"`
	Unassured *runtime.MapFill `json:"unassured,omitempty"`
	// NAT is the NAT map's fill where NAT translates.
	NAT *runtime.MapFill `json:"nat,omitempty"`
	// Removed counts the dead entries removed before the listing.
	Removed int      `json:"removed_dead"`
	Flows   []ctFlow `json:"flows"`
}

// ctFlow is one flow of ct list --json, in its original direction.
type ctFlow struct {
	Family  uint8  `json:"family"`
	Proto   string `json:"proto"`
	Src     string `json:"src"`
	SrcPort uint16 `json:"src_port"`
	Dst     string `json:"dst"`
	DstPort uint16 `json:"dst_port"`
	State   string `json:"state"`
	// ExpiresIn and Age are in seconds.
	ExpiresIn float64 `json:"expires_in"`
	Age       float64 `json:"age"`
	// Map is the map holding the entry: assured or unassured.
	Map      string `json:"map"`
	Egress   bool   `json:"egress"`
	PickedUp bool   `json:"picked_up"`
	// NAT is the flow's translation, "snat" or "dnat" (absent when
	// none): the originator's end (snat) or the responder's (dnat)
	// becomes NATAddr and NATPort (an echo's identifier).
	NAT     string `json:"nat,omitempty"`
	NATAddr string `json:"nat_addr,omitempty"`
	NATPort uint16 `json:"nat_port,omitempty"`
}

func jsonListing(ls *runtime.ConntrackListing) ctListing {
	out := ctListing{Netns: ls.Netns, Assured: &ls.Fill.Assured, Unassured: &ls.Fill.Unassured, NAT: ls.NAT, Removed: ls.Removed, Flows: []ctFlow{}}
	for _, f := range ls.Flows {
		from, to := f.Original()
		jf := ctFlow{
			Family: f.Key.Family, Proto: protoName(f.Key.Proto),
			Src: from.Addr.String(), SrcPort: from.Port, Dst: to.Addr.String(), DstPort: to.Port,
			State:     f.Entry.State.String(),
			ExpiresIn: seconds(f.Left(ls.Now)),
			Map:       "unassured",
			Egress:    f.Entry.Flags&conntrack.FlagEgress != 0,
			PickedUp:  f.Entry.Flags&conntrack.FlagPickedUp != 0,
		}
		if ls.Now > f.Entry.Created {
			jf.Age = seconds(time.Duration(ls.Now - f.Entry.Created))
		}
		if f.Assured {
			jf.Map = "assured"
		}
		if ep, ok := natEndpoint(f); ok {
			jf.NAT, jf.NATAddr, jf.NATPort = f.Entry.NAT.String(), ep.Addr.String(), ep.Port
		}
		out.Flows = append(out.Flows, jf)
	}
	return out
}

// seconds is d in seconds, to the millisecond.
func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }
