package policy

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestAddrFilter checks that the address filter never rules out an address
// one of the prefixes contains, whatever the prefix lengths, and that it
// does rule out most addresses outside a small policy.
func TestAddrFilter(t *testing.T) {
	pf := netip.MustParsePrefix
	tests := []struct {
		name     string
		prefixes []netip.Prefix
	}{
		{"hosts", []netip.Prefix{pf("198.18.3.2/32"), pf("2001:db8:3::2/128")}},
		{"nets", []netip.Prefix{pf("198.18.3.0/24"), pf("198.19.0.0/16"), pf("2001:db8:3::/64"), pf("2001:db8:4::/48")}},
		{"mixed", []netip.Prefix{pf("198.18.3.2/32"), pf("198.18.128.0/17"), pf("2001:db8:3::2/128"), pf("2001:db8:5:8000::/65"), pf("2001:db8:8000::/33")}},
		{"short", []netip.Prefix{pf("198.18.0.0/15"), pf("0.0.0.0/1"), pf("2001:db8::/32"), pf("8000::/1")}},
		{"everything", []netip.Prefix{pf("0.0.0.0/0"), pf("::/0")}},
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var svcs []*Service
			for i, p := range tt.prefixes {
				svcs = append(svcs, &Service{Name: tt.name + string(rune('a'+i)), Mode: ModeProxy, Prefixes: []netip.Prefix{p}, PortLo: 80, PortHi: 80})
			}
			pol := mustNew(t, svcs)
			for _, p := range tt.prefixes {
				for i := 0; i < 2000; i++ {
					// A random address inside p.
					b := p.Addr().As16()
					n := 16
					if p.Addr().Is4() {
						n = 4
						copy(b[:4], b[12:])
					}
					for j := 0; j < n; j++ {
						if bit := p.Bits() - 8*j; bit < 8 {
							b[j] = b[j]&^byte(0xff>>max(bit, 0)) | byte(r.Uint32())&byte(0xff>>max(bit, 0))
						}
					}
					if s := pol.LookupIP(b[:n], 80); s == nil {
						t.Fatalf("LookupIP(%v, 80) = nil, want the service of %s", b[:n], p)
					}
				}
			}
		})
	}
	// A policy of a few prefixes: random addresses from the test ranges
	// are mostly turned away by the filter itself.
	pol := mustNew(t, []*Service{{Name: "web", Mode: ModeProxy, Prefixes: []netip.Prefix{pf("198.18.3.0/24"), pf("2001:db8:3::/64")}, PortLo: 80, PortHi: 80}})
	x := &pol.services
	const n = 10000
	passed4, passed6 := 0, 0
	for i := 0; i < n; i++ {
		a := 198<<24 | 18<<16 | uint32(r.IntN(1<<17))
		if a>>8 != 198<<16|18<<8|3 && x.f4.mayHave(uint64(a)) {
			passed4++
		}
		hi := uint64(0x20010db8)<<32 | uint64(r.Uint32())
		if hi != 0x20010db800030000 && x.f6.mayHave(hi) {
			passed6++
		}
	}
	if passed4 > n/10 || passed6 > n/10 {
		t.Errorf("filter passed %d of %d IPv4 and %d of %d IPv6 addresses outside the policy, want at most %d", passed4, n, passed6, n, n/10)
	}
}
