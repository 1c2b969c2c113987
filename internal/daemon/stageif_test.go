package daemon

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/synwall/synwall/internal/policy"
)

func TestParseSynStageIf(t *testing.T) {
	tests := []struct {
		in       string
		ifs      []string
		auto     bool
		wantFail bool
	}{
		{in: "", auto: true},
		{in: "  ", auto: true},
		{in: "none"},
		{in: "off"},
		{in: "eth0", ifs: []string{"eth0"}},
		{in: "eth0, eth1,", ifs: []string{"eth0", "eth1"}},
		{in: "eth0,none", wantFail: true},
		{in: ",", wantFail: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			ifs, auto, err := ParseSynStageIf(tc.in)
			if tc.wantFail {
				if err == nil {
					t.Errorf("ParseSynStageIf(%q) = %q, %v, nil, want an error", tc.in, ifs, auto)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSynStageIf(%q) = %v", tc.in, err)
			}
			if d := cmp.Diff(tc.ifs, ifs); d != "" || auto != tc.auto {
				t.Errorf("ParseSynStageIf(%q) auto = %v, want %v; interfaces (-want +got):\n%s", tc.in, auto, tc.auto, d)
			}
		})
	}
}

func TestServicePrefixes(t *testing.T) {
	p := &policy.Policy{Services: []*policy.Service{
		{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.100.0/24"), netip.MustParsePrefix("0.0.0.0/0")}},
		{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.100.7/24"), netip.MustParsePrefix("2001:db8:1::/64")}},
	}}
	want := []netip.Prefix{netip.MustParsePrefix("198.18.100.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}
	if d := cmp.Diff(want, servicePrefixes(p), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("servicePrefixes (-want +got):\n%s", d)
	}
}

// TestSelectStageInterfaces checks the automatic choice of the stage's
// interfaces on a fake set of interfaces and routes.
func TestSelectStageInterfaces(t *testing.T) {
	links := []stageLink{
		{Name: "lo", Index: 1, Up: true, Loopback: true},
		{Name: "cli0", Index: 2, Up: true},
		{Name: "atk0", Index: 3, Up: true},
		{Name: "srv0", Index: 4, Up: true},
		{Name: "spare0", Index: 5},
		{Name: "srv1", Index: 6, Up: true},
	}
	pf1 := netip.MustParsePrefix("198.18.100.0/24")
	pf2 := netip.MustParsePrefix("2001:db8:1::/64")
	pf3 := netip.MustParsePrefix("198.19.0.0/24")
	routes := []serviceRoute{
		{Prefix: pf1, Index: 4},
		{Prefix: pf2, Index: 6},
		{Prefix: pf3, Err: errors.New("no route")},
	}
	left := func(name, reason string) stageIfChoice { return stageIfChoice{Interface: name, Reason: reason} }
	pick := func(name, reason string) stageIfChoice {
		return stageIfChoice{Interface: name, Chosen: true, Reason: reason}
	}
	const fwd = "up, not loopback, no guarded service routed through it"
	const in = "up, not loopback (--hook input: this host is the server)"
	tests := []struct {
		name    string
		links   []stageLink
		routes  []serviceRoute
		forward bool
		chosen  []string
		choices []stageIfChoice
	}{
		{
			name: "forward", links: links, routes: routes, forward: true,
			chosen: []string{"cli0", "atk0"},
			choices: []stageIfChoice{
				left("lo", "loopback"), pick("cli0", fwd), pick("atk0", fwd),
				left("srv0", "faces the servers: the route to 198.18.100.0 (guarded prefix 198.18.100.0/24) goes out through it"),
				left("spare0", "down"),
				left("srv1", "faces the servers: the route to 2001:db8:1:: (guarded prefix 2001:db8:1::/64) goes out through it"),
			},
		},
		{
			name: "input", links: links, routes: routes, forward: false,
			chosen: []string{"cli0", "atk0", "srv0", "srv1"},
			choices: []stageIfChoice{
				left("lo", "loopback"), pick("cli0", in), pick("atk0", in), pick("srv0", in), left("spare0", "down"), pick("srv1", in),
			},
		},
		{
			// One arm: the route to the servers leaves through the
			// only interface, which therefore is not chosen.
			name: "one arm", links: links[:2], routes: []serviceRoute{{Prefix: pf1, Index: 2}}, forward: true,
			choices: []stageIfChoice{
				left("lo", "loopback"),
				left("cli0", "faces the servers: the route to 198.18.100.0 (guarded prefix 198.18.100.0/24) goes out through it"),
			},
		},
		{
			name: "no routes", links: links[:4], forward: true,
			chosen:  []string{"cli0", "atk0", "srv0"},
			choices: []stageIfChoice{left("lo", "loopback"), pick("cli0", fwd), pick("atk0", fwd), pick("srv0", fwd)},
		},
		{name: "no interfaces", forward: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chosen, choices := selectStageInterfaces(tc.links, tc.routes, tc.forward)
			if d := cmp.Diff(tc.chosen, chosen); d != "" {
				t.Errorf("selectStageInterfaces chosen (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.choices, choices); d != "" {
				t.Errorf("selectStageInterfaces choices (-want +got):\n%s", d)
			}
		})
	}
}
