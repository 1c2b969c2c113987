package probe

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/synwall/synwall/internal/policy"
)

const discoverPolicy = `version: 1
services:
  - name: web
    addresses: [198.18.3.2/32, 2001:db8:3::2/128]
    ports: [80]
    advertise: {discover: true, mss: 1460, mss6: 1440, wscale: 7, sack: true, timestamps: true, window: 65535}
  - name: mail
    addresses: [198.18.4.2/32]
    ports: [25]
    advertise: {discover: true, mss: 1460, wscale: 7, sack: true, timestamps: true, window: 65535}
  - name: ssh
    addresses: [198.18.5.2/32]
    ports: [22]
    advertise: {mss: 1460, wscale: 7, sack: true, timestamps: true, window: 65535}
`

// TestDiscover: what the probes find replaces the advertised options per
// service and family; a service whose probe fails keeps its values and is
// counted; services without discover are never probed.
func TestDiscover(t *testing.T) {
	p, err := policy.Parse("d.yaml", []byte(discoverPolicy))
	if err != nil {
		t.Fatal(err)
	}
	fake := func(_ context.Context, target netip.AddrPort, mark uint32, timeout time.Duration) (Result, error) {
		if mark != 0x5359 || timeout != DiscoverTimeout {
			t.Errorf("probe(%v) with mark %#x, timeout %v; want 0x5359, %v", target, mark, timeout, DiscoverTimeout)
		}
		switch target.String() {
		case "198.18.3.2:80":
			return Result{MSS: 1200, WScale: -1, SACK: false, Timestamps: true, ECNAsked: true, ECN: true, Window: 29200}, nil
		case "[2001:db8:3::2]:80":
			return Result{MSS: 1300, WScale: -1, Timestamps: true, ECNAsked: true, ECN: true, Window: 29200}, nil
		case "198.18.4.2:25":
			return Result{}, errors.New("connection refused")
		}
		t.Errorf("probe of %v, a service without discover", target)
		return Result{}, errors.New("unexpected")
	}
	var logs bytes.Buffer
	d := Discoverer{Mark: 0x5359, Log: slog.New(slog.NewTextHandler(&logs, nil)), Probe: fake}
	np, failed := d.Discover(context.Background(), p)
	if failed != 1 {
		t.Errorf("Discover failed = %d, want 1 (mail)", failed)
	}
	got := map[string]policy.Advertise{}
	for _, s := range np.Services {
		got[s.Name] = s.Advertise
	}
	want := map[string]policy.Advertise{
		"web":  {MSS4: 1200, MSS6: 1300, WScale: policy.NoWScale, SACK: false, Timestamps: true, ECN: true, Window: 29200, Discover: true},
		"mail": p.Services[1].Advertise,
		"ssh":  p.Services[2].Advertise,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("advertised after Discover (-want +got):\n%s", diff)
	}
	if p.Services[0].Advertise.MSS4 != 1460 {
		t.Errorf("Discover changed its input: web mss %d, want 1460", p.Services[0].Advertise.MSS4)
	}
	if !strings.Contains(logs.String(), "discover failed") || !strings.Contains(logs.String(), "service=mail") {
		t.Errorf("log = %q, want the mail failure", logs.String())
	}
}

// TestDiscoverNothing: a policy without discover is returned as is.
func TestDiscoverNothing(t *testing.T) {
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	d := Discoverer{Log: slog.New(slog.DiscardHandler), Probe: func(context.Context, netip.AddrPort, uint32, time.Duration) (Result, error) {
		t.Error("probe called for a policy without discover")
		return Result{}, nil
	}}
	if np, failed := d.Discover(context.Background(), p); np != p || failed != 0 {
		t.Errorf("Discover(default) = %p, %d; want the same policy %p, 0", np, failed, p)
	}
}
