//go:build !linux || !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"time"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/policy"
)

// Stage is the BPF SYN stage; it exists only on Linux.
type Stage struct{}

// Load fails: BPF is Linux's.
func Load(Options) (*Stage, error) { return nil, ErrUnavailable }

func (*Stage) Attach(string, AttachMode) error                        { return ErrUnavailable }
func (*Stage) Rotate(*cookies.Jar, time.Time) error                   { return ErrUnavailable }
func (*Stage) SetKeys(time.Time, uint64, [4]cookies.CounterKey) error { return ErrUnavailable }
func (*Stage) SetPolicy(*policy.Policy) error                         { return ErrUnavailable }
func (*Stage) Stats() (Stats, error)                                  { return Stats{}, ErrUnavailable }
func (*Stage) Attachments() []Attachment                              { return nil }
func (*Stage) CacheMemory() (*gateway.CacheMemory, error)             { return nil, ErrUnavailable }
func (*Stage) ShareCache([4]uint64) error                             { return ErrUnavailable }
func (*Stage) Close() error                                           { return nil }
