package gateway

import (
	"encoding/binary"
	"sync"

	"github.com/synwall/synwall/cookies"
)

// cacheEntry is what the SYN cache keeps of one answered SYN: enough to
// resend the same SYN-ACK and to open the server side with the client's
// exact options (RFC 4987 §3.5).
type cacheEntry struct {
	tuple     cookies.Tuple
	clientISN uint32
	cookie    uint32 // our SYN-ACK's sequence number
	ourTS     uint32 // TSval of our SYN-ACK (when timestamps were agreed)
	clientTS  uint32 // the client's TSval in the SYN
	when      int64  // unix ns of the SYN that made the entry
	mss       uint16 // client's MSS, 0 when it sent none
	ws        int8   // client's window scale when agreed, else -1
	advWS     int8   // the scale our SYN-ACK offered, -1 none
	sack      bool   // SACK agreed
	ts        bool   // timestamps agreed
	ecn       bool   // ECN agreed
	used      bool
}

// synCache is a fixed array of buckets of fixed size. The bucket of a tuple
// is a SipHash under a key drawn at start, so that nobody outside can aim
// SYNs at one bucket; a full bucket drops its oldest entry (FreeBSD
// syncache). Its memory never changes after init.
type synCache struct {
	hash     cookies.Hasher
	mask     uint64
	nbuckets int
	per      int
	locks    []paddedMutex
	entries  []cacheEntry
}

type paddedMutex struct {
	sync.Mutex
	_ [56]byte
}

func (c *synCache) init(buckets, per int, h cookies.Hasher) {
	n := 1
	for n < buckets {
		n <<= 1
	}
	if per < 1 {
		per = 1
	}
	c.hash = h
	c.nbuckets, c.per = n, per
	c.mask = uint64(n - 1)
	c.locks = make([]paddedMutex, n)
	c.entries = make([]cacheEntry, n*per)
}

// tupleBytes writes the tuple in a fixed 37-byte layout for hashing.
func tupleBytes(t *cookies.Tuple, b *[40]byte) []byte {
	copy(b[0:16], t.Src[:])
	copy(b[16:32], t.Dst[:])
	binary.BigEndian.PutUint16(b[32:], t.SrcPort)
	binary.BigEndian.PutUint16(b[34:], t.DstPort)
	b[36] = 0
	if t.V6 {
		b[36] = 1
	}
	return b[:37]
}

func (c *synCache) bucket(t *cookies.Tuple) int {
	return int(c.hash.Sum(t) & c.mask)
}

// entriesOf returns bucket i's entries. The caller holds its lock.
func (c *synCache) entriesOf(i int) []cacheEntry {
	return c.entries[i*c.per : (i+1)*c.per]
}

// find returns the entry for t in bucket i, or nil.
func (c *synCache) find(i int, t *cookies.Tuple) *cacheEntry {
	es := c.entriesOf(i)
	for j := range es {
		if es[j].used && es[j].tuple == *t {
			return &es[j]
		}
	}
	return nil
}

// victim returns a free entry of bucket i, or its oldest one; evicted says
// a live entry is being replaced.
func (c *synCache) victim(i int) (e *cacheEntry, evicted bool) {
	es := c.entriesOf(i)
	old := 0
	for j := range es {
		if !es[j].used {
			return &es[j], false
		}
		if es[j].when < es[old].when {
			old = j
		}
	}
	return &es[old], true
}

// load returns how many entries are in use per bucket (for tests and status).
func (c *synCache) load() []int {
	out := make([]int, c.nbuckets)
	for i := range out {
		c.locks[i].Lock()
		for _, e := range c.entriesOf(i) {
			if e.used {
				out[i]++
			}
		}
		c.locks[i].Unlock()
	}
	return out
}
