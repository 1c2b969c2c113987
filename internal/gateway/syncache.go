package gateway

import (
	"sync"

	"github.com/synwall/synwall/internal/cookies"
)

// cacheEntry is what the SYN cache keeps of one answered SYN: enough to
// resend the same SYN-ACK and to open the server side with the client's
// exact options (RFC 4987 §3.5).
type cacheEntry struct {
	// fp is the tuple's seeded 64-bit hash (flowTable.hash), not the tuple
	// itself, so that an entry is half a cache line. An entry is used only
	// for a SYN or ACK whose cookie, a SipHash MAC over the tuple and the
	// client's ISN, names it and whose tuple has the same hash, and an ACK
	// must also pass the full cookie check.
	fp        uint64
	clientISN uint32
	cookie    uint32 // our SYN-ACK's sequence number
	ourTS     uint32 // TSval of our SYN-ACK (when timestamps were agreed)
	clientTS  uint32 // the client's TSval in the SYN
	// No time of its own: a cookie names its counter period, so an entry
	// found by the cookie of now was made in this period.
	mss   uint16 // client's MSS, 0 when it sent none
	ws    int8   // client's window scale when agreed, else -1
	advWS int8   // the scale our SYN-ACK offered, -1 none
	sack  bool   // SACK agreed
	ts    bool   // timestamps agreed
	ecn   bool   // ECN agreed
}

// synCache is a fixed array of buckets of fixed size. The bucket of an
// entry is taken from the MAC bits of its cookie (cookies.MAC), a SipHash
// under a secret key of the tuple, the client's ISN and the cookie counter,
// so that nobody outside can aim SYNs at one bucket, and the handshake ACK
// names the bucket by its acknowledgment number; a full bucket drops its
// oldest entry (FreeBSD syncache). A bucket is a ring: each new entry takes
// the slot after the one its predecessor took, which holds the bucket's
// oldest entry or none, so that choosing it reads no entry. Each entry has a
// 32-bit tag from the same cookie (0: free), kept apart so that a lookup
// scans a cache line or two, not the entries. Its memory never changes after
// init.
type synCache struct {
	mask     uint32
	nbuckets int
	per      int
	locks    []cacheLock
	tags     []uint32
	// pins holds, for an entry that agreed options without timestamps
	// (which nothing but the entry remembers), when it was made (ms clock,
	// never 0); victim leaves it until its cookie has expired. 0: not
	// pinned. Kept apart from the entries, like the tags, so that a full
	// bucket is scanned in a cache line or two.
	pins    []uint32
	entries []cacheEntry
}

// cacheLock is a bucket's lock and its ring position, alone in a cache line.
type cacheLock struct {
	sync.Mutex
	next uint32 // the slot the next new entry takes, 0..per-1
	_    [52]byte
}

type paddedMutex struct {
	sync.Mutex
	_ [56]byte
}

func (c *synCache) init(buckets, per int) {
	n := 1
	for n < buckets {
		n <<= 1
	}
	if per < 1 {
		per = 1
	}
	c.nbuckets, c.per = n, per
	c.mask = uint32(n - 1)
	c.locks = make([]cacheLock, n)
	c.tags = make([]uint32, n*per)
	c.pins = make([]uint32, n*per)
	c.entries = make([]cacheEntry, n*per)
}

// bucket returns the bucket of the entry for cookie, and its tag. The
// bucket comes from the low MAC bits; the tag is the whole cookie, made
// non-zero, so that entries of one bucket rarely share a tag.
func (c *synCache) bucket(cookie uint32) (int, uint32) {
	return int(cookies.MAC(cookie) & c.mask), cookie | 1
}

// find returns the index of the entry for the tuple of hash fp in bucket
// i, or -1. The caller holds the bucket's lock.
func (c *synCache) find(i int, tag uint32, fp uint64) int {
	base := i * c.per
	for j, g := range c.tags[base : base+c.per] {
		if g == tag && c.entries[base+j].fp == fp {
			return base + j
		}
	}
	return -1
}

// victim returns the slot of bucket i that a new entry takes: the one after
// the slot the last new entry took, i.e. the bucket's oldest entry (entries
// enter in turn and leave only early, by a handshake ACK), or a free slot,
// passing over pinned entries younger than pinMs at nowMs (ms clock). It
// returns -1 when every slot holds such an entry. evicted says a live
// entry is being replaced. The caller holds the lock.
func (c *synCache) victim(i int, nowMs, pinMs uint32) (k int, evicted bool) {
	l := &c.locks[i]
	for range c.per {
		k = i*c.per + int(l.next)
		if l.next++; int(l.next) == c.per {
			l.next = 0
		}
		if c.tags[k] != 0 && c.pins[k] != 0 && nowMs-c.pins[k] < pinMs {
			continue
		}
		return k, c.tags[k] != 0
	}
	return -1, false
}

// load returns how many entries are in use per bucket (for tests and status).
func (c *synCache) load() []int {
	out := make([]int, c.nbuckets)
	for i := range out {
		c.locks[i].Lock()
		for _, g := range c.tags[i*c.per : (i+1)*c.per] {
			if g != 0 {
				out[i]++
			}
		}
		c.locks[i].Unlock()
	}
	return out
}
