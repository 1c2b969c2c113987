package synflood

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, dst, sources string
		rate               int
		duration           time.Duration
		wantSources        string // empty: an error
	}{
		{"IPv4 default sources", "198.18.3.2:80", "", 100, time.Second, "198.19.0.0/16"},
		{"IPv6 default sources", "[2001:db8:3::2]:80", "", 100, time.Second, "2001:db8:ff::/48"},
		{"given sources", "198.18.3.2:80", "198.18.7.0/24", 100, time.Second, "198.18.7.0/24"},
		{"bad destination", "198.18.3.2", "", 100, time.Second, ""},
		{"bad sources", "198.18.3.2:80", "198.19.0.0", 100, time.Second, ""},
		{"sources outside", "198.18.3.2:80", "203.0.113.0/24", 100, time.Second, ""},
		{"no rate", "198.18.3.2:80", "", 0, time.Second, ""},
		{"too long", "198.18.3.2:80", "", 100, MaxDuration + time.Second, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(tt.dst, tt.sources, tt.rate, tt.duration, 0, 0, 0)
			if tt.wantSources == "" {
				if err == nil {
					t.Errorf("ParseConfig(%q, %q, %d, %v) = %+v, want an error", tt.dst, tt.sources, tt.rate, tt.duration, c)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig(%q, %q, %d, %v) = %v, want sources %s", tt.dst, tt.sources, tt.rate, tt.duration, err, tt.wantSources)
			}
			if got := c.Sources; got != netip.MustParsePrefix(tt.wantSources) {
				t.Errorf("ParseConfig(...).Sources = %v, want %s", got, tt.wantSources)
			}
			if c.Seed == 0 || c.Count != tt.rate*int(tt.duration/time.Second) {
				t.Errorf("ParseConfig(...) seed %d count %d, want a seed and count %d", c.Seed, c.Count, tt.rate*int(tt.duration/time.Second))
			}
		})
	}
}

// TestCommandRefuses: a bad command line exits 2 before any socket is
// opened, and says why.
func TestCommandRefuses(t *testing.T) {
	for _, args := range [][]string{
		{"-dst", "192.0.2.1:80", "-rate", "10", "-duration", "1s"},
		{"-dst", "198.18.3.2:80", "-rate", "10", "-duration", "1s", "extra"},
		{"-dst", "198.18.3.2:80", "-rate", "10", "-duration", "1s", "-count", "-1"},
		{"-frobnicate"},
	} {
		var out, errb bytes.Buffer
		if got := Command(context.Background(), "synflood", args, &out, &errb); got != 2 {
			t.Errorf("Command(%q) = %d, want 2; stderr %q", args, got, errb.String())
		}
		if !strings.Contains(errb.String(), "synflood") && !strings.Contains(errb.String(), "flag") {
			t.Errorf("Command(%q) stderr %q does not say why", args, errb.String())
		}
	}
}
