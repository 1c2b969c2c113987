package policy

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func mustNew(t testing.TB, services []*Service) *Policy {
	t.Helper()
	p, err := New(services, Tables{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// lookup is LookupIP for a netip.Addr, the way the engine calls it with
// the address bytes of a packet header.
func lookup(p *Policy, a netip.Addr, port uint16) *Service { return p.LookupIP(a.AsSlice(), port) }

func name(s *Service) string {
	if s == nil {
		return ""
	}
	return s.Name
}

func TestNewFillsDefaults(t *testing.T) {
	in := &Service{Mode: ModeProxy, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.3.0/24")}, PortLo: 80, PortHi: 80}
	p := mustNew(t, []*Service{in})
	s := p.Services[0]
	if s == in {
		t.Errorf("New kept the caller's *Service; want a copy")
	}
	if in.Advertise.MSS4 != 0 || in.ID != 0 || in.Name != "" {
		t.Errorf("New changed the caller's service: %+v", in)
	}
	if s.Name != "service0" || s.Advertise.MSS4 != DefaultMSS4 || s.Advertise.MSS6 != DefaultMSS4-20 || s.Advertise.Window != DefaultWindow {
		t.Errorf("New filled %+v, want name service0, MSS 1460/1440, window 65535", s)
	}
	want := Tables{DefaultCacheBuckets, DefaultCacheEntries, DefaultFlows, DefaultHandshakeTimeout, DefaultIdleTimeout, DefaultLinger, DefaultCookiePeriod}
	if p.Tables != want {
		t.Errorf("New tables = %+v, want %+v", p.Tables, want)
	}
	if got := lookup(p, netip.MustParseAddr("198.18.3.9"), 80); got != s {
		t.Errorf("LookupIP(198.18.3.9, 80) = %v, want %v", got, s)
	}
}

// TestLookupIP: hits, misses, longest prefix first, IPv4-mapped IPv6
// addresses as IPv4, other address lengths and a nil Policy guard nothing.
func TestLookupIP(t *testing.T) {
	pf := netip.MustParsePrefix
	p := mustNew(t, []*Service{
		{Name: "net", Mode: ModeProxy, Prefixes: []netip.Prefix{pf("198.18.3.0/24"), pf("2001:db8:3::/64")}, Ports: []PortRange{{80, 80}, {443, 443}, {8000, 8080}}},
		{Name: "host", Mode: ModePass, Prefixes: []netip.Prefix{pf("198.18.3.2/32"), pf("2001:db8:3::2/128")}, PortLo: 22, PortHi: 22},
		{Name: "all", Mode: ModeDrop, Prefixes: []netip.Prefix{pf("198.18.0.0/16"), pf("2001:db8::/32")}, PortLo: 1000, PortHi: 2000},
	})
	tests := []struct {
		addr string
		port uint16
		want string
	}{
		{"198.18.3.7", 80, "net"},
		{"198.18.3.7", 443, "net"},
		{"198.18.3.7", 8000, "net"},
		{"198.18.3.7", 8080, "net"},
		{"198.18.3.7", 8081, ""},
		{"198.18.3.7", 81, ""},
		{"198.18.3.2", 80, "net"},
		{"198.18.3.2", 22, "host"},
		{"198.18.3.3", 22, ""},
		{"198.18.9.3", 1500, "all"},
		{"198.18.3.3", 1000, "all"},
		{"198.19.3.3", 1000, ""},
		{"::ffff:198.18.3.2", 22, "host"},
		{"::ffff:198.18.3.7", 8080, "net"},
		{"::198.18.3.7", 80, ""}, // IPv4-compatible, not mapped
		{"2001:db8:3::2", 22, "host"},
		{"2001:db8:3::5", 443, "net"},
		{"2001:db8:3:1::5", 443, ""},
		{"2001:db8:3::5", 22, ""},
		{"2001:db8:ffff::1", 1999, "all"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr)
			if got := name(p.LookupIP(a.AsSlice(), tt.port)); got != tt.want {
				t.Errorf("LookupIP(%s, %d) = %q, want %q", tt.addr, tt.port, got, tt.want)
			}
			if got, want := p.LookupIP(a.AsSlice(), tt.port), linear(p, a, tt.port); got != want {
				t.Errorf("LookupIP(%s, %d) = %q, want the reference's %q", tt.addr, tt.port, name(got), name(want))
			}
		})
	}
	for _, n := range []int{0, 3, 5, 15, 17} {
		if s := p.LookupIP(make([]byte, n), 80); s != nil {
			t.Errorf("LookupIP(%d zero bytes, 80) = %q, want nil", n, s.Name)
		}
	}
	if s := lookup(p, netip.Addr{}, 80); s != nil {
		t.Errorf("LookupIP(invalid, 80) = %q, want nil", s.Name)
	}
	var nilp *Policy
	if s := nilp.LookupIP([]byte{198, 18, 3, 7}, 80); s != nil {
		t.Errorf("nil Policy LookupIP = %q, want nil", s.Name)
	}

	// Random addresses near the prefixes: LookupIP agrees with the
	// reference.
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
		if got, want := lookup(p, a, port), linear(p, a, port); got != want {
			t.Fatalf("LookupIP(%s, %d) = %q, want the reference's %q", a, port, name(got), name(want))
		}
	}
}

// randomServices returns n non-overlapping services: hosts, /24s, /16s and
// IPv6 /64s and /128s with random port ranges, built to rarely collide; the
// overlapping ones are dropped by retrying.
func randomServices(r *rand.Rand, n int) []*Service {
	var out []*Service
	for len(out) < n {
		var pf netip.Prefix
		switch r.IntN(5) {
		case 0:
			pf = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(r.IntN(4)), byte(r.IntN(256))}), 32)
		case 1:
			pf = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(r.IntN(2)), byte(r.IntN(256)), 0}), 24)
		case 2:
			pf = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(r.IntN(2)), 0, 0}), 16)
		case 3:
			pf = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(r.IntN(4)), 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(r.IntN(256))}), 128)
		default:
			pf = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(r.IntN(4)), 0, byte(r.IntN(16))}), 64)
		}
		lo := uint16(1 + r.IntN(65000))
		hi := lo + uint16(r.IntN(3)*r.IntN(100))
		s := &Service{Mode: ModeProxy, Prefixes: []netip.Prefix{pf}, Ports: []PortRange{{lo, hi}}}
		ok := true
		for _, o := range out {
			if o.Prefixes[0].Overlaps(pf) && o.Ports[0].Overlaps(s.Ports[0]) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// linear is the reference lookup: every service, every prefix, every range.
func linear(p *Policy, a netip.Addr, port uint16) *Service {
	a = a.Unmap()
	for _, s := range p.Services {
		for _, pf := range s.Prefixes {
			if !pf.Contains(a) {
				continue
			}
			for _, r := range s.Ports {
				if r.Contains(port) {
					return s
				}
			}
		}
	}
	return nil
}

func TestLookupIPDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 10, 300} {
		p := mustNew(t, randomServices(r, n))
		for i := 0; i < 20000; i++ {
			s := p.Services[r.IntN(len(p.Services))]
			pf := s.Prefixes[0]
			b := pf.Addr().As16()
			// An address in or near a service prefix, a port in or near its range.
			if r.IntN(2) == 0 {
				b[15] = byte(r.IntN(256))
			}
			if r.IntN(4) == 0 {
				b[13] = byte(r.IntN(256))
			}
			a := netip.AddrFrom16(b)
			if pf.Addr().Is4() {
				a = netip.AddrFrom4([4]byte(b[12:]))
			}
			port := s.Ports[0].Lo + uint16(r.IntN(120)) - 10
			if got, want := lookup(p, a, port), linear(p, a, port); got != want {
				t.Fatalf("n=%d: LookupIP(%s, %d) = %v, want %v", n, a, port, got, want)
			}
		}
	}
}

func TestLookupIPNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	p := mustNew(t, randomServices(r, 100))
	a4, a6 := netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("2001:db8:1::1")
	b4, b6 := a4.AsSlice(), a6.AsSlice()
	allocs := testing.AllocsPerRun(1000, func() {
		p.LookupIP(b4, 80)
		p.LookupIP(b6, 443)
		p.Allowed(a4)
		p.Denied(a6)
	})
	if allocs != 0 {
		t.Errorf("LookupIP/Allowed/Denied allocate %v times per run, want 0", allocs)
	}
}
