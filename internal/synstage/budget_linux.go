//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/synwall/synwall/internal/gateway"
)

// SynAckBudget is the global SYN-ACK limit of the stage, for the engine to
// charge (gateway.Config.SynAckLimiter): the program and the engine then
// take their SYN-ACKs from one GCRA word (the synack_tat map, mapped into
// this process), so that together they send no more than the policy's
// limit. It uses the program's clock (CLOCK_MONOTONIC) and the limit of
// the policy the stage was last given (SetPolicy, which the daemon calls
// with the engine's). Safe for concurrent use; AllowSynAck does not
// allocate.
type SynAckBudget struct {
	tat *uint64 // the map's value, shared with the program
	p   atomic.Pointer[budgetParams]
	off atomic.Bool // the stage is closed: the engine uses its own bucket

	// CLOCK_MONOTONIC at base, so that mono() needs no system call: Go's
	// time.Since reads the same clock.
	base     time.Time
	baseMono int64
}

var _ gateway.SynAckLimiter = (*SynAckBudget)(nil)

type budgetParams struct {
	on            bool
	interval, tau uint64
}

func (b *SynAckBudget) mono() uint64 { return uint64(b.baseMono + int64(time.Since(b.base))) }

// AllowSynAck takes one SYN-ACK from the budget, as the program does (gcra
// in bpf/synstage.c). inForce is false when the stage is closed or its
// policy has no SYN-ACK limit: the engine then applies its own.
func (b *SynAckBudget) AllowSynAck() (allowed, inForce bool) {
	if b.off.Load() {
		return true, false
	}
	p := b.p.Load()
	if p == nil || !p.on {
		return true, false
	}
	now := b.mono()
	for range 4 {
		old := atomic.LoadUint64(b.tat)
		t := max(old, now) + p.interval
		if t-now > p.tau {
			return false, true
		}
		if atomic.CompareAndSwapUint64(b.tat, old, t) {
			return true, true
		}
	}
	return true, true // as the program: a SYN-ACK after four lost races
}

// setPolicy makes bp's limit the budget's.
func (b *SynAckBudget) setPolicy(bp bpfPolicy) {
	b.p.Store(&budgetParams{on: bp.SynackLimit != 0, interval: bp.SynackIntervalNs, tau: bp.SynackTauNs})
}

// SynAckBudget returns the stage's global SYN-ACK limit for the engine.
// The mapping stays until the process exits (the engine may outlive the
// stage); after Close the budget is no longer in force.
func (s *Stage) SynAckBudget() (*SynAckBudget, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.budget != nil {
		return s.budget, nil
	}
	pg := unix.Getpagesize()
	mem, err := unix.Mmap(s.objs.SynackTat.FD(), 0, pg, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("synstage: mapping the SYN-ACK budget: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return nil, fmt.Errorf("synstage: reading the monotonic clock: %w", err)
	}
	b := &SynAckBudget{tat: (*uint64)(unsafe.Pointer(&mem[0])), base: time.Now(), baseMono: ts.Nano()}
	b.setPolicy(s.pol)
	s.budget = b
	return b, nil
}
