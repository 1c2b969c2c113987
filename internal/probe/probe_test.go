package probe

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"testing"
)

func TestProbeInvalidTarget(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Probe needs Linux")
	}
	for _, target := range []netip.AddrPort{
		{},
		netip.AddrPortFrom(netip.MustParseAddr("198.18.8.2"), 0),
		netip.AddrPortFrom(netip.Addr{}, 80),
	} {
		_, err := Probe(context.Background(), target, 0, 0)
		if !errors.Is(err, ErrTarget) {
			t.Errorf("Probe(%v) error = %v, want %v", target, err, ErrTarget)
		}
	}
}
