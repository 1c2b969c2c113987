package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// benchServices returns n non-overlapping services mixing IPv4 hosts, IPv6
// /64s and /128s, and (when n > 1) one IPv4 /15 on a port no host uses, so
// a lookup probes more than one prefix length.
func benchServices(n int) []*Service {
	out := make([]*Service, 0, n)
	if n > 1 {
		out = append(out, &Service{Mode: ModePass, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}, PortLo: 22, PortHi: 22})
	}
	for i := len(out); i < n; i++ {
		var pf netip.Prefix
		switch i % 4 {
		case 0, 2:
			pf = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 | byte(i>>16)&1, byte(i >> 8), byte(i)}), 32)
		case 1:
			pf = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, byte(i >> 8), byte(i)}), 64)
		default:
			pf = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 2, 14: byte(i >> 8), 15: byte(i)}), 128)
		}
		out = append(out, &Service{Mode: ModeProxy, Prefixes: []netip.Prefix{pf}, Ports: []PortRange{{80, 80}, {443, 443}, {8000, 8080}}})
	}
	return out
}

type query struct {
	a    []byte // address as a header carries it
	port uint16
}

func BenchmarkLookupIP(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			p := mustNew(b, benchServices(n))
			r := rand.New(rand.NewPCG(5, 6))
			qs := make([]query, 4096)
			for i := range qs {
				s := p.Services[r.IntN(len(p.Services))]
				a := s.Prefixes[0].Addr()
				port := []uint16{80, 443, 8042, 22, 9999}[r.IntN(5)]
				qs[i] = query{a.AsSlice(), port}
			}
			hits := 0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				q := qs[i&4095]
				if p.LookupIP(q.a, q.port) != nil {
					hits++
				}
				i++
			}
			b.ReportMetric(float64(hits)/float64(i), "hits/op")
		})
	}
}

func BenchmarkAllowDeny(b *testing.B) {
	p, err := Parse("b.yaml", []byte(base+"allow: [198.18.1.0/24, \"2001:db8:1::/48\"]\ndeny: [198.18.200.0/22, 198.18.9.9]\n"))
	if err != nil {
		b.Fatal(err)
	}
	addrs := []netip.Addr{netip.MustParseAddr("198.18.1.7"), netip.MustParseAddr("198.18.201.1"), netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("203.0.113.1")}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := addrs[i&3]
		_ = p.Allowed(a) || p.Denied(a)
		i++
	}
}

func BenchmarkNew10000(b *testing.B) {
	svcs := benchServices(10000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(svcs, Tables{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBenchServicesLookup(t *testing.T) {
	// The benchmark's policy must itself be right: compare with the
	// reference lookup on its queries.
	p := mustNew(t, benchServices(10000))
	for _, s := range p.Services[:200] {
		for _, port := range []uint16{22, 80, 81, 443, 8000, 8080, 8081} {
			a := s.Prefixes[0].Addr()
			if got, want := lookup(p, a, port), linear(p, a, port); got != want {
				t.Fatalf("LookupIP(%s, %d) = %v, want %v", a, port, got, want)
			}
		}
	}
}
