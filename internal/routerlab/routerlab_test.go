package routerlab_test

import (
	"bytes"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/xdpc/xdpc/compiler"
	"github.com/xdpc/xdpc/internal/routerlab"
	"github.com/xdpc/xdpc/policy"
)

const (
	mb      = 1 << 20
	timeout = 20 * time.Second
)

var (
	serverPort = netip.AddrPortFrom(routerlab.ServerAddr, 5001)
	clientPort = netip.AddrPortFrom(routerlab.ClientAddr, 80)
)

// TestPlainForwarding: with a route back and forwarding on, the client
// and the server talk through the router, the server seeing the client's
// own address; the veths' offloads are as the options say.
func TestPlainForwarding(t *testing.T) {
	r := routerlab.New(t, routerlab.Options{ServerRoute: true, Forwarding: true})
	peer, err := routerlab.Exchange(r.Server, serverPort, r.Client, serverPort, mb, timeout)
	if err != nil {
		t.Fatal(err)
	}
	if peer.Addr() != routerlab.ClientAddr {
		t.Errorf("the server saw %v, want the client's %v", peer, routerlab.ClientAddr)
	}
	for _, e := range []routerlab.End{r.ClientEnd, r.Inside, r.Outside, r.ServerEnd} {
		tx, rx, err := r.Offload(e)
		if err != nil {
			t.Fatal(err)
		}
		if tx || rx {
			t.Errorf("%s in %s: tx checksum offload %v, rx %v; want both off", e.Name, e.Netns.Name, tx, rx)
		}
	}
}

// TestNoRouteBack: without the server's route back, forwarding alone
// gets no answer: the server's replies have nowhere to go.
func TestNoRouteBack(t *testing.T) {
	r := routerlab.New(t, routerlab.Options{Forwarding: true})
	if _, err := routerlab.Exchange(r.Server, serverPort, r.Client, serverPort, 1, 2*time.Second); err == nil {
		t.Fatal("the client reached the server with no route back and no NAT")
	}
}

// TestXDPPassOnRouter: programs applied to both router interfaces through
// the runtime run in native mode and leave forwarding working, the
// peers' pass programs taking what the router transmits.
func TestXDPPassOnRouter(t *testing.T) {
	r := routerlab.New(t, routerlab.Options{ServerRoute: true, Forwarding: true})
	src := `
interface "out0" {
  policy = "open"
  mode   = "native"
}
interface "in0" {
  policy = "open"
  mode   = "native"
}
policy "open" {
  default = "pass"
}
`
	cfg, diags := policy.Load("open.hcl", []byte(src), policy.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	art, err := compiler.Compile(cfg, cfg.Policies[0], compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var elf bytes.Buffer
	if err := art.WriteELF(&elf); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Apply(elf.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Attachments) != 2 {
		t.Fatalf("attached %d interfaces, want 2", len(rep.Attachments))
	}
	for _, a := range rep.Attachments {
		if a.Mode != "native" {
			t.Errorf("%s attached in %s mode, want native", a.Interface, a.Mode)
		}
	}
	if _, err := routerlab.Exchange(r.Server, serverPort, r.Client, serverPort, mb, timeout); err != nil {
		t.Fatal(err)
	}
}

func needNFT(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("nft is not installed: scripts/test.sh installs nftables (scripts/test-tools.sh)")
	}
}

// TestNFTMasquerade: the nftables baseline's masquerade carries 1 MB each
// way over TCP to a server with no route back, which sees the router's
// outside address; with partial checksums from the client too.
func TestNFTMasquerade(t *testing.T) {
	needNFT(t)
	for _, tx := range []bool{false, true} {
		name := "full-checksums"
		if tx {
			name = "partial-checksums"
		}
		t.Run(name, func(t *testing.T) {
			r := routerlab.New(t, routerlab.Options{TxChecksum: tx})
			if err := r.NFT(routerlab.NFTRuleset(routerlab.NFTNAT{Masquerade: routerlab.InsideNet})); err != nil {
				t.Fatal(err)
			}
			if got, _, err := r.Offload(r.ClientEnd); err != nil || got != tx {
				t.Fatalf("client tx checksum offload %v (%v), want %v", got, err, tx)
			}
			peer, err := routerlab.Exchange(r.Server, serverPort, r.Client, serverPort, mb, timeout)
			if err != nil {
				t.Fatal(err)
			}
			if peer.Addr() != routerlab.OutsideAddr {
				t.Errorf("the server saw %v, want the router's outside address %v", peer, routerlab.OutsideAddr)
			}
		})
	}
}

// TestNFTForward: the baseline's port forward takes the server's
// connection to the router's outside address and port to the client.
func TestNFTForward(t *testing.T) {
	needNFT(t)
	r := routerlab.New(t, routerlab.Options{})
	rules := routerlab.NFTRuleset(routerlab.NFTNAT{Forwards: []routerlab.NFTForward{{Proto: "tcp", Port: 8080, To: clientPort}}})
	if !strings.Contains(rules, "dnat to 10.0.0.2:80") {
		t.Fatalf("ruleset lacks the forward:\n%s", rules)
	}
	if err := r.NFT(rules); err != nil {
		t.Fatal(err)
	}
	peer, err := routerlab.Exchange(r.Client, clientPort, r.Server, netip.AddrPortFrom(routerlab.OutsideAddr, 8080), mb, timeout)
	if err != nil {
		t.Fatal(err)
	}
	if peer.Addr() != routerlab.ServerAddr {
		t.Errorf("the client saw %v, want the server's %v", peer, routerlab.ServerAddr)
	}
	if err := r.NFTDelete(); err != nil {
		t.Fatal(err)
	}
}

// TestFlood: live frames from the client are forwarded by the stack
// (plain and through nftables' masquerade) and counted at the server:
// nearly all of them (a full receive ring may refuse a few), not just
// the first batch.
func TestFlood(t *testing.T) {
	for _, nft := range []bool{false, true} {
		name := "plain"
		if nft {
			name = "nftables-masquerade"
		}
		t.Run(name, func(t *testing.T) {
			if nft {
				needNFT(t)
			}
			r := routerlab.New(t, routerlab.Options{ServerRoute: !nft, Forwarding: true})
			if nft {
				if err := r.NFT(routerlab.NFTRuleset(routerlab.NFTNAT{Masquerade: routerlab.InsideNet})); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.AttachPass(r.Inside); err != nil {
				t.Fatal(err)
			}
			frame := r.UDPFrame(40000, netip.AddrPortFrom(routerlab.ServerAddr, 9), 18)
			f, err := r.Flood(t.Context(), frame, 2000, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("sent %d in %v, %d delivered (%.2f)", f.Sent, f.Elapsed, f.Delivered, f.Ratio())
			if f.Sent == 0 || f.Delivered < f.Sent*9/10 || f.Delivered > f.Sent {
				t.Errorf("%d of %d frames delivered", f.Delivered, f.Sent)
			}
		})
	}
}

// TestNFTMasqueradeUDP: UDP through the baseline's masquerade, echoed
// by a server with no route back, which sees the outside address.
func TestNFTMasqueradeUDP(t *testing.T) {
	needNFT(t)
	r := routerlab.New(t, routerlab.Options{})
	if err := r.NFT(routerlab.NFTRuleset(routerlab.NFTNAT{Masquerade: routerlab.InsideNet})); err != nil {
		t.Fatal(err)
	}
	dns := netip.AddrPortFrom(routerlab.ServerAddr, 53)
	peer, err := routerlab.ExchangeUDP(r.Server, dns, r.Client, dns, 20, 1200, timeout)
	if err != nil {
		t.Fatal(err)
	}
	if peer.Addr() != routerlab.OutsideAddr {
		t.Errorf("the server saw %v, want the router's outside address %v", peer, routerlab.OutsideAddr)
	}
}

// TestFloodRate: at full rate, with the server's sink restoring every
// frame, the frames that reach the server are most of those sent, well
// past the first batches, through plain forwarding and nftables'
// masquerade alike.
func TestFloodRate(t *testing.T) {
	for _, nft := range []bool{false, true} {
		name := "plain"
		if nft {
			name = "nftables-masquerade"
		}
		t.Run(name, func(t *testing.T) {
			if nft {
				needNFT(t)
			}
			r := routerlab.New(t, routerlab.Options{ServerRoute: !nft, Forwarding: true})
			if nft {
				if err := r.NFT(routerlab.NFTRuleset(routerlab.NFTNAT{Masquerade: routerlab.InsideNet})); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.AttachPass(r.Inside); err != nil {
				t.Fatal(err)
			}
			frame := r.UDPFrame(40000, netip.AddrPortFrom(routerlab.ServerAddr, 9), 18)
			f, err := r.FloodRate(t.Context(), frame, 200000, time.Second, -1)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("sent %d in %v (%.0f/s), %d delivered (%.2f)", f.Sent, f.Elapsed, f.Rate(), f.Delivered, f.Ratio())
			if f.Delivered < 10*256 || f.Delivered > f.Sent {
				t.Errorf("%d of %d frames delivered: want more than the first batches", f.Delivered, f.Sent)
			}
		})
	}
}
