//go:build !linux || !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"context"
	"time"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/policy"
)

// Stage is the BPF SYN stage; it exists only on Linux.
type Stage struct{}

// Inherited is what an earlier process handed over; none here.
type Inherited struct{}

// InheritFromEnv finds nothing: BPF is Linux's.
func InheritFromEnv() (*Inherited, error) { return nil, nil }

func (*Inherited) Attachments() []Attachment { return nil }
func (*Inherited) Close() error              { return nil }

// Load fails: BPF is Linux's.
func Load(Options) (*Stage, error) { return nil, ErrUnavailable }

func (*Stage) Attach(string, AttachMode) error                        { return ErrUnavailable }
func (*Stage) Rotate(*cookies.Jar, time.Time) error                   { return ErrUnavailable }
func (*Stage) SetKeys(time.Time, uint64, [4]cookies.CounterKey) error { return ErrUnavailable }
func (*Stage) SetPolicy(*policy.Policy) error                         { return ErrUnavailable }
func (*Stage) Stats() (Stats, error)                                  { return Stats{}, ErrUnavailable }
func (*Stage) Attachments() []Attachment                              { return nil }
func (*Stage) RecheckPeers() []Attachment                             { return nil }
func (*Stage) CacheMemory() (*gateway.CacheMemory, error)             { return nil, ErrUnavailable }
func (*Stage) ShareCache([4]uint64, uint32) error                     { return ErrUnavailable }
func (*Stage) FlowTagMemory() ([]byte, error)                         { return nil, ErrUnavailable }
func (*Stage) SetSampling(float64) error                              { return ErrUnavailable }
func (*Stage) ReadSamples(context.Context, func(*Sample)) error       { return ErrUnavailable }
func (*Stage) Close() error                                           { return nil }
func (*Stage) Adopted() (bool, error)                                 { return false, nil }
func (*Stage) CacheSeed() ([4]uint64, bool)                           { return [4]uint64{}, false }
func (*Stage) ReleaseInherited() ([]Attachment, error)                { return nil, nil }
func (*Stage) Handover() (string, error)                              { return "", ErrUnavailable }

// SynAckBudget is the stage's global SYN-ACK limit; none here.
type SynAckBudget struct{}

func (*SynAckBudget) AllowSynAck() (allowed, inForce bool) { return true, false }
func (*Stage) SynAckBudget() (*SynAckBudget, error)        { return nil, ErrUnavailable }
