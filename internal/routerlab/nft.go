package routerlab

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// NFTTable is the nftables table NFTRuleset makes.
const NFTTable = "xdpc_baseline"

// NFTForward is a port forward of the nftables baseline: new flows of
// Proto to the router's outside address and Port go to To.
type NFTForward struct {
	Proto string // "tcp" or "udp"
	Port  uint16
	To    netip.AddrPort
}

// NFTNAT is the NAT the nftables baseline does on the router: what an
// xdpc nat block with the same masquerade and forward blocks does.
type NFTNAT struct {
	// Masquerade is the source network masqueraded out of OutsideIf
	// (the source becomes OutsideAddr); invalid: none.
	Masquerade netip.Prefix
	Forwards   []NFTForward
}

// NFTRuleset is the ruleset of n for nft -f: a table of its own, so that
// deleting it removes the baseline whole.
func NFTRuleset(n NFTNAT) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", NFTTable)
	b.WriteString("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
	for _, f := range n.Forwards {
		fmt.Fprintf(&b, "\t\tiifname %q ip daddr %s %s dport %d dnat to %s\n", OutsideIf, OutsideAddr, f.Proto, f.Port, f.To)
	}
	b.WriteString("\t}\n")
	b.WriteString("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	if n.Masquerade.IsValid() {
		fmt.Fprintf(&b, "\t\toifname %q ip saddr %s masquerade\n", OutsideIf, n.Masquerade)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// NFT loads a ruleset into the router's namespace with nft -f, and turns
// forwarding on: the baseline forwards in the stack.
func (r *Router) NFT(ruleset string) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("nftables baseline: %w", err)
	}
	if err := r.nft(ruleset, "-f", "-"); err != nil {
		return err
	}
	return r.Sysctl("net.ipv4.ip_forward", "1")
}

// NFTDelete removes the baseline's table.
func (r *Router) NFTDelete() error { return r.nft("", "delete", "table", "ip", NFTTable) }

func (r *Router) nft(stdin string, args ...string) error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", r.Router.Name, "nft"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft %s in %s: %w: %s", strings.Join(args, " "), r.Router.Name, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
