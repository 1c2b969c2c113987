package gateway

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/synwall/synwall/internal/cookies"
)

// cacheEntry is what the SYN cache keeps of one answered SYN: enough to
// resend the same SYN-ACK and to open the server side with the client's
// exact options (RFC 4987 §3.5).
//
// Its layout is shared with the BPF SYN stage (internal/synstage, struct
// synstage_cache_entry), which writes entries for the SYNs it answers:
// CacheEntrySize bytes, fields at the Cache*Offset constants, booleans as
// one byte 0 or 1. Tests on both sides hold the two layouts to these
// constants.
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

// The SYN cache's shared layout (see CacheMemory).
const (
	CacheEntrySize = 32 // bytes per entry
	CacheSlotSize  = 8  // bytes per slot word: seq<<32 | tag
	CacheHeadSize  = 8  // bytes per bucket head: the ring position

	CacheFPOffset        = 0
	CacheClientISNOffset = 8
	CacheCookieOffset    = 12
	CacheOurTSOffset     = 16
	CacheClientTSOffset  = 20
	CacheMSSOffset       = 24
	CacheWSOffset        = 26
	CacheAdvWSOffset     = 27
	CacheSACKOffset      = 28
	CacheTSOffset        = 29
	CacheECNOffset       = 30
)

// CacheMemory is memory for the SYN cache that another writer shares (the
// BPF SYN stage, through mmap of its maps): Heads holds CacheHeadSize bytes
// per bucket, Slots CacheSlotSize and Entries CacheEntrySize bytes per
// entry, each 8-byte aligned. The engine never frees it.
//
// Writers from both sides agree through atomics only. A bucket's head is
// the ring position: a writer takes the slot head mod entries-per-bucket
// with an atomic add. Each slot has a word, seq<<32 | tag: a writer claims
// the slot by a compare-and-swap that makes seq odd and the tag 0, writes
// the entry, and publishes it by making seq even again with the new tag; a
// slot whose seq is odd is being written and is skipped (the new entry is
// then not cached, which costs only precision). A reader reads the word,
// the entry, and the word again, and trusts the entry only if the word did
// not change; it takes an entry (a handshake ACK) by a compare-and-swap
// from that word to seq+2 and tag 0. Engine workers still take the
// bucket's mutex among themselves.
//
// Pins, when set, holds CachePinSize bytes per entry: the pins of entries
// agreed without timestamps (synCache.pins), tag<<32 | Unix ms when made
// (never 0), 0 when not pinned, so that the other writer passes over the
// engine's pinned entries and pins its own, and the engine passes over
// the other writer's. Without it the pins are the engine's alone.
type CacheMemory struct {
	Heads   []byte
	Slots   []byte
	Entries []byte
	Pins    []byte
}

// CachePinSize is the size of an entry's pin in CacheMemory.Pins.
const CachePinSize = 8

// synCache is a fixed array of buckets of fixed size. The bucket of an
// entry is taken from the MAC bits of its cookie (cookies.MAC), a SipHash
// under a secret key of the tuple, the client's ISN and the cookie counter,
// so that nobody outside can aim SYNs at one bucket, and the handshake ACK
// names the bucket by its acknowledgment number; a full bucket drops its
// oldest entry (FreeBSD syncache). A bucket is a ring: each new entry takes
// the slot after the one its predecessor took, which holds the bucket's
// oldest entry or none, so that choosing it reads no entry. Each entry has a
// slot word with a 32-bit tag from the same cookie (0: free), kept apart so
// that a lookup scans a cache line or two, not the entries. Its memory never
// changes after init; it may be shared (CacheMemory).
type synCache struct {
	mask     uint32
	nbuckets int
	per      int
	locks    []paddedMutex
	heads    []uint64
	tags     []uint64 // slot words: seq<<32 | tag
	entries  []cacheEntry
	// pins (shared with the SYN stage when CacheMemory.Pins is given;
	// read and written with atomics): for an entry that agreed
	// options without timestamps, which nothing but the entry remembers,
	// its tag<<32 | when it was made (ms clock, never 0); victim leaves it
	// until its cookie has expired. 0: not pinned. A pin whose tag is not
	// the slot's belongs to an entry another writer has since replaced.
	// Kept apart from the entries, like the slot words, so that a full
	// bucket is scanned in a few cache lines. The engine writes and reads
	// them under the bucket's lock; the SYN stage writes the pins of the
	// entries it writes, after claiming their slots.
	pins []uint64
	// full is the engine's own too: for a bucket victim found full of
	// pins, when (ms clock) and for how long (until its oldest pin
	// expires), as at<<32 | for; 0 when not known full. victim then
	// answers at once, so that a flood of pinning SYNs costs a SYN one
	// load. A handshake ACK that takes an entry clears it.
	full []uint64
}

type paddedMutex struct {
	sync.Mutex
	_ [56]byte
}

// Slot words.
const (
	slotSeqOne  = 1 << 32
	slotTagMask = 1<<32 - 1
)

func slotTag(w uint64) uint32 { return uint32(w & slotTagMask) }
func slotBusy(w uint64) bool  { return w&slotSeqOne != 0 }

// init sizes the cache: buckets rounded up to a power of two, per entries
// each, in mem when it is not nil.
func (c *synCache) init(buckets, per int, mem *CacheMemory) error {
	n := 1
	for n < buckets {
		n <<= 1
	}
	if per < 1 {
		per = 1
	}
	c.nbuckets, c.per = n, per
	c.mask = uint32(n - 1)
	c.locks = make([]paddedMutex, n)
	c.pins = make([]uint64, n*per)
	c.full = make([]uint64, n)
	if mem != nil && mem.Pins != nil {
		if len(mem.Pins) < n*per*CachePinSize || uintptr(unsafe.Pointer(unsafe.SliceData(mem.Pins)))%8 != 0 {
			return fmt.Errorf("gateway: shared SYN cache pins (%d bytes) short of %d entries or not 8-byte aligned", len(mem.Pins), n*per)
		}
		c.pins = unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(mem.Pins))), n*per)
	}
	if mem == nil {
		c.heads = make([]uint64, n)
		c.tags = make([]uint64, n*per)
		c.entries = make([]cacheEntry, n*per)
		return nil
	}
	if len(mem.Heads) < n*CacheHeadSize || len(mem.Slots) < n*per*CacheSlotSize || len(mem.Entries) < n*per*CacheEntrySize {
		return fmt.Errorf("gateway: shared SYN cache memory (%d, %d, %d bytes) is short of %d buckets of %d entries",
			len(mem.Heads), len(mem.Slots), len(mem.Entries), n, per)
	}
	for _, b := range [][]byte{mem.Heads, mem.Slots, mem.Entries} {
		if uintptr(unsafe.Pointer(unsafe.SliceData(b)))%8 != 0 {
			return errors.New("gateway: shared SYN cache memory is not 8-byte aligned")
		}
	}
	c.heads = unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(mem.Heads))), n)
	c.tags = unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(mem.Slots))), n*per)
	c.entries = unsafe.Slice((*cacheEntry)(unsafe.Pointer(unsafe.SliceData(mem.Entries))), n*per)
	return nil
}

// bucket returns the bucket of the entry for cookie, and its tag. The
// bucket comes from the low MAC bits; the tag is the whole cookie, made
// non-zero, so that entries of one bucket rarely share a tag.
func (c *synCache) bucket(cookie uint32) (int, uint32) {
	return int(cookies.MAC(cookie) & c.mask), cookie | 1
}

// find returns the index of the entry for the tuple of hash fp in bucket
// i and its slot word, or -1. The caller holds the bucket's lock; an entry
// it reads is valid only if stable(k, w) holds afterwards.
func (c *synCache) find(i int, tag uint32, fp uint64) (int, uint64) {
	base := i * c.per
	for j := range c.tags[base : base+c.per] {
		w := atomic.LoadUint64(&c.tags[base+j])
		if slotTag(w) == tag && !slotBusy(w) && c.entries[base+j].fp == fp {
			return base + j, w
		}
	}
	return -1, 0
}

// stable reports whether slot k still holds what it held when its word was
// w: nobody wrote it in between.
func (c *synCache) stable(k int, w uint64) bool { return atomic.LoadUint64(&c.tags[k]) == w }

// victim returns the slot of bucket i that a new entry takes: the one after
// the slot the last new entry took, i.e. the bucket's oldest entry (entries
// enter in turn and leave only early, by a handshake ACK), or a free slot,
// passing over entries pinned less than pinMs before nowMs (ms clock); -1
// when every slot holds one. The ring position moves by one whatever it
// passes over, so that a bucket full of pins (a flood of SYNs without
// timestamps asking for window scaling) costs a SYN one atomic add and a
// pass over the bucket's slot words and pins, a few cache lines. evicted says a live entry is being replaced.
// The caller holds the lock.
func (c *synCache) victim(i int, nowMs, pinMs uint32) (k int, evicted bool) {
	if f := c.full[i]; f != 0 && nowMs-uint32(f>>32) < uint32(f) {
		return -1, false
	}
	pos := atomic.AddUint64(&c.heads[i], 1) - 1
	left := pinMs // until the oldest pin expires
	for j := range uint64(c.per) {
		k = i*c.per + int((pos+j)%uint64(c.per))
		tag := slotTag(atomic.LoadUint64(&c.tags[k]))
		if p := atomic.LoadUint64(&c.pins[k]); tag != 0 && p != 0 && uint32(p>>32) == tag && nowMs-uint32(p) < pinMs {
			left = min(left, pinMs-(nowMs-uint32(p)))
			continue
		}
		return k, tag != 0
	}
	c.full[i] = uint64(nowMs)<<32 | uint64(left)
	return -1, false
}

// pin records whether the entry written to slot k under tag is pinned
// (see pins), at nowMs. The caller holds the lock.
func (c *synCache) pin(k int, tag uint32, pinned bool, nowMs uint32) {
	var p uint64
	if pinned {
		p = uint64(tag)<<32 | uint64(max(nowMs, 1))
	}
	atomic.StoreUint64(&c.pins[k], p)
}

// claim makes slot k the caller's to write, if its word is still w and
// nobody else is writing it. It returns the claimed word for publish.
func (c *synCache) claim(k int, w uint64) (uint64, bool) {
	if slotBusy(w) {
		return 0, false
	}
	nw := (w &^ slotTagMask) + slotSeqOne
	return nw, atomic.CompareAndSwapUint64(&c.tags[k], w, nw)
}

// claimVictim claims the victim slot of bucket i (k is -1 when every slot
// is pinned).
func (c *synCache) claimVictim(i int, nowMs, pinMs uint32) (k int, claimed uint64, evicted, ok bool) {
	if k, evicted = c.victim(i, nowMs, pinMs); k < 0 {
		return -1, 0, false, false
	}
	claimed, ok = c.claim(k, atomic.LoadUint64(&c.tags[k]))
	return k, claimed, evicted, ok
}

// publish ends the write of slot k, claimed as word claimed, under tag.
func (c *synCache) publish(k int, claimed uint64, tag uint32) {
	atomic.StoreUint64(&c.tags[k], (claimed&^slotTagMask)+slotSeqOne|uint64(tag))
}

// take frees slot k if it still holds word w, and reports whether it did:
// the entry read since find is then the one that was published.
func (c *synCache) take(k int, w uint64) bool {
	return atomic.CompareAndSwapUint64(&c.tags[k], w, (w&^slotTagMask)+2*slotSeqOne)
}

// load returns how many entries are in use per bucket (for tests and status).
func (c *synCache) load() []int {
	out := make([]int, c.nbuckets)
	for i := range out {
		c.locks[i].Lock()
		for j := range c.tags[i*c.per : (i+1)*c.per] {
			if slotTag(atomic.LoadUint64(&c.tags[i*c.per+j])) != 0 {
				out[i]++
			}
		}
		c.locks[i].Unlock()
	}
	return out
}
