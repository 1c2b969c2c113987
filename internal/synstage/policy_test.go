package synstage

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/synwall/synwall/internal/policy"
)

// TestServicePrefixes holds the trie model (longest prefix, then its merged
// ranges) to Policy.LookupIP on nested prefixes (a policy refuses ports
// shared by two of them), so that the fall back to shorter prefixes for the
// ports a longer one does not guard is exercised.
func TestServicePrefixes(t *testing.T) {
	pf := netip.MustParsePrefix
	p, err := policy.New([]*policy.Service{
		{Name: "net", Mode: policy.ModeProxy, Prefixes: []netip.Prefix{pf("198.18.3.0/24"), pf("2001:db8:3::/64")},
			Ports: []policy.PortRange{{Lo: 80, Hi: 80}, {Lo: 443, Hi: 443}, {Lo: 8000, Hi: 8080}}},
		{Name: "host", Mode: policy.ModePass, Prefixes: []netip.Prefix{pf("198.18.3.2/32"), pf("2001:db8:3::2/128")},
			Ports: []policy.PortRange{{Lo: 22, Hi: 22}, {Lo: 8100, Hi: 8200}}},
		{Name: "all", Mode: policy.ModeDrop, Prefixes: []netip.Prefix{pf("198.18.0.0/16"), pf("2001:db8::/32")}, PortLo: 1000, PortHi: 2000},
		{Name: "deep", Mode: policy.ModeProxy, Prefixes: []netip.Prefix{pf("198.18.3.0/28"), pf("2001:db8:3::/120")}, PortLo: 501, PortHi: 600},
	}, policy.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	ps := servicePrefixes(p)
	name := func(s *policy.Service) string {
		if s == nil {
			return ""
		}
		return s.Name
	}
	rng := rand.New(rand.NewPCG(3, 4))
	bases := []netip.Addr{netip.MustParseAddr("198.18.3.2"), netip.MustParseAddr("198.18.3.7"), netip.MustParseAddr("198.18.3.200"),
		netip.MustParseAddr("198.18.9.1"), netip.MustParseAddr("198.19.0.1"), netip.MustParseAddr("2001:db8:3::2"),
		netip.MustParseAddr("2001:db8:3::7"), netip.MustParseAddr("2001:db8:3::1:1"), netip.MustParseAddr("2001:db8:9::1"),
		netip.MustParseAddr("2001:db9::1")}
	ports := []uint16{1, 21, 22, 23, 79, 80, 81, 442, 443, 444, 500, 501, 600, 601, 999, 1000, 2000, 2001, 7999, 8000, 8080, 8081, 8099, 8100, 8200, 8201, 65535}
	for range 20000 {
		a := bases[rng.IntN(len(bases))]
		port := ports[rng.IntN(len(ports))]
		if rng.IntN(4) == 0 {
			port = uint16(rng.IntN(65536))
		}
		got, want := name(lookupPrefixes(ps, a, port)), name(p.LookupIP(a.AsSlice(), port))
		if got != want {
			t.Errorf("lookupPrefixes(%v, %d) = %q, want %q (Policy.LookupIP)", a, port, got, want)
		}
	}
	for _, e := range ps {
		for i := 1; i < len(e.Ranges); i++ {
			if e.Ranges[i].Lo <= e.Ranges[i-1].Hi {
				t.Errorf("%v: ranges %v and %v overlap", e.Prefix, e.Ranges[i-1], e.Ranges[i])
			}
		}
	}
}
