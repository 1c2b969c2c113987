//go:build !linux

package queue

import (
	"errors"

	"github.com/synwall/synwall/internal/engine"
)

// ErrNotLinux is returned by everything in this package that needs the
// Linux kernel.
var ErrNotLinux = errors.New("queue: NFQUEUE and raw-socket injection need Linux")

func open(Config, func() engine.Processor, Injector) (Queue, error) { return nil, ErrNotLinux }

// RawInjector is only available on Linux.
type RawInjector struct{}

// NewRawInjector is only available on Linux.
func NewRawInjector(InjectorConfig) (*RawInjector, error) { return nil, ErrNotLinux }

// Send fails: RawInjector is only available on Linux.
func (*RawInjector) Send([][]byte) (int, error) { return 0, ErrNotLinux }

// Close does nothing.
func (*RawInjector) Close() error { return nil }

// Stats returns zeros.
func (*RawInjector) Stats() InjectorStats { return InjectorStats{} }
