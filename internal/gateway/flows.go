package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/gateway/header"
)

// flowState is where a proxied connection stands. Zero is invalid (a free
// slot).
type flowState uint8

const (
	stateInvalid     flowState = iota
	stateSynSent               // client admitted, SYN sent to the server
	stateEstablished           // server answered; translating
	stateClosing               // FIN both ways or RST: lingering
	stateOutbound              // a guarded server's own connection: passed untouched
)

// Sides of a flow, to index what the flow tracks per sender.
const (
	sideClient = 0
	sideServer = 1
)

// flow is one proxied connection, keyed by its client-side tuple. What a
// lookup and the translation of an established flow read or write comes
// first, so that a packet touches one cache line of its flow (the struct
// is 256 bytes and slots are contiguous, a multiple of 64 bytes apart).
type flow struct {
	key   flowKey
	state flowState

	useTS      bool // timestamps on both sides: translate them
	rescaleC2S bool
	rescaleS2C bool

	finClient, finServer bool
	newSyn               bool // a new SYN came on this tuple while established

	delta    uint32 // cookieISN - serverISN
	tsOff    uint32 // ourTS - serverTS
	lastSeen int64

	// Effective shifts (RFC 7323 §2.3): what each sender scales by and what
	// its peer believes it scales by.
	clientShift, serverBelievesClient uint8
	serverShift, clientBelievesServer uint8

	created, synSentAt, closeAt int64

	clientISN uint32
	cookieISN uint32 // our SYN-ACK's ISN, the client's view of the server's
	serverISN uint32

	ourTS    uint32 // TSval of our SYN-ACK, as echoed by the client
	serverTS uint32 // the server's TSval in its SYN-ACK
	lastTS   uint32 // the client's latest TSval
	lastWin  uint16 // the client's latest window field
	mss      uint16 // MSS sent to the server

	clientTS bool // timestamps agreed with the client
	sack     bool
	ecn      bool
	sentWS   int8 // window scale our SYN to the server carried, -1 none
	advWS    int8 // window scale our SYN-ACK offered the client, -1 none

	slot  int32 // index in flowTable.slots
	tuple cookies.Tuple

	npend uint8
	pend  [MaxPendingPerFlow]int32

	up bool // the server answered: the flow has a server side
	// rstUnsure: closing after an in-window reset whose sequence number
	// was not the one the receiver expects as far as we saw (RFC 5961
	// §3.2); a later segment from the receiver (its challenge ACK, or
	// data) shows it ignored the reset and reopens the flow. rstByClient
	// says who sent the reset.
	rstUnsure, rstByClient bool
	// expiring: closing after idle expiry; each end got an ACK probe and
	// gets an RST at the acknowledgment number of its reply
	// (Engine.ExpireAndTell).
	expiring bool
	// tracked has bit 1<<side set once the locked path has seen a segment
	// of that side since the flow was made (a restored flow starts
	// without).
	tracked  uint8
	newSynAt int64 // when newSyn was set
	srcSlot  int32 // the source's counter in flowTable.perSrc

	// What the segments that take the lock say of each side's sequence
	// space (RFC 9293 §3.3.1), by side: the end of what the side sent (its
	// SND.NXT, in its own space), the latest acknowledgment it sent (the
	// client's in our cookie space), and its receive window in bytes. The
	// lock-free path does not update them, so they lag by at most
	// flowTable.grain of that side's traffic.
	sndEnd  [2]uint32
	lastAck [2]uint32
	rcvWin  [2]uint32

	// handedOff: the kernel carries the flow (handoff.go); it lingers
	// closing for HandoffGrace and is left out of the state. advMSS is the
	// MSS our SYN-ACK announced to the client.
	handedOff bool
	advMSS    uint16

	_ [11]byte // to 256 bytes (TestFlowSize)
}

// seqAfter reports whether sequence number a comes after b (RFC 9293
// §3.4: modulo 2^32, within half the space).
func seqAfter(a, b uint32) bool { return int32(a-b) > 0 }

// track notes what segment t, sent by side s with payload bytes of data,
// says of that side's sequence space. The caller holds the flow's lock and
// calls it before translating t.
func (f *flow) track(s int, t header.TCP, payload int, flags uint8) {
	if flags&header.RST != 0 {
		return
	}
	end := t.SequenceNumber() + uint32(payload)
	if flags&header.FIN != 0 {
		end++
	}
	first := f.tracked&(1<<s) == 0
	if first || seqAfter(end, f.sndEnd[s]) {
		f.sndEnd[s] = end
	}
	if a := t.AckNumber(); flags&header.ACK != 0 && (first || seqAfter(a, f.lastAck[s])) {
		f.lastAck[s] = a
	}
	shift := f.clientShift
	if s == sideServer {
		shift = f.serverShift
	}
	f.rcvWin[s] = uint32(t.WindowSize()) << shift
	f.tracked |= 1 << s
}

// resetCheck is how a reset fits the receiver's window.
type resetCheck uint8

const (
	resetInvalid  resetCheck = iota
	resetOutside             // out of window: dropped (RFC 5961 §3.2)
	resetInWindow            // in window, not exact: passed on, the receiver answers with a challenge ACK
	resetExact               // the receiver's RCV.NXT, or the sender's own end: ends the flow
)

// checkReset judges a reset from side s with sequence number seq (in s's
// own space) against the receiver's window as far as the flow tracked it,
// as conntrack does: exact when it is the receiver's latest
// acknowledgment (RCV.NXT) or the end of what the sender sent; in window
// from there over the receiver's window. The window counts twice and
// reaches past the sender's end, because what the flow saw may lag by the
// lock-free path's grain; the receiver makes the exact check itself.
func (f *flow) checkReset(s int, seq uint32) resetCheck {
	r := 1 - s
	if f.tracked != 1<<sideClient|1<<sideServer {
		return resetInWindow // a restored flow: nothing to judge by yet
	}
	rcvNxt := f.lastAck[r]
	if r == sideClient {
		rcvNxt -= f.delta // the client acknowledges in our cookie space
	}
	end := f.sndEnd[s]
	if seq == rcvNxt || seq == end {
		return resetExact
	}
	span := uint64(2*uint64(max(f.rcvWin[r], 1))) + 1
	if seqAfter(end, rcvNxt) {
		span += uint64(end - rcvNxt)
	}
	if uint64(seq-rcvNxt) < min(span, 1<<31) {
		return resetInWindow
	}
	return resetOutside
}

// inWindow reports whether seq, from side s, falls where a reset would be
// in window or exact: a segment of the connection the flow tracks.
func (f *flow) inWindow(s int, seq uint32) bool {
	c := f.checkReset(s, seq)
	return c == resetInWindow || c == resetExact
}

// FlowBucketSize is the number of slots in one flow-table bucket; a tuple
// lives in the bucket its seeded hash names.
const FlowBucketSize = 16

// flowTable is a fixed array of buckets of FlowBucketSize flows with one
// lock each. A full bucket evicts an expired flow or else its least recently
// used one. Each slot has a 32-bit tag from the tuple's hash (0: free), kept
// apart so that a lookup scans one cache line before touching a flow.
//
// Each slot also has a view: the fields that translate an established flow,
// in atomics, published under the bucket lock (publish, unpublish) and read
// without it (view), so that the data of established flows, the bulk of
// all packets, takes no lock.
//
// The table owns the flows' timeouts, their counters and the pool of
// client data held while a flow waits for its server.
type flowTable struct {
	seed  [4]uint64
	mask  uint64
	locks []paddedMutex
	tags  []atomic.Uint32 // written under the bucket lock, read also without
	slots []flow
	views []flowView
	grain int64 // see flowView

	hsTimeout int64 // SynSent without the server's SYN-ACK, ns
	idle      int64 // established without packets, ns
	linger    int64 // closing, ns

	pending pendingPool
	st      flowCounters

	// perSrc counts the live flows of each source (an IPv4 address, an
	// IPv6 /64), in counters chosen by a seeded hash of it (a shared
	// counter only makes its sources' quota tighter); a source at quota
	// gets no new flow (overQuota).
	perSrc  []atomic.Int32
	srcMask uint64
	quota   int32
	// perSrcPend counts the held segments of each source the same way,
	// up to pendQuota (a sixteenth of the pool, at least a flow's worth).
	perSrcPend []atomic.Int32
	pendQuota  int32
}

// evictKind says what kind of flow an eviction pushed out.
type evictKind uint8

const (
	evictClosing     evictKind = iota // lingering after FIN or RST
	evictHandshake                    // waiting for the server
	evictEstablished                  // translating (both ends are told)
	evictOutbound                     // a server's own connection
	numEvictKinds
)

// flowCounters are the flow table's counters (Stats).
type flowCounters struct {
	active           atomic.Int64
	created, expired atomic.Uint64
	evicted          [numEvictKinds]atomic.Uint64
	quotaRefused     atomic.Uint64
	pendingHeld      atomic.Uint64
	pendingDropped   atomic.Uint64
}

// evicted is what the caller of flowTable.add needs to tell both ends of
// an established flow that add pushed out: the tuple, and the sequence
// numbers an RST to each end carries (RFC 9293 §3.10.7.4: it must be
// in window, at best the receiver's RCV.NXT).
type evicted struct {
	valid       bool
	tuple       cookies.Tuple
	toClientSeq uint32 // in the client's view of the server's space (ours)
	toServerSeq uint32 // in the client's space
	delta       uint32 // the flow's cookieISN - serverISN
}

// flowView is the lock-free face of one slot (one cache line). Writers hold
// the bucket lock and make seq odd while they change key, xl or bits (a
// sequence lock); a reader that sees seq change, or odd, takes the lock
// instead. seen is when the lock holder last saw a segment of each side:
// the view serves a side only within flowTable.grain of it, so that
// flow.lastSeen and what the flow tracks of that side (flow.track), which
// the lock-free path does not write, are never more than grain behind.
type flowView struct {
	seq  atomic.Uint32
	bits atomic.Uint32    // viewLive and the xlate flags and shifts; 0: no view
	xl   atomic.Uint64    // delta | tsOff<<32
	seen [2]atomic.Uint32 // by side, in units of 1024 ns (seenUnits), wrapping
	key  [5]atomic.Uint64
}

const (
	viewLive = 1 << iota // an established flow without a new SYN
	viewUseTS
	viewRescaleC2S
	viewRescaleS2C
)

// seenUnits is a time in the units flowView.seen keeps, about
// microseconds, so that the view of a flow fits one cache line; the count
// wraps after 73 minutes, which at worst lets one millisecond of a flow's
// segments skip the lock.
func seenUnits(ns int64) uint32 { return uint32(ns >> 10) }

// maxSeenGrain is the longest the lock-free path serves a flow after the
// locked path last saw it: the precision of idle expiry. flowTable.grain
// is this or half the idle timeout, whichever is less.
const maxSeenGrain = int64(time.Millisecond)

// xlate is what translating a segment of an established flow needs.
type xlate struct {
	delta, tsOff                      uint32
	useTS, rescaleC2S, rescaleS2C     bool
	clientShift, serverBelievesClient uint8
	serverShift, clientBelievesServer uint8
}

// xlateInto fills x from f a field at a time (doc.go: store forwarding).
func (f *flow) xlateInto(x *xlate) {
	x.delta, x.tsOff = f.delta, f.tsOff
	x.useTS, x.rescaleC2S, x.rescaleS2C = f.useTS, f.rescaleC2S, f.rescaleS2C
	x.clientShift, x.serverBelievesClient = f.clientShift, f.serverBelievesClient
	x.serverShift, x.clientBelievesServer = f.serverShift, f.clientBelievesServer
}

func boolBit(v bool, bit uint32) uint32 {
	if v {
		return bit
	}
	return 0
}

// viewBits packs the flags and shifts of f (each shift is at most 14).
func (f *flow) viewBits() uint32 {
	return viewLive | boolBit(f.useTS, viewUseTS) | boolBit(f.rescaleC2S, viewRescaleC2S) |
		boolBit(f.rescaleS2C, viewRescaleS2C) |
		uint32(f.clientShift&0xf)<<8 | uint32(f.serverBelievesClient&0xf)<<12 |
		uint32(f.serverShift&0xf)<<16 | uint32(f.clientBelievesServer&0xf)<<20
}

// set fills x from a view's bits and xl, a field at a time (doc.go: store
// forwarding).
func (x *xlate) set(bits uint32, xl uint64) {
	x.delta, x.tsOff = uint32(xl), uint32(xl>>32)
	x.useTS, x.rescaleC2S, x.rescaleS2C = bits&viewUseTS != 0, bits&viewRescaleC2S != 0, bits&viewRescaleS2C != 0
	x.clientShift, x.serverBelievesClient = uint8(bits>>8)&0xf, uint8(bits>>12)&0xf
	x.serverShift, x.clientBelievesServer = uint8(bits>>16)&0xf, uint8(bits>>20)&0xf
}

// publish makes f's view current as of nowNs for the segments of the
// client (or the server): f must be established, without a new SYN. The
// caller holds f's bucket lock.
func (ft *flowTable) publish(f *flow, client bool, nowNs int64) {
	v := &ft.views[f.slot]
	tag := ft.tags[f.slot].Load()
	s := sideServer
	if client {
		s = sideClient
	}
	if tag&tagView != 0 {
		// The view is f's: only unpublish clears it, and every change of
		// what it holds goes through unpublish first.
		v.seen[s].Store(seenUnits(nowNs))
		return
	}
	v.seq.Add(1)
	for i := range f.key {
		v.key[i].Store(f.key[i])
	}
	v.xl.Store(uint64(f.delta) | uint64(f.tsOff)<<32)
	v.seen[sideClient].Store(seenUnits(nowNs))
	v.seen[sideServer].Store(seenUnits(nowNs))
	v.bits.Store(f.viewBits())
	v.seq.Add(1)
	ft.tags[f.slot].Store(tag | tagView)
}

// unpublish withdraws f's view, before f changes state or is removed. Only
// an established flow without a new SYN can have one, so for any other the
// view is not even read. The caller holds f's bucket lock.
func (ft *flowTable) unpublish(f *flow) {
	if f.state != stateEstablished || f.newSyn {
		return
	}
	tag := ft.tags[f.slot].Load()
	if tag&tagView == 0 {
		return
	}
	ft.tags[f.slot].Store(tag &^ tagView)
	v := &ft.views[f.slot]
	v.seq.Add(1)
	v.bits.Store(0)
	v.seq.Add(1)
}

// view sets x, without the lock, to the translation of a segment from side
// s of the established flow k in bucket i, if its view is published and
// the locked path saw a segment of that side within ft.grain of nowNs.
// False means: take the lock and ask find.
func (ft *flowTable) view(i int, tag uint32, k *flowKey, s int, nowNs int64, x *xlate) bool {
	base := i * FlowBucketSize
	tags := ft.tags[base : base+FlowBucketSize]
	views := ft.views[base : base+FlowBucketSize]
	for j := range tags {
		if tags[j].Load() != tag|tagView {
			continue
		}
		v := &views[j]
		n := v.seq.Load()
		bits := v.bits.Load()
		if v.key[0].Load() != k[0] || v.key[1].Load() != k[1] || v.key[2].Load() != k[2] ||
			v.key[3].Load() != k[3] || v.key[4].Load() != k[4] {
			continue
		}
		if n&1 != 0 || bits&viewLive == 0 || seenUnits(nowNs)-v.seen[s].Load() > seenUnits(ft.grain) {
			return false
		}
		x.set(bits, v.xl.Load())
		return v.seq.Load() == n
	}
	return false
}

// FlowTagSize is the size of a flow-table slot's tag in shared memory
// (Config.FlowTagMemory): a 32-bit word, 0 when the slot is free, else the
// tuple's tag with bit 0 (tagUsed) set and bit 1 (tagView) set while the
// slot's view is published. A slot's bucket and tag come from the tuple's
// hash h (Engine.FlowSeed): bucket h & (buckets-1), tag
// uint32(h>>32) &^ 2 | 1; bucket i holds slots i*FlowBucketSize onwards.
const FlowTagSize = 4

// FlowSlots returns the number of slots of a flow table of capacity flows
// (a power of two number of buckets of FlowBucketSize slots).
func FlowSlots(capacity int) int {
	n := 1
	for n*FlowBucketSize < capacity {
		n <<= 1
	}
	return n * FlowBucketSize
}

// init allocates a table of at least capacity flows and a pending pool of
// pendingSlots segments, its slot tags in tagMem when that is not nil
// (Config.FlowTagMemory); the timeouts are set by the caller.
func (ft *flowTable) init(capacity, pendingSlots int, seed [4]uint64, tagMem []byte) error {
	slots := FlowSlots(capacity)
	n := slots / FlowBucketSize
	ft.pending.init(pendingSlots)
	src := 1
	for src < 4*n {
		src <<= 1
	}
	ft.perSrc = make([]atomic.Int32, src)
	ft.perSrcPend = make([]atomic.Int32, src)
	ft.pendQuota = int32(max(pendingSlots/16, MaxPendingPerFlow))
	ft.srcMask = uint64(src - 1)
	ft.quota = int32(max(capacity/64, 16))
	ft.seed = seed
	ft.mask = uint64(n - 1)
	ft.locks = make([]paddedMutex, n)
	ft.slots = make([]flow, slots)
	if tagMem == nil {
		ft.tags = make([]atomic.Uint32, slots)
	} else {
		if len(tagMem) != slots*FlowTagSize {
			// The other side finds a tuple's bucket from the size.
			return fmt.Errorf("gateway: shared flow tag memory of %d bytes for %d slots, want %d bytes", len(tagMem), slots, slots*FlowTagSize)
		}
		if uintptr(unsafe.Pointer(unsafe.SliceData(tagMem)))%4 != 0 {
			return errors.New("gateway: shared flow tag memory is not 4-byte aligned")
		}
		// Tags of an earlier engine (a graceful restart) name flows this
		// one restores elsewhere, if at all.
		clear(tagMem)
		ft.tags = unsafe.Slice((*atomic.Uint32)(unsafe.Pointer(unsafe.SliceData(tagMem))), slots)
	}
	ft.views = make([]flowView, slots)
	for i := range ft.slots {
		ft.slots[i].slot = int32(i)
	}
	return nil
}

// flowKey is a tuple packed into words for hashing and comparing.
type flowKey [5]uint64

// set makes k the key of the tuple of addresses src and dst (as
// header.Packet and cookies.Tuple hold them) and ports, in place (doc.go:
// store forwarding).
func (k *flowKey) set(src, dst *[16]byte, sport, dport uint16, v6 bool) {
	var f uint64
	if v6 {
		f = 1
	}
	k[0], k[1] = binary.LittleEndian.Uint64(src[0:]), binary.LittleEndian.Uint64(src[8:])
	k[2], k[3] = binary.LittleEndian.Uint64(dst[0:]), binary.LittleEndian.Uint64(dst[8:])
	k[4] = uint64(sport)<<32 | uint64(dport)<<16 | f
}

func (a *flowKey) equal(b *flowKey) bool {
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4]
}

// bucketKey returns the bucket of k and its tag. The hash is a seeded
// multiply-fold mix (as in wyhash): flows exist only for clients that
// completed a handshake, so it needs to be unpredictable, not a PRF (the SYN
// cache, which anyone can fill, uses SipHash).
func (ft *flowTable) bucketKey(k *flowKey) (int, uint32) {
	return ft.split(ft.hash(k))
}

// hash is the seeded hash of k that names its bucket and tag (split). The
// SYN cache keeps it as the fingerprint of a tuple (cacheEntry.fp).
func (ft *flowTable) hash(k *flowKey) uint64 {
	s := &ft.seed
	h := mix(k[0]^s[0], k[1]^s[1]) ^ mix(k[2]^s[2], k[3]^s[3]) ^ mix(k[4]^s[0], s[1]^s[2])
	return mix(h, s[3])
}

// split returns the bucket and tag of hash h.
func (ft *flowTable) split(h uint64) (int, uint32) {
	return int(h & ft.mask), uint32(h>>32)&^tagView | tagUsed
}

// A slot's tag is 0 when the slot is free, else the tuple's tag (tagUsed
// set, tagView clear) with tagView set while the slot's view is published,
// so that the lock-free path skips other slots without reading their views.
const (
	tagUsed = 1
	tagView = 2
)

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func (ft *flowTable) lock(i int) *sync.Mutex { return &ft.locks[i].Mutex }

// mayHave reports, without the lock, whether bucket i has a slot tagged
// tag. False means there is no flow for the tuple (as of the call).
func (ft *flowTable) mayHave(i int, tag uint32) bool {
	base := i * FlowBucketSize
	tags := ft.tags[base : base+FlowBucketSize]
	for j := range tags {
		if tags[j].Load()&^tagView == tag {
			return true
		}
	}
	return false
}

// bucketFree reports, without the lock, whether every slot of bucket i is
// free (tag 0) as of the call.
func (ft *flowTable) bucketFree(i int) bool {
	base := i * FlowBucketSize
	tags := ft.tags[base : base+FlowBucketSize]
	for j := range tags {
		if tags[j].Load() != 0 {
			return false
		}
	}
	return true
}

func (ft *flowTable) slotsOf(i int) []flow {
	return ft.slots[i*FlowBucketSize : (i+1)*FlowBucketSize]
}

// expired reports whether f has outlived its state's timeout at now.
func (ft *flowTable) expired(f *flow, now int64) bool {
	switch f.state {
	case stateSynSent:
		return now-f.created > ft.hsTimeout
	case stateEstablished:
		return now-f.lastSeen > ft.idle
	case stateOutbound:
		return now-f.lastSeen > ft.idle || f.closeAt != 0 && now > f.closeAt
	case stateClosing:
		return now > f.closeAt
	}
	return false
}

// find returns the live flow with key k in bucket i, or nil. An expired
// flow is removed on the way. The caller holds the bucket's lock.
func (ft *flowTable) find(i int, tag uint32, k *flowKey, now int64) *flow {
	base := i * FlowBucketSize
	tags := ft.tags[base : base+FlowBucketSize]
	for j := range tags {
		if tags[j].Load()&^tagView != tag {
			continue
		}
		f := &ft.slots[base+j]
		if f.key.equal(k) {
			if ft.expired(f, now) {
				ft.remove(f)
				ft.st.expired.Add(1)
				return nil
			}
			return f
		}
	}
	return nil
}

// evictRank orders the flows of a full bucket for eviction: closing ones
// first (they only linger), then handshakes (the client retries), then
// established and outbound connections, least recently used first within a
// rank.
func evictRank(st flowState) int {
	switch st {
	case stateClosing:
		return 0
	case stateSynSent:
		return 1
	}
	return 2
}

// srcIndex is the index in perSrc of the source of key k: its IPv4
// address or the first 64 bits of its IPv6 address (k[0]).
func (ft *flowTable) srcIndex(k *flowKey) int32 {
	return int32(mix(k[0]^ft.seed[2], ft.seed[3]) & ft.srcMask)
}

// overQuota reports whether the source of key k has as many flows as a
// source may have, and counts the refusal.
func (ft *flowTable) overQuota(k *flowKey) bool {
	if ft.perSrc[ft.srcIndex(k)].Load() < ft.quota {
		return false
	}
	ft.st.quotaRefused.Add(1)
	return true
}

// add returns a cleared slot of bucket i for t, evicting if it must (see
// evictRank); when it evicts an established flow, ev (if not nil) says
// how to tell its ends. The caller holds the bucket's lock.
func (ft *flowTable) add(i int, tag uint32, t *cookies.Tuple, now int64, ev *evicted) *flow {
	fs := ft.slotsOf(i)
	var pick *flow
	for j := range fs {
		f := &fs[j]
		if f.state == stateInvalid {
			pick = f
			break
		}
		if ft.expired(f, now) {
			ft.remove(f)
			ft.st.expired.Add(1)
			pick = f
			break
		}
		if pick == nil {
			pick = f
			continue
		}
		if r, pr := evictRank(f.state), evictRank(pick.state); r < pr || r == pr && f.lastSeen < pick.lastSeen {
			pick = f
		}
	}
	if pick.state != stateInvalid {
		switch pick.state {
		case stateClosing:
			ft.st.evicted[evictClosing].Add(1)
		case stateSynSent:
			ft.st.evicted[evictHandshake].Add(1)
		case stateOutbound:
			ft.st.evicted[evictOutbound].Add(1)
		default:
			ft.st.evicted[evictEstablished].Add(1)
			if ev != nil && pick.tracked == 1<<sideClient|1<<sideServer {
				ev.valid, ev.tuple = true, pick.tuple
				ev.toClientSeq = pick.sndEnd[sideServer] + pick.delta
				ev.toServerSeq = pick.sndEnd[sideClient]
			}
		}
		ft.remove(pick)
	}
	// Field by field (doc.go: store forwarding).
	slot := pick.slot
	*pick = flow{}
	pick.key.set(&t.Src, &t.Dst, t.SrcPort, t.DstPort, t.V6)
	pick.tuple = *t
	pick.slot, pick.created, pick.lastSeen, pick.synSentAt = slot, now, now, now
	pick.srcSlot = ft.srcIndex(&pick.key)
	ft.perSrc[pick.srcSlot].Add(1)
	ft.tags[pick.slot].Store(tag)
	ft.st.active.Add(1)
	ft.st.created.Add(1)
	return pick
}

// remove frees f and the data it holds. The caller holds its lock.
func (ft *flowTable) remove(f *flow) {
	if f.state == stateInvalid {
		return
	}
	ft.unpublish(f)
	ft.releasePending(f)
	f.state = stateInvalid
	ft.tags[f.slot].Store(0)
	ft.perSrc[f.srcSlot].Add(-1)
	ft.st.active.Add(-1)
}

// close moves f to closing: it lingers, then expires. The caller holds its
// lock.
func (ft *flowTable) close(f *flow, nowNs int64) {
	if f.state == stateClosing {
		return
	}
	ft.unpublish(f)
	f.state = stateClosing
	f.closeAt = nowNs + ft.linger
}

// expire removes every flow that has outlived its timeout at now and
// returns how many. With idle not nil, an established flow idle past its
// timeout is not removed but moved to closing, marked expiring, and idle is
// called (after the bucket's lock is released) with what a probe to each
// end needs.
func (ft *flowTable) expire(now int64, idle func(ev []evicted)) int {
	n := 0
	var evs [FlowBucketSize]evicted
	for i := range ft.locks {
		if ft.bucketFree(i) {
			// Tags are a sixteenth of the slots' memory: a sweep of a
			// mostly empty table reads them, not every flow, and takes
			// no lock. A flow added meanwhile waits for the next sweep.
			continue
		}
		mu := ft.lock(i)
		mu.Lock()
		fs := ft.slotsOf(i)
		k := 0
		for j := range fs {
			f := &fs[j]
			if f.state == stateInvalid || !ft.expired(f, now) {
				continue
			}
			if idle != nil && f.state == stateEstablished && f.tracked == 1<<sideClient|1<<sideServer {
				ev := &evs[k]
				ev.valid, ev.tuple = true, f.tuple
				ev.toClientSeq, ev.toServerSeq, ev.delta = f.sndEnd[sideServer]+f.delta, f.sndEnd[sideClient], f.delta
				k++
				ft.close(f, now)
				f.expiring = true // removed, and counted, when it has lingered
				continue
			}
			ft.remove(f)
			n++
		}
		mu.Unlock()
		if k > 0 && idle != nil {
			idle(evs[:k])
		}
	}
	ft.st.expired.Add(uint64(n))
	return n
}

// hold keeps a segment of f, a flow waiting for its server: its payload,
// flags and urgent pointer; false when there is no room (counted: the
// client resends). A source may hold pendQuota segments at once, so that
// one source's handshakes cannot fill the pool. The caller holds f's lock.
func (ft *flowTable) hold(f *flow, seq uint32, payload []byte, flags uint8, urg uint16) bool {
	for k := 0; k < int(f.npend); k++ {
		if s, _ := ft.pending.get(f.pend[k]); s == seq {
			return true // a retransmission of what we hold
		}
	}
	if int(f.npend) >= MaxPendingPerFlow {
		ft.st.pendingDropped.Add(1)
		return false
	}
	if ft.perSrcPend[f.srcSlot].Load() >= ft.pendQuota {
		ft.st.pendingDropped.Add(1)
		return false
	}
	s := ft.pending.put(seq, payload, flags, urg)
	if s < 0 {
		ft.st.pendingDropped.Add(1)
		return false
	}
	ft.perSrcPend[f.srcSlot].Add(1)
	f.pend[f.npend] = s
	f.npend++
	ft.st.pendingHeld.Add(1)
	return true
}

// releasePending frees the data f holds. The caller holds f's lock.
func (ft *flowTable) releasePending(f *flow) {
	for k := 0; k < int(f.npend); k++ {
		ft.pending.free(f.pend[k])
	}
	ft.perSrcPend[f.srcSlot].Add(-int32(f.npend))
	f.npend = 0
}
