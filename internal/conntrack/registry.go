package conntrack

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// Offsets are what the kernel applies to a handed-off connection:
// server→client sequence numbers move by Seq (client→server
// acknowledgements back by Seq), and with Timestamps server→client TSvals
// move back by TS (client→server TSecrs forward by TS).
type Offsets struct {
	Seq, TS    uint32
	Timestamps bool
}

// DefaultMaxKnown bounds the registry of handed-off connections (about
// 100 bytes each with the map's overhead).
const DefaultMaxKnown = 1 << 18

// registry remembers the connections this process handed to the kernel
// for as long as their entries live: added when a create succeeds,
// removed when the kernel reports the entry destroyed (or synwall deleted
// it). Lookups take a read lock of one of 16 shards and never allocate.
//
// It answers two questions the packet path cannot ask the kernel: whether
// a new SYN's tuple may still have an entry (a stale one in TIME_WAIT or
// CLOSE would accept the new connection's handshake ACK and bypass
// synwall), and by how much to translate a server's RST the rules send
// around the kernel (see the package doc).
type registry struct {
	max    int64
	n      atomic.Int64
	full   atomic.Uint64 // adds refused at max
	shards [16]shard
}

type shard struct {
	mu sync.RWMutex
	m  map[tupleKey]Offsets
	_  [40]byte // own cache line
}

func newRegistry(max int) *registry {
	r := &registry{max: int64(max)}
	for i := range r.shards {
		r.shards[i].m = map[tupleKey]Offsets{}
	}
	return r
}

func (r *registry) shard(k *tupleKey) *shard {
	h := uint32(k.cport)<<16 | uint32(k.sport)
	h ^= uint32(k.client[15]) | uint32(k.client[14])<<8 | uint32(k.server[15])<<16 | uint32(k.server[14])<<24
	h ^= h >> 16
	h ^= h >> 8
	return &r.shards[h&15]
}

func offsetsOf(f *Flow) Offsets {
	return Offsets{Seq: f.SeqOffset(), TS: f.TSOffset(), Timestamps: f.Opts&OptTimestamps != 0}
}

// add records f; false when the registry is full.
func (r *registry) add(f *Flow) bool {
	return r.put(keyOf(f.Client, f.Server), offsetsOf(f))
}

// put records k with o; false when the registry is full.
func (r *registry) put(k tupleKey, o Offsets) bool {
	s := r.shard(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok {
		if r.n.Load() >= r.max {
			r.full.Add(1)
			return false
		}
		r.n.Add(1)
	}
	s.m[k] = o
	return true
}

func (r *registry) remove(k tupleKey) {
	s := r.shard(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; ok {
		delete(s.m, k)
		r.n.Add(-1)
	}
}

func (r *registry) lookup(k tupleKey) (Offsets, bool) {
	s := r.shard(&k)
	s.mu.RLock()
	o, ok := s.m[k]
	s.mu.RUnlock()
	return o, ok
}

// keys returns every connection recorded now.
func (r *registry) keys() map[tupleKey]struct{} {
	out := map[tupleKey]struct{}{}
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		for k := range s.m {
			out[k] = struct{}{}
		}
		s.mu.RUnlock()
	}
	return out
}

// forget removes the connections of before that are not in live: a
// resynchronisation after lost events, where before was taken ahead of
// the dump that found live (a connection added meanwhile stays).
func (r *registry) forget(before, live map[tupleKey]struct{}) int {
	n := 0
	for k := range before {
		if _, ok := live[k]; !ok {
			r.remove(k)
			n++
		}
	}
	return n
}

// Known reports whether this process handed off the connection client →
// server and the kernel has not reported its entry destroyed, and with
// which offsets. It takes a read lock and never allocates: the packet
// path may call it.
func (h *Handoff) Known(client, server netip.AddrPort) (Offsets, bool) {
	return h.known.lookup(keyOf(client, server))
}

// KnownCount returns the number of connections Known knows.
func (h *Handoff) KnownCount() int { return int(h.known.n.Load()) }
