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
	// FlowSeed, when not zero, seeds the tuple hash instead of a seed
	// drawn from Rand: an engine that adopts a shared SYN cache written
	// before a graceful restart hashes tuples as the entries were named
	// (FlowSeed of the earlier engine; see Engine.FlowSeed).
	FlowSeed [4]uint64
	Flows    int // flow table capacity, rounded up to a multiple of FlowBucketSize
	// FlowTagMemory, when set, holds the flow table's slot tags
	// (FlowTagSize bytes per slot, exactly FlowSlots(Flows) slots, 4-byte
	// aligned): the BPF SYN stage's map, so that the stage can tell a SYN
	// on the tuple of a flow the engine holds and leave it to the engine.
	// New clears it.
	FlowTagMemory []byte

	HandshakeTimeout time.Duration // SynSent flow without the server's SYN-ACK
	IdleTimeout      time.Duration // established flow without packets
	Linger           time.Duration // after FIN both ways, or RST
	SynRetransmit    time.Duration // resend the server SYN when client data comes after this

	// FlowsPerSource is the most flows one source (an IPv4 address, an
	// IPv6 /64) may have at once; a handshake beyond it is refused
	// (EventSynLimited, Stats.FlowQuotaRefused). Zero means Flows/64, at
	// least 16.
	FlowsPerSource int

	// PendingSlots is how many client segments can be held, over all flows,
	// while the server side is coming up; each holds up to PendingSize bytes
	// of payload.
	PendingSlots int

	// SynAckLimiter, when set, keeps the global SYN-ACK limit
	// (Policy.Limits) outside the engine: the BPF SYN stage's budget,
	// which the stage charges too, so that the two send no more than the
	// limit together. While it is not in force the engine's own bucket
	// applies.
	SynAckLimiter SynAckLimiter

	// LimitSlots is the size of the per-source SYN limiter table of each
	// service that has a limit (Service.Limit); the global SYN-ACK limit
	// comes from Policy.Limits. A refused SYN is dropped with
	// EventSynLimited; sources in Policy.Allow skip the per-source limit.
	LimitSlots int

	// Rand seeds the cookie keys of a Jar made by New and the flow hash;
	// nil means crypto/rand.
	Rand io.Reader
}

// SynAckLimiter is a global SYN-ACK budget shared with another sender of
// SYN-ACKs (Config.SynAckLimiter). AllowSynAck takes one SYN-ACK; inForce
// false means the budget does not apply now (the engine's own bucket
// does). It must not allocate.
type SynAckLimiter interface {
	AllowSynAck() (allowed, inForce bool)
}

// Defaults used when neither Config nor Policy.Tables set a value: the
// policy's (package policy owns them).
const (
	DefaultCacheBuckets     = policy.DefaultCacheBuckets // FreeBSD syncache
	DefaultCacheEntries     = policy.DefaultCacheEntries
	DefaultFlows            = policy.DefaultFlows
	DefaultHandshakeTimeout = policy.DefaultHandshakeTimeout
	DefaultIdleTimeout      = policy.DefaultIdleTimeout
	DefaultLinger           = policy.DefaultLinger
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
	period     int64  // cookie period, ns
	pinMs      uint32 // how long a pinned SYN cache entry is kept: a cookie's lifetime, ms

	cache        synCache
	flows        flowTable     // with its timeouts, counters and pending pool
	synAckShared SynAckLimiter // nil: the engine's own bucket
	synRetrans   int64

	st counters

	mu      sync.Mutex
	workers []*packetCounters

	// ExpireAndTell's packets: two RSTs for each flow of a bucket.
	expMu   sync.Mutex
	expBufs [2 * FlowBucketSize][ipv6Len + tcpLen]byte
	expPkts [2 * FlowBucketSize][]byte
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

// counters are the handshake's and the resets'; the flow table keeps its
// own.
type counters struct {
	cacheHits, cacheMisses, cacheEvictions, cacheRetransmits atomic.Uint64
	cacheFull                                                atomic.Uint64
	synRetransmits                                           atomic.Uint64
	handshakesLimited                                        atomic.Uint64
	resetsOutOfWindow, resetsInWindow, resetsExact           atomic.Uint64
	serverResyncs                                            atomic.Uint64
	serverLacks                                              [NumServerLacks]atomic.Uint64
	outboundFlows                                            atomic.Uint64
	idleResets                                               atomic.Uint64
	icmpTranslated                                           atomic.Uint64
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

	// CacheFull counts SYNs answered without a cache entry because every
	// entry of their bucket was pinned (a client without timestamps that
	// was offered window scaling, SACK or ECN keeps its entry until its
	// cookie expires): such a SYN-ACK offers a client without timestamps
	// none of them.
	CacheFull uint64

	FlowsActive  int64
	FlowsCreated uint64
	FlowsExpired uint64 // idle, lingering or handshake timed out
	FlowsEvicted uint64 // pushed out of a full bucket: the sum of the four below
	// Evictions by what was pushed out: closing flows go first, then
	// handshakes, then established flows (both ends get an RST) and
	// servers' outbound connections.
	FlowsEvictedClosing, FlowsEvictedHandshake, FlowsEvictedEstablished, FlowsEvictedOutbound uint64
	// FlowQuotaRefused counts handshakes refused because their source had
	// Config.FlowsPerSource flows; HandshakesLimited those refused by a
	// rate limit (the service's per-source limit, the global one).
	FlowQuotaRefused, HandshakesLimited uint64
	// Resets of established flows by how they fit the receiver's window
	// (RFC 5961 §3.2): outside (dropped), in window but not exact (passed
	// on; the flow closes but reopens if the receiver answers), exact
	// (passed on; the flow closes).
	ResetsOutOfWindow, ResetsInWindow, ResetsExact uint64
	// ServerResyncs counts servers that answered our SYN with an ACK of an
	// older connection on the tuple and got an RST and a new SYN.
	ServerResyncs uint64
	// OutboundFlows counts connections opened by guarded servers
	// themselves, passed untouched.
	OutboundFlows uint64
	// IdleResets counts RSTs sent to the ends of flows expired for
	// idleness (Engine.ExpireAndTell), one per answer to our probe.
	IdleResets uint64
	// ICMPTranslated counts ICMP errors toward a server whose quoted
	// sequence number was moved back into the server's space (icmp.go).
	ICMPTranslated uint64
	// ServerLacks counts servers' SYN-ACKs without an option that our
	// SYN-ACK had agreed to with the client on their behalf (the policy
	// advertises more than the server does, or the server changed since
	// discover), by option. Window scale is converted both ways, and SACK
	// and ECN are left unused by the server; timestamps the client then
	// sends are passed on unanswered, and the server's segments come
	// without the ones the client expects (Linux takes them; RFC 7323 §3.2
	// lets a stricter client drop them): fix the policy.
	ServerLacks [NumServerLacks]uint64

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
		synRetrans: pickD(cfg.SynRetransmit, 0, DefaultSynRetransmit),
		period:     pickD(0, t.CookiePeriod, cookies.DefaultPeriod),
		limitSlots: pick(cfg.LimitSlots, 0, DefaultLimitSlots),

		synAckShared: cfg.SynAckLimiter,
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
	// A cookie is accepted in its period and the next (cookies.Jar.Check).
	e.pinMs = uint32(min(2*e.period/int64(time.Millisecond)+tsSlack, 1<<31))
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
		if cfg.FlowSeed != ([4]uint64{}) {
			fs[i] = cfg.FlowSeed[i] | 1
		}
	}
	if err := e.flows.init(flows, slots, fs, cfg.FlowTagMemory); err != nil {
		return nil, err
	}
	e.flows.hsTimeout = pickD(cfg.HandshakeTimeout, t.HandshakeTimeout, DefaultHandshakeTimeout)
	e.flows.idle = pickD(cfg.IdleTimeout, t.IdleTimeout, DefaultIdleTimeout)
	e.flows.linger = pickD(cfg.Linger, t.Linger, DefaultLinger)
	e.flows.grain = min(maxSeenGrain, e.flows.idle/2)
	if cfg.FlowsPerSource > 0 {
		e.flows.quota = int32(min(cfg.FlowsPerSource, 1<<30))
	}
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

// CachePinMs returns how long a pinned SYN cache entry is kept, in
// milliseconds (a cookie's lifetime): a writer of shared cache memory
// passes over pins younger than that (CacheMemory.Pins).
func (e *Engine) CachePinMs() uint32 { return e.pinMs }

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
	fs := &e.flows.st
	s.FlowsActive = fs.active.Load()
	s.FlowsCreated = fs.created.Load()
	s.FlowsExpired = fs.expired.Load()
	s.FlowsEvictedClosing = fs.evicted[evictClosing].Load()
	s.FlowsEvictedHandshake = fs.evicted[evictHandshake].Load()
	s.FlowsEvictedEstablished = fs.evicted[evictEstablished].Load()
	s.FlowsEvictedOutbound = fs.evicted[evictOutbound].Load()
	s.FlowsEvicted = s.FlowsEvictedClosing + s.FlowsEvictedHandshake + s.FlowsEvictedEstablished + s.FlowsEvictedOutbound
	s.FlowQuotaRefused = fs.quotaRefused.Load()
	s.HandshakesLimited = e.st.handshakesLimited.Load()
	s.CacheFull = e.st.cacheFull.Load()
	s.ResetsOutOfWindow = e.st.resetsOutOfWindow.Load()
	s.ResetsInWindow = e.st.resetsInWindow.Load()
	s.ResetsExact = e.st.resetsExact.Load()
	s.ServerResyncs = e.st.serverResyncs.Load()
	s.OutboundFlows = e.st.outboundFlows.Load()
	s.IdleResets = e.st.idleResets.Load()
	s.ICMPTranslated = e.st.icmpTranslated.Load()
	for i := range s.ServerLacks {
		s.ServerLacks[i] = e.st.serverLacks[i].Load()
	}
	s.PendingHeld = fs.pendingHeld.Load()
	s.PendingDropped = fs.pendingDropped.Load()
	s.SynRetransmits = e.st.synRetransmits.Load()
	return s
}

// Expire removes flows that are idle, lingering past their time or waiting
// too long for the server, and returns how many it removed. The daemon calls
// it about once a second; lookups already treat such flows as absent.
func (e *Engine) Expire(now time.Time) int {
	return e.flows.expire(now.UnixNano(), nil)
}

// ExpireAndTell is Expire that also tells both ends of every established
// flow it expires for idleness, instead of leaving them to find out when
// their next segment is dropped. What the flow tracked may miss the last
// millisecond of a side's segments (flow.track), and an RST must carry
// exactly the sequence number its receiver expects (RFC 5961 §3.2), so
// each end first gets an ACK probe with a sequence number just behind
// what it has received (a keepalive, RFC 9293 §3.8.4), which it answers
// with an ACK naming its RCV.NXT; the flow lingers, and each end's answer
// gets an RST at that number (RFC 9293 §3.10.7.4: <SEQ=SEG.ACK>). The
// probes go to send a few at a time (it must not keep them). Calls must not
// overlap.
func (e *Engine) ExpireAndTell(now time.Time, send func(pkts [][]byte)) int {
	e.expMu.Lock()
	defer e.expMu.Unlock()
	return e.flows.expire(now.UnixNano(), func(evs []evicted) {
		n := 0
		for i := range evs {
			ev := &evs[i]
			e.expPkts[n] = buildProbe(e.expBufs[n][:], &ev.tuple, true, ev.toClientSeq-1, ev.toServerSeq)
			e.expPkts[n+1] = buildProbe(e.expBufs[n+1][:], &ev.tuple, false, ev.toServerSeq-1, ev.toClientSeq-ev.delta)
			n += 2
		}
		send(e.expPkts[:n])
	})
}
