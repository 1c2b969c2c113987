//go:build !linux

package conntrack

// New fails with ErrUnsupported: conntrack entries exist on Linux only.
func New(cfg Config) (*Handoff, error) { return nil, ErrUnsupported }
