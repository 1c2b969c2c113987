package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestProbeAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" means not ok
	}{
		{"198.18.3.2/32", "198.18.3.2"},
		{"198.18.4.0/24", "198.18.4.1"},
		{"198.18.0.0/15", "198.18.0.1"},
		{"198.18.4.6/31", "198.18.4.6"},
		{"2001:db8:3::2/128", "2001:db8:3::2"},
		{"2001:db8:3::/64", "2001:db8:3::1"},
		{"2001:db8:3::8/127", "2001:db8:3::8"},
		{"198.18.4.7/24", "198.18.4.1"}, // not masked: masked first
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := ProbeAddr(netip.MustParsePrefix(tc.in))
			if !ok || got != netip.MustParseAddr(tc.want) {
				t.Errorf("ProbeAddr(%s) = %v, %t, want %s, true", tc.in, got, ok, tc.want)
			}
		})
	}
	if got, ok := ProbeAddr(netip.Prefix{}); ok {
		t.Errorf("ProbeAddr(invalid) = %v, true, want false", got)
	}
}

func TestProbeTargets(t *testing.T) {
	svc := func(ports []PortRange, prefixes ...string) *Service {
		s := &Service{Mode: ModeProxy, Ports: ports}
		for _, p := range prefixes {
			s.Prefixes = append(s.Prefixes, netip.MustParsePrefix(p))
		}
		return s
	}
	for _, tc := range []struct {
		name string
		s    *Service
		all  []string // ProbeTargets
	}{
		{"one host", svc([]PortRange{{443, 443}}, "198.18.3.2/32"), []string{"198.18.3.2:443"}},
		{"lowest port of unsorted ranges", svc([]PortRange{{8000, 8080}, {80, 80}, {443, 443}}, "198.18.3.2/32"),
			[]string{"198.18.3.2:80"}},
		{"IPv6 first, then IPv4 prefix", svc([]PortRange{{25, 25}}, "2001:db8:3::2/128", "198.18.4.0/24", "198.18.3.9/32"),
			[]string{"198.18.4.1:25", "[2001:db8:3::2]:25"}},
		{"wide IPv6 prefix", svc([]PortRange{{22, 22}}, "2001:db8:5::/48"), []string{"[2001:db8:5::1]:22"}},
		{"PortLo without Ports", &Service{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.3.2/32")}, PortLo: 8443, PortHi: 8444},
			[]string{"198.18.3.2:8443"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all, err := ProbeTargets(tc.s)
			if err != nil {
				t.Fatalf("ProbeTargets() error %v", err)
			}
			var s []string
			for _, a := range all {
				s = append(s, a.String())
			}
			if d := cmp.Diff(tc.all, s); d != "" {
				t.Errorf("ProbeTargets() mismatch (-want +got):\n%s", d)
			}
		})
	}
	for _, s := range []*Service{nil, {Ports: []PortRange{{80, 80}}}, svc(nil, "198.18.3.2/32")} {
		if got, err := ProbeTargets(s); !errors.Is(err, ErrNoProbeTarget) {
			t.Errorf("ProbeTargets(%+v) = %v, %v, want ErrNoProbeTarget", s, got, err)
		}
	}
}

func TestLearn(t *testing.T) {
	base := Advertise{MSS4: 1460, MSS6: 1440, WScale: 7, SACK: true, Timestamps: true, ECN: true, Window: 65535, Discover: true}
	for _, tc := range []struct {
		name string
		l    Learned
		want Advertise
	}{
		{"IPv4, everything off",
			Learned{MSS: 1200, WScale: NoWScale, Window: 5000, ECNKnown: true},
			Advertise{MSS4: 1200, MSS6: 1440, WScale: NoWScale, Window: 5000, Discover: true}},
		{"IPv6 MSS only touches MSS6",
			Learned{IPv6: true, MSS: 1300, WScale: 9, SACK: true, Timestamps: true, Window: 64800},
			Advertise{MSS4: 1460, MSS6: 1300, WScale: 9, SACK: true, Timestamps: true, ECN: true, Window: 64800, Discover: true}},
		{"ECN not asked keeps the policy's ECN; unknown MSS and window keep theirs",
			Learned{WScale: 0, SACK: true},
			Advertise{MSS4: 1460, MSS6: 1440, WScale: 0, SACK: true, ECN: true, Window: 65535, Discover: true}},
		{"clamped into policy ranges",
			Learned{MSS: 100, WScale: 15, ECNKnown: true, ECN: true},
			Advertise{MSS4: MinMSS4, MSS6: 1440, WScale: MaxWScale, ECN: true, Window: 65535, Discover: true}},
		{"IPv6 MSS below the IPv6 minimum",
			Learned{IPv6: true, MSS: 536, WScale: 2},
			Advertise{MSS4: 1460, MSS6: MinMSS6, WScale: 2, ECN: true, Window: 65535, Discover: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, base.Learn(tc.l)); d != "" {
				t.Errorf("Learn(%+v) mismatch (-want +got):\n%s", tc.l, d)
			}
		})
	}
}

const discoverPolicy = `version: 1
services:
  - name: web
    addresses: [198.18.3.2/32, "2001:db8:3::2/128"]
    ports: [80, 443]
    advertise: {discover: true, mss: 1460, wscale: 7, sack: true, timestamps: true, window: 65535}
    limits:
      syn_per_source: {rate: 100/s, burst: 200, prefix4: 32, prefix6: 64}
  - name: ssh
    addresses: [198.18.4.0/24]
    ports: ["22-23"]
    mode: pass
tables: {flows: 64Ki, idle_timeout: 1m}
cookies: {period: 20s}
limits: {synack_rate: 9k/s, synack_burst: 1k}
allow: [198.18.9.0/24]
deny: ["2001:db8:66::/48"]
invalid_flags: count
queue: {numbers: [3, 1], max_len: 4096, fail: open}
`

// policyOpts compares the exported fields of policies.
var policyOpts = cmp.Options{cmpopts.IgnoreUnexported(Policy{}), cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{})}

func TestWithAdvertise(t *testing.T) {
	old, err := Parse("d.yaml", []byte(discoverPolicy))
	if err != nil {
		t.Fatal(err)
	}
	pristine, err := Parse("d.yaml", []byte(discoverPolicy))
	if err != nil {
		t.Fatal(err)
	}
	oldWeb := lookup(old, netip.MustParseAddr("198.18.3.2"), 443)
	a := Advertise{MSS4: 1200, MSS6: 1230, WScale: NoWScale, Window: 29200, ECN: true, Discover: true}

	np, err := old.WithAdvertise("web", a)
	if err != nil {
		t.Fatalf("WithAdvertise() error %v", err)
	}
	ignore := policyOpts
	// The old policy is unchanged, field by field and in its lookups.
	if d := cmp.Diff(pristine, old, ignore); d != "" {
		t.Errorf("old policy changed (-before +after):\n%s", d)
	}
	if s := lookup(old, netip.MustParseAddr("198.18.3.2"), 443); s != oldWeb || s.Advertise != pristine.Services[0].Advertise {
		t.Errorf("old.LookupIP(web) = %+v, want the old service", s)
	}
	// The new one equals it except for web's Advertise.
	if d := cmp.Diff(old, np, ignore, cmpopts.IgnoreFields(Service{}, "Advertise")); d != "" {
		t.Errorf("new policy differs beyond Advertise (-old +new):\n%s", d)
	}
	if got := np.Services[0].Advertise; got != a {
		t.Errorf("new web Advertise = %+v, want %+v", got, a)
	}
	if got, want := np.Services[1].Advertise, old.Services[1].Advertise; got != want {
		t.Errorf("new ssh Advertise = %+v, want %+v", got, want)
	}
	for _, addr := range []string{"198.18.3.2", "2001:db8:3::2"} {
		if s := lookup(np, netip.MustParseAddr(addr), 80); s != np.Services[0] {
			t.Errorf("new.LookupIP(%s, 80) = %p, want the new web service %p", addr, s, np.Services[0])
		}
	}
	if !np.Allowed(netip.MustParseAddr("198.18.9.7")) || !np.Denied(netip.MustParseAddr("2001:db8:66::1")) {
		t.Errorf("new policy lost its allow or deny list")
	}
	// No state is shared: every service and its slices are copies.
	for i := range old.Services {
		o, n := old.Services[i], np.Services[i]
		if o == n || &o.Prefixes[0] == &n.Prefixes[0] || &o.Ports[0] == &n.Ports[0] {
			t.Errorf("service %q shares memory with the old policy", o.Name)
		}
	}
	if d := Diff(old, np); len(d) != 1 || !strings.HasPrefix(d[0], `service "web" advertise:`) {
		t.Errorf("Diff(old, new) = %q, want one advertise change", d)
	}
}

func TestWithAdvertiseErrors(t *testing.T) {
	old, err := Parse("d.yaml", []byte(discoverPolicy))
	if err != nil {
		t.Fatal(err)
	}
	pristine, _ := Parse("d.yaml", []byte(discoverPolicy))
	good := old.Services[0].Advertise
	for _, tc := range []struct {
		name string
		m    map[string]Advertise
		want string
	}{
		{"unknown service", map[string]Advertise{"mail": good}, `d.yaml: services: no service named "mail"`},
		{"MSS too small", map[string]Advertise{"web": {MSS4: 100, MSS6: 1440, Window: 1}}, "services[0].advertise.mss: 100 out of range"},
		{"wscale too large", map[string]Advertise{"ssh": {MSS4: 1460, MSS6: 1440, WScale: 15, Window: 1}}, "services[1].advertise.wscale: 15 out of range"},
		{"zero window", map[string]Advertise{"web": {MSS4: 1460, MSS6: 1440}}, "services[0].advertise.window: 0 out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			np, err := old.WithAdvertises(tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("WithAdvertises(%v) = %v, %v, want error containing %q", tc.m, np, err, tc.want)
			}
			if np != nil {
				t.Errorf("WithAdvertises(%v) returned a policy with the error", tc.m)
			}
		})
	}
	if d := cmp.Diff(pristine, old, policyOpts); d != "" {
		t.Errorf("old policy changed by failed calls (-before +after):\n%s", d)
	}
	var nilp *Policy
	if _, err := nilp.WithAdvertise("web", good); err == nil {
		t.Errorf("(*Policy)(nil).WithAdvertise() error = nil, want an error")
	}
}
