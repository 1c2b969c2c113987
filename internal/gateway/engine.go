package gateway

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

// Config sets up an Engine. Zero sizes and timeouts take their value from
// Policy.Tables, and then from the defaults below.
type Config struct {
	Policy *policy.Policy
	// Cookies makes and checks the SYN cookies. When nil, New makes a Jar
	// with Policy.Tables.CookiePeriod, Rand and Start.
	Cookies *cookies.Jar
	// Start is the time used to set up a Jar made by New; zero means now.
	Start time.Time

	CacheBuckets int // SYN cache buckets, rounded up to a power of two
	CacheEntries int // entries per bucket
	// CacheMemory, when set, holds the SYN cache (see CacheMemory): the
	// BPF SYN stage's maps, so that the entries it writes for the SYNs it
	// answers serve the engine's handshake ACKs. It must hold the cache's
	// size (CacheBuckets rounded up, CacheEntries).
	CacheMemory *CacheMemory
	Flows       int // flow table capacity, rounded up to a multiple of FlowBucketSize

	HandshakeTimeout time.Duration // SynSent flow without the server's SYN-ACK
	IdleTimeout      time.Duration // established flow without packets
	Linger           time.Duration // after FIN both ways, or RST
	SynRetransmit    time.Duration // resend the server SYN when client data comes after this

	// PendingSlots is how many client segments can be held, over all flows,
	// while the server side is coming up; each holds up to PendingSize bytes
	// of payload.
	PendingSlots int

	// LimitSlots is the size of the per-source SYN limiter table of each
	// service that has a limit (Service.Limit); the global SYN-ACK limit
	// comes from Policy.Limits. A refused SYN is dropped with
	// EventSynLimited; sources in Policy.Allow skip the per-source limit.
	LimitSlots int

	// Rand seeds the cookie keys of a Jar made by New and the flow hash;
	// nil means crypto/rand.
	Rand io.Reader
}

// Defaults used when neither Config nor Policy.Tables set a value.
const (
	DefaultCacheBuckets     = 512 // FreeBSD syncache
	DefaultCacheEntries     = 30
	DefaultFlows            = 1 << 16
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultIdleTimeout      = 15 * time.Minute
	DefaultLinger           = 10 * time.Second
	DefaultSynRetransmit    = time.Second
	DefaultPendingSlots     = 1024
	// PendingSize is the largest payload held for a flow in SynSent.
	PendingSize = 2048
	// MaxPendingPerFlow is how many segments one flow may hold.
	MaxPendingPerFlow = 4
)

// Engine holds the state shared by all workers: cookie keys, SYN cache, flow
// table, policy and counters. It is safe for concurrent use; each goroutine
// uses its own Worker.
type Engine struct {
	cur        atomic.Pointer[active]
	limitSlots int
	jar        *cookies.Jar
	period     int64 // cookie period, ns

	cache   synCache
	flows   flowTable
	pending pendingPool

	hsTimeout  int64
	idle       int64
	linger     int64
	synRetrans int64

	st counters

	mu      sync.Mutex
	workers []*packetCounters
}

// packetCounters are counted per worker, so that workers on different
// cores never write the same cache line; Stats sums them.
type packetCounters struct {
	// events is indexed by direction, verdict and event: one counter per
	// packet gives all three breakdowns.
	events [engine.NumDirections][engine.NumVerdicts][engine.NumEvents]atomic.Uint64
	drops  [header.NumReasons]atomic.Uint64
	_      [64]byte
}

type counters struct {
	cacheHits, cacheMisses, cacheEvictions, cacheRetransmits atomic.Uint64
	flowsActive                                              atomic.Int64
	flowsCreated, flowsExpired, flowsEvicted                 atomic.Uint64
	pendingHeld, pendingDropped                              atomic.Uint64
	synRetransmits                                           atomic.Uint64
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	Events [engine.NumEvents]uint64 // packets by what Process did
	// Packets counts packets by direction and verdict.
	Packets [engine.NumDirections][engine.NumVerdicts]uint64
	Drops   [header.NumReasons]uint64 // header-check failures by reason (let through too under policy.InvalidFlagsCount)

	CacheHits        uint64 // handshake ACKs that found their SYN cache entry
	CacheMisses      uint64 // handshake ACKs checked by cookie alone
	CacheEvictions   uint64 // live entries pushed out of a full bucket
	CacheRetransmits uint64 // repeated SYNs answered from the cache

	FlowsActive  int64
	FlowsCreated uint64
	FlowsExpired uint64 // idle, lingering or handshake timed out
	FlowsEvicted uint64 // pushed out of a full bucket

	PendingHeld    uint64 // client segments held during the handshake
	PendingDropped uint64 // client segments that found no room (the client resends)
	SynRetransmits uint64 // SYNs resent to a server
}

// New builds an engine. All of its memory is allocated here.
func New(cfg Config) (*Engine, error) {
	if cfg.Policy == nil {
		return nil, errors.New("gateway: Config.Policy is nil")
	}
	t := cfg.Policy.Tables
	pick := func(c, p, d int) int {
		switch {
		case c > 0:
			return c
		case p > 0:
			return p
		}
		return d
	}
	pickD := func(c, p, d time.Duration) int64 {
		switch {
		case c > 0:
			return int64(c)
		case p > 0:
			return int64(p)
		}
		return int64(d)
	}
	buckets := pick(cfg.CacheBuckets, t.CacheBuckets, DefaultCacheBuckets)
	entries := pick(cfg.CacheEntries, t.CacheEntries, DefaultCacheEntries)
	flows := pick(cfg.Flows, t.Flows, DefaultFlows)
	slots := pick(cfg.PendingSlots, 0, DefaultPendingSlots)
	if buckets > 1<<24 || entries > 1024 || flows > 1<<28 || slots > 1<<20 {
		return nil, fmt.Errorf("gateway: table sizes out of range (cache %d×%d, flows %d, pending %d)", buckets, entries, flows, slots)
	}
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	e := &Engine{
		jar:        cfg.Cookies,
		hsTimeout:  pickD(cfg.HandshakeTimeout, t.HandshakeTimeout, DefaultHandshakeTimeout),
		idle:       pickD(cfg.IdleTimeout, t.IdleTimeout, DefaultIdleTimeout),
		linger:     pickD(cfg.Linger, t.Linger, DefaultLinger),
		synRetrans: pickD(cfg.SynRetransmit, 0, DefaultSynRetransmit),
		period:     pickD(0, t.CookiePeriod, cookies.DefaultPeriod),
		limitSlots: pick(cfg.LimitSlots, 0, DefaultLimitSlots),
	}
	if e.jar == nil {
		start := cfg.Start
		if start.IsZero() {
			start = time.Now()
		}
		jar, err := cookies.New(cookies.Config{Period: time.Duration(e.period), Rand: rnd}, start)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		e.jar = jar
	}
	e.period = int64(e.jar.Period()) // the jar's period rules, however made
	if err := e.cache.init(buckets, entries, cfg.CacheMemory); err != nil {
		return nil, err
	}
	var seed [32]byte
	if _, err := io.ReadFull(rnd, seed[:]); err != nil {
		return nil, fmt.Errorf("gateway: flow table seed: %w", err)
	}
	var fs [4]uint64
	for i := range fs {
		fs[i] = binary.LittleEndian.Uint64(seed[8*i:]) | 1 // odd: never a zero factor
	}
	e.flows.init(flows, fs)
	e.flows.grain = min(maxSeenGrain, e.idle/2)
	e.pending.init(slots)
	a, err := buildActive(cfg.Policy, nil, e.limitSlots)
	if err != nil {
		return nil, err
	}
	e.cur.Store(a)
	return e, nil
}

// SetPolicy swaps the policy atomically. Flows and the SYN cache survive;
// table sizes and timeouts keep the values the engine was built with. Rate
// limiters are rebuilt from the new policy, keeping the state of those whose
// service and prefix lengths did not change. A policy whose limits cannot be
// built is an error and the old policy stays.
func (e *Engine) SetPolicy(p *policy.Policy) error {
	if p == nil {
		return errors.New("gateway: nil policy")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	a, err := buildActive(p, e.cur.Load(), e.limitSlots)
	if err != nil {
		return err
	}
	e.cur.Store(a)
	return nil
}

// Policy returns the policy in use.
func (e *Engine) Policy() *policy.Policy { return e.cur.Load().pol }

// FlowSeed returns the seed of the engine's tuple hash, which names the
// tuple of a SYN-cache entry (cacheEntry.fp). A writer of shared cache
// memory needs it to write entries the engine finds; it is as secret as
// the cookie keys.
func (e *Engine) FlowSeed() [4]uint64 { return e.flows.seed }

// Jar returns the cookie jar the engine uses.
func (e *Engine) Jar() *cookies.Jar { return e.jar }

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	var s Stats
	e.mu.Lock()
	for _, c := range e.workers {
		for d := range c.events {
			for v := range c.events[d] {
				for i := range c.events[d][v] {
					n := c.events[d][v][i].Load()
					s.Events[i] += n
					s.Packets[d][v] += n
				}
			}
		}
		for i := range s.Drops {
			s.Drops[i] += c.drops[i].Load()
		}
	}
	e.mu.Unlock()
	s.CacheHits = e.st.cacheHits.Load()
	s.CacheMisses = e.st.cacheMisses.Load()
	s.CacheEvictions = e.st.cacheEvictions.Load()
	s.CacheRetransmits = e.st.cacheRetransmits.Load()
	s.FlowsActive = e.st.flowsActive.Load()
	s.FlowsCreated = e.st.flowsCreated.Load()
	s.FlowsExpired = e.st.flowsExpired.Load()
	s.FlowsEvicted = e.st.flowsEvicted.Load()
	s.PendingHeld = e.st.pendingHeld.Load()
	s.PendingDropped = e.st.pendingDropped.Load()
	s.SynRetransmits = e.st.synRetransmits.Load()
	return s
}

// Sizes reports the fixed capacities chosen at construction.
func (e *Engine) Sizes() (cacheBuckets, cacheEntries, flows, pendingSlots int) {
	return e.cache.nbuckets, e.cache.per, len(e.flows.slots), len(e.pending.len)
}

// Expire removes flows that are idle, lingering past their time or waiting
// too long for the server, and returns how many it removed. The daemon calls
// it about once a second; lookups already treat such flows as absent.
func (e *Engine) Expire(now time.Time) int {
	return e.flows.expire(e, now.UnixNano())
}
