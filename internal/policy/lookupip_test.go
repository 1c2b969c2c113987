package policy

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestLookupIP checks that LookupIP on an address's bytes agrees with
// Lookup on the address, for hits, misses and IPv4-mapped IPv6 addresses.
func TestLookupIP(t *testing.T) {
	pf := netip.MustParsePrefix
	p := mustNew(t, []*Service{
		{Name: "net", Mode: ModeProxy, Prefixes: []netip.Prefix{pf("198.18.3.0/24"), pf("2001:db8:3::/64")}, Ports: []PortRange{{80, 80}, {443, 443}, {8000, 8080}}},
		{Name: "host", Mode: ModePass, Prefixes: []netip.Prefix{pf("198.18.3.2/32"), pf("2001:db8:3::2/128")}, PortLo: 22, PortHi: 22},
		{Name: "all", Mode: ModeDrop, Prefixes: []netip.Prefix{pf("198.18.0.0/16"), pf("2001:db8::/32")}, PortLo: 1000, PortHi: 2000},
	})
	name := func(s *Service) string {
		if s == nil {
			return ""
		}
		return s.Name
	}
	tests := []struct {
		addr string
		port uint16
		want string
	}{
		{"198.18.3.7", 80, "net"},
		{"198.18.3.2", 22, "host"},
		{"198.18.3.3", 22, ""},
		{"198.18.9.3", 1500, "all"},
		{"198.19.3.3", 1000, ""},
		{"::ffff:198.18.3.2", 22, "host"},
		{"::ffff:198.18.3.7", 8080, "net"},
		{"::198.18.3.7", 80, ""}, // IPv4-compatible, not mapped
		{"2001:db8:3::2", 22, "host"},
		{"2001:db8:3::5", 443, "net"},
		{"2001:db8:3:1::5", 443, ""},
		{"2001:db8:ffff::1", 1999, "all"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr)
			if got := name(p.LookupIP(a.AsSlice(), tt.port)); got != tt.want {
				t.Errorf("LookupIP(%s, %d) = %q, want %q", tt.addr, tt.port, got, tt.want)
			}
			if got, want := p.LookupIP(a.AsSlice(), tt.port), p.Lookup(a, tt.port); got != want {
				t.Errorf("LookupIP(%s, %d) = %q, Lookup = %q", tt.addr, tt.port, name(got), name(want))
			}
		})
	}
	for _, n := range []int{0, 3, 5, 15, 17} {
		if s := p.LookupIP(make([]byte, n), 80); s != nil {
			t.Errorf("LookupIP(%d zero bytes, 80) = %q, want nil", n, s.Name)
		}
	}
	var nilp *Policy
	if s := nilp.LookupIP([]byte{198, 18, 3, 7}, 80); s != nil {
		t.Errorf("nil Policy LookupIP = %q, want nil", s.Name)
	}

	// Random addresses near the prefixes: both lookups agree.
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 5000; i++ {
		var a netip.Addr
		if r.IntN(2) == 0 {
			a = netip.AddrFrom4([4]byte{198, 18 + byte(r.IntN(2)), byte(r.IntN(8)), byte(r.IntN(8))})
		} else {
			var b [16]byte
			copy(b[:], netip.MustParseAddr("2001:db8:3::").AsSlice())
			b[5], b[7], b[15] = byte(r.IntN(4)), byte(r.IntN(2)), byte(r.IntN(4))
			a = netip.AddrFrom16(b)
		}
		port := []uint16{22, 80, 443, 1000, 8042, 9999}[r.IntN(6)]
		if got, want := p.LookupIP(a.AsSlice(), port), p.Lookup(a, port); got != want {
			t.Fatalf("LookupIP(%s, %d) = %q, Lookup = %q", a, port, name(got), name(want))
		}
	}
}

func TestLookupIPZeroAllocs(t *testing.T) {
	p := mustNew(t, []*Service{{Mode: ModeProxy, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.3.0/24")}, PortLo: 80, PortHi: 80}})
	a4 := []byte{198, 18, 3, 9}
	a6 := netip.MustParseAddr("2001:db8::1").AsSlice()
	if n := testing.AllocsPerRun(100, func() { p.LookupIP(a4, 80); p.LookupIP(a6, 80) }); n != 0 {
		t.Errorf("LookupIP allocates %v times, want 0", n)
	}
}
