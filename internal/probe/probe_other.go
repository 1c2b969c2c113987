//go:build !linux

package probe

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Probe needs Linux (TCP_INFO); elsewhere it returns ErrNotLinux.
func Probe(context.Context, netip.AddrPort, uint32, time.Duration) (Result, error) {
	return Result{}, ErrNotLinux
}

// ErrNotLinux is returned by Probe on systems other than Linux.
var ErrNotLinux = errors.New("probe: backend probes need Linux (TCP_INFO)")
