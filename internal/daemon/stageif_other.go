//go:build !linux

package daemon

import (
	"errors"
	"net/netip"
)

// stageLinks is Linux-only: the SYN stage is a Linux BPF program.
func stageLinks() ([]stageLink, error) {
	return nil, errors.New("selecting the SYN stage's interfaces needs Linux")
}

// serviceRoutes is Linux-only (rtnetlink).
func serviceRoutes(prefixes []netip.Prefix) []serviceRoute { return nil }
