//go:build !linux

package queue

import (
	"context"
	"net/netip"
	"time"
)

// Probe needs Linux (TCP_INFO); elsewhere it returns ErrNotLinux.
func Probe(context.Context, netip.AddrPort, uint32, time.Duration) (ProbeResult, error) {
	return ProbeResult{}, ErrNotLinux
}
