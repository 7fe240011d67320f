package lab

import (
	"fmt"
	"sync"
	"testing"

	"github.com/xdpc/xdpc/lab/corpus"
)

// fuzzSeed derives the generated policies and seed frames of the fuzz targets.
const fuzzSeed = 424242

// fuzzFieldsPolicy names every match field in count rules, so every frame
// runs every field matcher and the moved counters show each one's answer.
const fuzzFieldsPolicy = `
set "nets" {
  type     = "cidr"
  elements = ["10.0.0.0/24", "198.51.100.7", "2001:db8::/64", "fe80::1"]
}

set "ports" {
  type     = "port"
  elements = [22, 53, "8000-8010"]
}

set "macs" {
  type     = "mac"
  elements = ["02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff"]
}

policy "fields" {
  default   = "pass"
  malformed = "drop"

  rule "ether-ipv4" {
    ether_type = "ipv4"
    action = "count"
  }
  rule "ether-not-arp" {
    ether_type = "!arp"
    action = "count"
  }
  rule "vlan" {
    vlan = [0, 10, "100-200"]
    action = "count"
  }
  rule "inner-vlan-not" {
    inner_vlan = "!1"
    action = "count"
  }
  rule "src-mac" {
    src_mac = ["02:00:00:00:00:01", "0a:bc:de:f0:12:34"]
    action = "count"
  }
  rule "dst-mac-not" {
    dst_mac = "!ff:ff:ff:ff:ff:ff"
    action = "count"
  }
  rule "mac-set" {
    dst_mac = set.macs
    action = "count"
  }
  rule "src4" {
    src = "10.0.0.0/8"
    action = "count"
  }
  rule "src6" {
    src = "2001:db8::/32"
    action = "count"
  }
  rule "dst-mixed" {
    dst = ["192.0.2.9", "2001:db8::2", "fe80::/10"]
    action = "count"
  }
  rule "dst-not" {
    dst = "!198.51.100.0/24"
    action = "count"
  }
  rule "src-set" {
    src = set.nets
    action = "count"
  }
  rule "proto" {
    proto = ["tcp", "udp", "ah", 59]
    action = "count"
  }
  rule "proto-not" {
    proto = "!icmp"
    action = "count"
  }
  rule "src-port" {
    proto = ["tcp", "udp"]
    src_port = "1024-65535"
    action = "count"
  }
  rule "dst-port-not" {
    proto = "tcp"
    dst_port = "!80"
    action = "count"
  }
  rule "dst-port-set" {
    proto = "udp"
    dst_port = set.ports
    action = "count"
  }
  rule "syn" {
    proto = "tcp"
    tcp_flags = "syn,!ack"
    action = "count"
  }
  rule "echo" {
    proto = "icmp"
    icmp_type = "echo-request"
    action = "count"
  }
  rule "icmpv6" {
    proto = "icmpv6"
    icmp_type = [128, 135]
    icmp_code = 0
    action = "count"
  }
  rule "icmp-any" {
    proto = ["icmp", "icmpv6"]
    icmp_code = "!0"
    action = "count"
  }
  rule "ttl" {
    ttl = "0-1"
    action = "count"
  }
  rule "length-not" {
    length = "!40-100"
    action = "count"
  }
  rule "first" {
    fragment = "first"
    action = "count"
  }
  rule "later" {
    fragment = "later"
    action = "count"
  }
  rule "not-none" {
    fragment = "!none"
    action = "count"
  }
  rule "dns" {
    proto = "udp"
    dst_port = 53
    action = "drop"
  }
  rule "ssh-v6" {
    proto = "tcp"
    dst = "2001:db8::/32"
    dst_port = 22
    action = "pass"
  }
  rule "later-drop" {
    fragment = "later"
    action = "drop"
  }
}
`

// fuzzPrograms are loaded once per fuzzing process.
var fuzzPrograms = sync.OnceValues(func() ([]*diffProgram, error) {
	gps := append([]corpus.GeneratedPolicy{{Name: "fields.hcl", Policy: "fields", Source: []byte(fuzzFieldsPolicy)}},
		corpus.Policies(fuzzSeed, 4)...)
	var ds []*diffProgram
	for i, gp := range gps {
		d, err := loadDiffProgram(gp, diffOptions(i))
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, nil
})

// FuzzDifferential runs fuzzed frames through a fixed set of compiled
// policies in the kernel and the reference, and requires agreement.
func FuzzDifferential(f *testing.F) {
	for _, frame := range corpus.Packets(fuzzSeed, 400) {
		f.Add(frame)
	}
	progs, err := fuzzPrograms()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		for _, d := range progs {
			if dis := d.compare("fuzz", frame); dis != nil {
				t.Fatalf("disagreement:\n%s", dis)
			}
		}
	})
}

// fuzzPolicyCache keeps the programs of recently fuzzed policy seeds.
type fuzzPolicyCache struct {
	mu    sync.Mutex
	progs map[int64]*diffProgram
	order []int64
}

const fuzzPolicyCacheSize = 8

func (c *fuzzPolicyCache) get(seed int64) (*diffProgram, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.progs[seed]; ok {
		return d, nil
	}
	d, err := loadDiffProgram(corpus.Policies(seed, 1)[0], diffOptions(int(seed)))
	if err != nil {
		return nil, err
	}
	if len(c.order) == fuzzPolicyCacheSize {
		old := c.order[0]
		c.order = c.order[1:]
		c.progs[old].prog.Close()
		delete(c.progs, old)
	}
	c.progs[seed] = d
	c.order = append(c.order, seed)
	return d, nil
}

// FuzzDifferentialPolicy fuzzes the policy (by generator seed) and the frame
// together.
func FuzzDifferentialPolicy(f *testing.F) {
	for i, frame := range corpus.Packets(fuzzSeed+1, 100) {
		f.Add(int64(i%10), frame)
	}
	cache := &fuzzPolicyCache{progs: map[int64]*diffProgram{}}
	f.Fuzz(func(t *testing.T, seed int64, frame []byte) {
		d, err := cache.get(seed)
		if err != nil {
			t.Fatalf("policy seed %d: %v", seed, err)
		}
		if dis := d.compare(corpus.Class(fmt.Sprintf("fuzz, policy seed %d", seed)), frame); dis != nil {
			t.Fatalf("disagreement:\n%s", dis)
		}
	})
}
