//go:build !linux

package queue

// Env returns nothing: sockets are handed over on Linux only.
func (h *Handoff) Env() (string, error) { return "", nil }

// HandoffFromEnv returns nil: sockets are handed over on Linux only.
func HandoffFromEnv() (*Handoff, error) { return nil, nil }

// CloseExcept does nothing off Linux.
func (h *Handoff) CloseExcept([]uint16) int { return 0 }
