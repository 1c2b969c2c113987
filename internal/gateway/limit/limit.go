package limit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// MaxRate is the highest rate a limiter accepts, in events per second. It
// keeps the emission interval at one nanosecond or more.
const MaxRate = 1e9

// ErrRate and ErrBurst are returned for a limit that cannot be enforced.
var (
	ErrRate  = errors.New("limit: rate out of range (want 0 < rate <= 1e9 per second)")
	ErrBurst = errors.New("limit: burst out of range (want 1..2^31)")
)

// params are the GCRA constants of a rate and burst: the emission interval
// and the tolerance, in nanoseconds, packed for one atomic load.
type params struct {
	interval int64 // ns per token
	tau      int64 // interval * burst: how far ahead the arrival time may run
}

func newParams(rate float64, burst uint32) (params, error) {
	if !(rate > 0 && rate <= MaxRate) {
		return params{}, ErrRate
	}
	if burst == 0 || burst > 1<<31 {
		return params{}, ErrBurst
	}
	iv := int64(math.Round(1e9 / rate))
	return params{interval: iv, tau: iv * int64(burst)}, nil
}

// allow runs one GCRA step on tat. It returns the new arrival time and
// whether the event conforms.
func (p *params) allow(tat, now int64) (int64, bool) {
	t := max(tat, now) + p.interval
	if t-now > p.tau {
		return tat, false
	}
	return t, true
}

// Bucket is one token bucket: Rate tokens per second, at most Burst stored.
// A new Bucket is full. It is safe for concurrent use and does not allocate.
type Bucket struct {
	tat atomic.Int64
	p   atomic.Pointer[params]
}

// NewBucket returns a full bucket refilled at rate tokens per second and
// holding at most burst.
func NewBucket(rate float64, burst uint32) (*Bucket, error) {
	b := &Bucket{}
	if err := b.SetLimit(rate, burst); err != nil {
		return nil, err
	}
	return b, nil
}

// SetLimit changes the rate and burst, keeping the bucket's state. It is
// safe to call while other goroutines call Allow; it allocates.
func (b *Bucket) SetLimit(rate float64, burst uint32) error {
	p, err := newParams(rate, burst)
	if err != nil {
		return err
	}
	b.p.Store(&p)
	return nil
}

// Allow takes one token at time now (nanoseconds on any clock that does not
// go backwards much) and reports whether there was one.
func (b *Bucket) Allow(now int64) bool {
	p := b.p.Load()
	for {
		tat := b.tat.Load()
		t, ok := p.allow(tat, now)
		if !ok {
			return false
		}
		if b.tat.CompareAndSwap(tat, t) {
			return true
		}
	}
}

// slot is one bucket of a PerSource table and the prefix that owns it, as
// two words (k1 is 0 for IPv4).
type slot struct {
	mu     sync.Mutex
	v6     bool
	k0, k1 uint64
	tat    int64
}

// A slot that was never used has a zero key and tat; a source whose masked
// prefix is all zeros finds it full, like any new prefix.

// PerSource is a fixed-size table of token buckets keyed by source prefix.
// It is safe for concurrent use; Allow does not allocate. Memory is
// Slots()*~48 bytes, fixed at construction.
type PerSource struct {
	slots  []slot
	mask   uint64
	seed   [3]uint64
	p      atomic.Pointer[params]
	mask4  uint64    // the IPv4 prefix mask over the address's first word
	mask6  [2]uint64 // the IPv6 prefix mask over the address's two words
	prefix [2]int
}

// NewPerSource returns a table of at least slots buckets (rounded up to a
// power of two), each refilled at rate tokens per second and holding at most
// burst. Sources are grouped by their first prefix4 bits (IPv4, 16..32) or
// prefix6 bits (IPv6, 48..128).
func NewPerSource(slots int, rate float64, burst uint32, prefix4, prefix6 int) (*PerSource, error) {
	if slots < 1 || slots > 1<<26 {
		return nil, fmt.Errorf("limit: %d slots out of range (allowed 1..64Mi)", slots)
	}
	if prefix4 < 16 || prefix4 > 32 {
		return nil, fmt.Errorf("limit: IPv4 prefix /%d out of range (allowed 16..32)", prefix4)
	}
	if prefix6 < 48 || prefix6 > 128 {
		return nil, fmt.Errorf("limit: IPv6 prefix /%d out of range (allowed 48..128)", prefix6)
	}
	n := 1 << bits.Len(uint(slots-1))
	s := &PerSource{slots: make([]slot, n), mask: uint64(n - 1), prefix: [2]int{prefix4, prefix6}}
	for i := range s.seed {
		s.seed[i] = rand.Uint64()
	}
	m4, m6 := prefixMask(prefix4), prefixMask(prefix6)
	s.mask4 = uint64(binary.LittleEndian.Uint32(m4[:4]))
	s.mask6 = [2]uint64{binary.LittleEndian.Uint64(m6[:8]), binary.LittleEndian.Uint64(m6[8:])}
	if err := s.SetLimit(rate, burst); err != nil {
		return nil, err
	}
	return s, nil
}

func prefixMask(bits int) [16]byte {
	var m [16]byte
	for i := range m {
		switch {
		case bits >= 8:
			m[i] = 0xff
			bits -= 8
		case bits > 0:
			m[i] = ^byte(0xff >> bits)
			bits = 0
		}
	}
	return m
}

// mix folds the 128-bit product of a and b (as in wyhash).
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// SetLimit changes the rate and burst of every bucket, keeping their state.
// It is safe to call while other goroutines call Allow.
func (s *PerSource) SetLimit(rate float64, burst uint32) error {
	p, err := newParams(rate, burst)
	if err != nil {
		return err
	}
	s.p.Store(&p)
	return nil
}

// Slots returns the number of buckets, fixed at construction.
func (s *PerSource) Slots() int { return len(s.slots) }

// Prefixes returns the IPv4 and IPv6 prefix lengths sources are grouped by.
func (s *PerSource) Prefixes() (prefix4, prefix6 int) { return s.prefix[0], s.prefix[1] }

// Allow takes one token from the bucket of src's prefix at time now
// (nanoseconds) and reports whether there was one. src holds an IPv4
// address in its first 4 bytes (the rest ignored) unless v6.
//
// The prefix is masked and hashed a word at a time. The hash is a seeded
// multiply-fold mix: it must keep senders from aiming at a slot they cannot
// see, and a collision only hands a prefix a full bucket (see the package
// documentation), so it needs to be unpredictable, not a PRF.
func (s *PerSource) Allow(src [16]byte, v6 bool, now int64) bool {
	var k0, k1, fam uint64
	if v6 {
		k0 = binary.LittleEndian.Uint64(src[0:]) & s.mask6[0]
		k1 = binary.LittleEndian.Uint64(src[8:]) & s.mask6[1]
		fam = 1
	} else {
		k0 = uint64(binary.LittleEndian.Uint32(src[0:])) & s.mask4
	}
	h := mix(mix(k0^s.seed[0], k1^s.seed[1]), s.seed[2]^fam)
	sl := &s.slots[h&s.mask]
	p := s.p.Load()
	sl.mu.Lock()
	if sl.k0 != k0 || sl.k1 != k1 || sl.v6 != v6 {
		// A new prefix takes the slot over with a full bucket.
		sl.k0, sl.k1, sl.v6, sl.tat = k0, k1, v6, math.MinInt64/2
	}
	t, ok := p.allow(sl.tat, now)
	sl.tat = t
	sl.mu.Unlock()
	return ok
}
