package observe

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dchest/siphash"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

var _ engine.Processor = (*Worker)(nil)

// Source prefix lengths of the heavy-hitter tables.
const (
	Prefix4 = 24
	Prefix6 = 48
)

// Defaults of Config.
const (
	DefaultTopK         = 64
	DefaultTopEvery     = 8
	DefaultLatencyEvery = 64
)

// Config sets up an Observer. Zero values take the defaults.
type Config struct {
	// TopK is the number of entries of each heavy-hitter table of each
	// worker.
	TopK int
	// TopEvery feeds 1 packet in TopEvery of a worker to the heavy-hitter
	// tables (at keyed pseudo-random positions, see Worker.sampled); counts are scaled back
	// up. 1 feeds every packet; but a flood from spread sources misses
	// the tables on every packet, and each miss scans a table twice
	// (BenchmarkProcessSpread), so the default feeds 1 in 8.
	TopEvery int
	// LatencyEvery times 1 call in LatencyEvery of the wrapped processor.
	LatencyEvery int
	// Sampler, when non-nil, is offered every dropped packet.
	Sampler *Sampler
	// Clock measures processing time; time.Now when nil. (Packet times
	// come with each packet.)
	Clock func() time.Time
	// Rand keys the distinct-source hash; crypto/rand when nil.
	Rand io.Reader
	// ServiceOf, when non-nil, names the service of a rate-limited SYN's
	// destination (address of 4 or 16 bytes, port) as an index below
	// MaxServices, or -1; Snapshot.Limited counts such drops by index. It
	// is called for rate-limited packets only and must not allocate.
	ServiceOf func(addr []byte, port uint16) int
}

// MaxServices bounds the indexes of Config.ServiceOf; larger ones are
// counted at MaxServices (Snapshot.Limited's last element).
const MaxServices = 256

// Observer holds the per-worker state of every Worker it made and merges it.
type Observer struct {
	cfg    Config
	k0, k1 uint64

	mu      sync.Mutex
	workers []*Worker
	start   time.Time // of the current window
	last    *WindowReport
}

// New returns an observer whose window starts at now.
func New(cfg Config, now time.Time) (*Observer, error) {
	if cfg.TopK == 0 {
		cfg.TopK = DefaultTopK
	}
	if cfg.TopEvery == 0 {
		cfg.TopEvery = DefaultTopEvery
	}
	if cfg.LatencyEvery == 0 {
		cfg.LatencyEvery = DefaultLatencyEvery
	}
	if cfg.TopK < 1 || cfg.TopK > 4096 || cfg.TopEvery < 1 || cfg.LatencyEvery < 1 {
		return nil, fmt.Errorf("observe: settings out of range (top %d in 1..4096, every %d >= 1, latency every %d >= 1)", cfg.TopK, cfg.TopEvery, cfg.LatencyEvery)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	var key [16]byte
	if _, err := io.ReadFull(cfg.Rand, key[:]); err != nil {
		return nil, fmt.Errorf("observe: hash key: %w", err)
	}
	return &Observer{
		cfg: cfg,
		k0:  binary.LittleEndian.Uint64(key[0:]), k1: binary.LittleEndian.Uint64(key[8:]),
		start: now,
	}, nil
}

// Sampler returns the sampler given in Config, or nil.
func (o *Observer) Sampler() *Sampler { return o.cfg.Sampler }

// classState counts one class (or SYNs answered) in the current window.
type classState struct {
	window, total uint64
	sources       bitmap
}

// tables are the heavy-hitter tables of one worker.
type tables struct {
	svcAnswered, svcDropped, pfxAnswered, pfxDropped topK
}

// Worker wraps the processor of one queue worker. It is used by one
// goroutine, like the processor it wraps.
type Worker struct {
	next engine.Processor
	o    *Observer
	n    uint64 // calls, for latency sampling
	tick uint64 // recorded packets, for heavy-hitter sampling

	mu       sync.Mutex // guards what follows against Snapshot and Rotate
	classes  [NumClasses]classState
	answered classState
	top      tables

	lat     latency
	limited [MaxServices + 1]atomic.Uint64
	addrBuf [16]byte
}

// ErrNilProcessor is returned by Wrap for a nil processor.
var ErrNilProcessor = errors.New("observe: nil processor")

// Wrap returns a Worker that passes every packet to p and records the
// outcome. Its memory (about 60 KB plus the tables) is allocated here.
func (o *Observer) Wrap(p engine.Processor) (*Worker, error) {
	if p == nil {
		return nil, ErrNilProcessor
	}
	k := o.cfg.TopK
	w := &Worker{next: p, o: o, top: tables{newTopK(k), newTopK(k), newTopK(k), newTopK(k)}}
	o.mu.Lock()
	o.workers = append(o.workers, w)
	o.mu.Unlock()
	return w, nil
}

// Process passes the packet to the wrapped processor and records what it
// decided. It does not allocate.
func (w *Worker) Process(pkt []byte, meta engine.Meta, now time.Time, r *engine.Result) {
	w.n++
	if w.n%uint64(w.o.cfg.LatencyEvery) == 0 {
		t0 := w.o.cfg.Clock()
		w.next.Process(pkt, meta, now, r)
		w.lat.add(w.o.cfg.Clock().Sub(t0))
	} else {
		w.next.Process(pkt, meta, now, r)
	}
	c := ClassOf(r)
	switch {
	case c != ClassInvalid:
		w.record(pkt, c, now)
	case r.Event == engine.EventSynAnswered:
		w.record(pkt, ClassInvalid, now)
	}
}

// addrs reads the source and destination of an IP packet, and the
// destination port of TCP right after the fixed header (header.Peek); ok is
// false when the packet is too short for even the addresses.
func addrs(pkt []byte) (src, dst hhKey, ok bool) {
	var f header.Fixed
	if !header.Peek(pkt, &f) {
		return src, dst, false
	}
	s, d := f.Src(pkt), f.Dst(pkt)
	if f.V6 {
		src = hhKey{a0: binary.BigEndian.Uint64(s[0:8]), a1: binary.BigEndian.Uint64(s[8:16]), v6: true}
		dst = hhKey{a0: binary.BigEndian.Uint64(d[0:8]), a1: binary.BigEndian.Uint64(d[8:16]), v6: true}
	} else {
		src.a0 = uint64(binary.BigEndian.Uint32(s[0:4])) << 32
		dst.a0 = uint64(binary.BigEndian.Uint32(d[0:4])) << 32
	}
	if f.Ports {
		dst.port = f.DstPort
	}
	return src, dst, true
}

// prefixOf masks a source address to its heavy-hitter prefix.
func prefixOf(k hhKey) hhKey {
	if k.v6 {
		return hhKey{a0: k.a0 &^ (1<<(64-Prefix6) - 1), v6: true}
	}
	return hhKey{a0: k.a0 &^ (1<<(64-Prefix4) - 1)}
}

// record counts a dropped packet of class c, or a SYN answered when c is
// ClassInvalid.
func (w *Worker) record(pkt []byte, c Class, now time.Time) {
	src, dst, ok := addrs(pkt)
	var h uint64
	if ok {
		var b [17]byte
		binary.BigEndian.PutUint64(b[0:], src.a0)
		binary.BigEndian.PutUint64(b[8:], src.a1)
		if src.v6 {
			b[16] = 1
		}
		h = siphash.Hash(w.o.k0, w.o.k1, b[:])
	}
	w.tick++
	feed := ok && w.sampled(w.tick)
	w.mu.Lock()
	cs, svc, pfx := &w.answered, &w.top.svcAnswered, &w.top.pfxAnswered
	if c != ClassInvalid {
		cs, svc, pfx = &w.classes[c], &w.top.svcDropped, &w.top.pfxDropped
	}
	cs.window++
	cs.total++
	cs.sources.add(h)
	if feed {
		svc.add(dst, 1)
		pfx.add(prefixOf(src), 1)
	}
	w.mu.Unlock()
	if c == ClassRateLimited && ok && w.o.cfg.ServiceOf != nil {
		b := &w.addrBuf // a local array would escape to ServiceOf
		binary.BigEndian.PutUint64(b[0:], dst.a0)
		binary.BigEndian.PutUint64(b[8:], dst.a1)
		n := 4
		if dst.v6 {
			n = 16
		}
		if i := w.o.cfg.ServiceOf(b[:n], dst.port); i >= 0 {
			w.limited[min(i, MaxServices)].Add(1)
		}
	}
	if c != ClassInvalid && w.o.cfg.Sampler != nil {
		w.o.cfg.Sampler.Offer(pkt, c, now)
	}
}

// sampled says whether the n-th recorded packet of the worker feeds the
// heavy-hitter tables: one in TopEvery, at positions drawn from a keyed mix
// of n (SplitMix64's finalizer over n under the observer's secret), so that
// no sender can line its packets up with the samples (a fixed "every
// TopEvery-th" would let two alternating sources hide one of them).
func (w *Worker) sampled(n uint64) bool {
	z := w.o.k1 + n*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return z%uint64(w.o.cfg.TopEvery) == 0
}

// latency is a histogram of processing times with power-of-two buckets.
type latency struct {
	buckets [LatencyBuckets]atomic.Uint64
	sum     atomic.Uint64 // ns
}

// LatencyBuckets is the number of histogram buckets; bucket i counts times
// up to LatencyBound(i), the last one everything longer.
const LatencyBuckets = 14

// LatencyBound returns the upper bound of bucket i: 64 ns·2^i.
func LatencyBound(i int) time.Duration { return time.Duration(64) << i }

func (l *latency) add(d time.Duration) {
	i := 0
	for i < LatencyBuckets-1 && d > LatencyBound(i) {
		i++
	}
	l.buckets[i].Add(1)
	l.sum.Add(uint64(max(d, 0)))
}

// Latency is a histogram of per-packet processing times.
type Latency struct {
	Counts [LatencyBuckets]uint64 // by bucket, not cumulative
	Sum    time.Duration
}

// Count is the number of timed calls.
func (l Latency) Count() uint64 {
	var n uint64
	for _, c := range l.Counts {
		n += c
	}
	return n
}

// Service is a destination address and port with an estimated count.
type Service struct {
	Service  netip.AddrPort `json:"service"`
	Count    uint64         `json:"count"`     // an overestimate, by at most MaxError
	MaxError uint64         `json:"max_error"` // Space-Saving error bound
}

// Prefix is a source prefix with an estimated count.
type Prefix struct {
	Prefix   netip.Prefix `json:"prefix"`
	Count    uint64       `json:"count"`
	MaxError uint64       `json:"max_error"`
}

// ClassCount is what one drop class (or SYNs answered) saw.
type ClassCount struct {
	Class   string   `json:"class"`
	Count   uint64   `json:"count"`           // in the window
	Total   uint64   `json:"total,omitempty"` // since start (snapshots only)
	Sources Estimate `json:"sources"`         // distinct source addresses in the window
}

// Top are the heavy hitters.
type Top struct {
	ServicesAnswered []Service `json:"services_answered"`
	ServicesDropped  []Service `json:"services_dropped"`
	PrefixesAnswered []Prefix  `json:"prefixes_answered"`
	PrefixesDropped  []Prefix  `json:"prefixes_dropped"`
}

// WindowReport is what one window saw. Classes lists only classes with
// packets, in Class order.
type WindowReport struct {
	Start    time.Time     `json:"start"`
	Length   time.Duration `json:"length_ns"`
	Answered ClassCount    `json:"syn_answered"`
	Classes  []ClassCount  `json:"drops"`
	Top      Top           `json:"top"`
}

// Snapshot is the observer's state now: the current window so far, totals
// since start, the heavy hitters, the last complete window, the sampler and
// the processing times.
type Snapshot struct {
	Current WindowReport  `json:"current"`
	Last    *WindowReport `json:"last,omitempty"`
	Sampler *SamplerStats `json:"pcap,omitempty"`
	Latency Latency       `json:"-"`
	// Limited counts rate-limited SYNs since start by Config.ServiceOf's
	// index (nil without ServiceOf).
	Limited []uint64 `json:"-"`
}

// TopN is how many heavy hitters reports list.
const TopN = 10

// merge sums the workers' state; with reset it also starts a new window.
func (o *Observer) merge(now time.Time, reset bool) WindowReport {
	o.mu.Lock()
	defer o.mu.Unlock()
	var classes [NumClasses]classState
	var answered classState
	m := [4]hhMerge{{}, {}, {}, {}}
	for _, w := range o.workers {
		w.mu.Lock()
		for c := range w.classes {
			classes[c].window += w.classes[c].window
			classes[c].total += w.classes[c].total
			classes[c].sources.or(&w.classes[c].sources)
		}
		answered.window += w.answered.window
		answered.total += w.answered.total
		answered.sources.or(&w.answered.sources)
		for i, t := range []*topK{&w.top.svcAnswered, &w.top.svcDropped, &w.top.pfxAnswered, &w.top.pfxDropped} {
			m[i].add(t)
			if reset {
				t.decay()
			}
		}
		if reset {
			for c := range w.classes {
				w.classes[c].window = 0
				w.classes[c].sources = bitmap{}
			}
			w.answered.window = 0
			w.answered.sources = bitmap{}
		}
		w.mu.Unlock()
	}
	rep := WindowReport{Start: o.start, Length: now.Sub(o.start)}
	rep.Answered = ClassCount{Class: "syn_answered", Count: answered.window, Sources: answered.sources.estimate()}
	if !reset {
		rep.Answered.Total = answered.total
	}
	for c := ClassInvalid + 1; c < NumClasses; c++ {
		cs := &classes[c]
		if cs.window == 0 && (reset || cs.total == 0) {
			continue
		}
		cc := ClassCount{Class: c.String(), Count: cs.window, Sources: cs.sources.estimate()}
		if !reset {
			cc.Total = cs.total
		}
		rep.Classes = append(rep.Classes, cc)
	}
	scale := uint64(o.cfg.TopEvery)
	for _, e := range m[0].top(TopN, scale) {
		rep.Top.ServicesAnswered = append(rep.Top.ServicesAnswered, Service{netip.AddrPortFrom(e.key.addr(), e.key.port), e.count, e.err})
	}
	for _, e := range m[1].top(TopN, scale) {
		rep.Top.ServicesDropped = append(rep.Top.ServicesDropped, Service{netip.AddrPortFrom(e.key.addr(), e.key.port), e.count, e.err})
	}
	bitsOf := func(k hhKey) int {
		if k.v6 {
			return Prefix6
		}
		return Prefix4
	}
	for _, e := range m[2].top(TopN, scale) {
		rep.Top.PrefixesAnswered = append(rep.Top.PrefixesAnswered, Prefix{netip.PrefixFrom(e.key.addr(), bitsOf(e.key)), e.count, e.err})
	}
	for _, e := range m[3].top(TopN, scale) {
		rep.Top.PrefixesDropped = append(rep.Top.PrefixesDropped, Prefix{netip.PrefixFrom(e.key.addr(), bitsOf(e.key)), e.count, e.err})
	}
	if reset {
		o.start = now
		r := rep
		o.last = &r
	}
	return rep
}

// Rotate ends the current window at now and returns its report: per-class
// counts and distinct sources start again from zero, and the heavy-hitter
// counts are halved. The report is kept as Snapshot's Last.
func (o *Observer) Rotate(now time.Time) WindowReport { return o.merge(now, true) }

// Snapshot returns the current state without ending the window. The heavy
// hitters are decayed counts over the windows so far, most weight on the
// current one.
func (o *Observer) Snapshot(now time.Time) Snapshot {
	s := Snapshot{Current: o.merge(now, false)}
	o.mu.Lock()
	if o.last != nil {
		l := *o.last
		s.Last = &l
	}
	for _, w := range o.workers {
		for i := range w.lat.buckets {
			s.Latency.Counts[i] += w.lat.buckets[i].Load()
		}
		s.Latency.Sum += time.Duration(w.lat.sum.Load())
		if o.cfg.ServiceOf != nil {
			if s.Limited == nil {
				s.Limited = make([]uint64, MaxServices+1)
			}
			for i := range w.limited {
				s.Limited[i] += w.limited[i].Load()
			}
		}
	}
	o.mu.Unlock()
	if o.cfg.Sampler != nil {
		st := o.cfg.Sampler.Stats()
		s.Sampler = &st
	}
	return s
}
