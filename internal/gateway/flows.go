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
)

// flowState is where a proxied connection stands. Zero is invalid (a free
// slot).
type flowState uint8

const (
	stateInvalid     flowState = iota
	stateSynSent               // client admitted, SYN sent to the server
	stateEstablished           // server answered; translating
	stateClosing               // FIN both ways or RST: lingering
)

// flow is one proxied connection, keyed by its client-side tuple. What a
// lookup and the translation of an established flow read or write comes
// first, so that a packet touches one cache line of its flow (the struct
// is 192 bytes and slots are contiguous, a multiple of 64 bytes apart).
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
type flowTable struct {
	seed  [4]uint64
	mask  uint64
	locks []paddedMutex
	tags  []atomic.Uint32 // written under the bucket lock, read also without
	slots []flow
	views []flowView
	grain int64 // see flowView
}

// flowView is the lock-free face of one slot (one cache line). Writers hold
// the bucket lock and make seq odd while they change key, xl or bits (a
// sequence lock); a reader that sees seq change, or odd, takes the lock
// instead. seen is when the lock holder last saw the flow: the view is
// used only within flowTable.grain of it, so that flow.lastSeen, which the
// lock-free path does not write, is never more than grain behind.
type flowView struct {
	seq  atomic.Uint32
	bits atomic.Uint32 // viewLive and the xlate flags and shifts; 0: no view
	xl   atomic.Uint64 // delta | tsOff<<32
	seen atomic.Int64
	key  [5]atomic.Uint64
}

const (
	viewLive = 1 << iota // an established flow without a new SYN
	viewUseTS
	viewRescaleC2S
	viewRescaleS2C
)

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

// xlateInto fills x from f a field at a time (see xlate.set).
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

// set fills x from a view's bits and xl, a field at a time (a struct
// built elsewhere and copied whole would be read back in wider loads than
// it was written with, which stalls store forwarding).
func (x *xlate) set(bits uint32, xl uint64) {
	x.delta, x.tsOff = uint32(xl), uint32(xl>>32)
	x.useTS, x.rescaleC2S, x.rescaleS2C = bits&viewUseTS != 0, bits&viewRescaleC2S != 0, bits&viewRescaleS2C != 0
	x.clientShift, x.serverBelievesClient = uint8(bits>>8)&0xf, uint8(bits>>12)&0xf
	x.serverShift, x.clientBelievesServer = uint8(bits>>16)&0xf, uint8(bits>>20)&0xf
}

// publish makes f's view current as of nowNs: f must be established,
// without a new SYN. The caller holds f's bucket lock.
func (ft *flowTable) publish(f *flow, nowNs int64) {
	v := &ft.views[f.slot]
	tag := ft.tags[f.slot].Load()
	if tag&tagView != 0 {
		// The view is f's: only unpublish clears it, and every change of
		// what it holds goes through unpublish first.
		v.seen.Store(nowNs)
		return
	}
	v.seq.Add(1)
	for i := range f.key {
		v.key[i].Store(f.key[i])
	}
	v.xl.Store(uint64(f.delta) | uint64(f.tsOff)<<32)
	v.seen.Store(nowNs)
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

// view sets x, without the lock, to the translation of the established
// flow k in bucket i, if its view is published and was seen within
// ft.grain of nowNs. False means: take the lock and ask findFlow.
func (ft *flowTable) view(i int, tag uint32, k *flowKey, nowNs int64, x *xlate) bool {
	base := i * FlowBucketSize
	tags := ft.tags[base : base+FlowBucketSize]
	views := ft.views[base : base+FlowBucketSize]
	for j := range tags {
		if tags[j].Load() != tag|tagView {
			continue
		}
		v := &views[j]
		s := v.seq.Load()
		bits := v.bits.Load()
		if v.key[0].Load() != k[0] || v.key[1].Load() != k[1] || v.key[2].Load() != k[2] ||
			v.key[3].Load() != k[3] || v.key[4].Load() != k[4] {
			continue
		}
		if s&1 != 0 || bits&viewLive == 0 || nowNs-v.seen.Load() > ft.grain {
			return false
		}
		x.set(bits, v.xl.Load())
		return v.seq.Load() == s
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

func (ft *flowTable) init(capacity int, seed [4]uint64, tagMem []byte) error {
	slots := FlowSlots(capacity)
	n := slots / FlowBucketSize
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

func keyOf(t *cookies.Tuple) flowKey {
	var v6 uint64
	if t.V6 {
		v6 = 1
	}
	return flowKey{
		binary.LittleEndian.Uint64(t.Src[0:]), binary.LittleEndian.Uint64(t.Src[8:]),
		binary.LittleEndian.Uint64(t.Dst[0:]), binary.LittleEndian.Uint64(t.Dst[8:]),
		uint64(t.SrcPort)<<32 | uint64(t.DstPort)<<16 | v6,
	}
}

// set makes k the key of t, in place (keyOf's result is copied in wider
// loads than it is built with, which stalls store forwarding).
func (k *flowKey) set(t *cookies.Tuple) {
	var v6 uint64
	if t.V6 {
		v6 = 1
	}
	k[0], k[1] = binary.LittleEndian.Uint64(t.Src[0:]), binary.LittleEndian.Uint64(t.Src[8:])
	k[2], k[3] = binary.LittleEndian.Uint64(t.Dst[0:]), binary.LittleEndian.Uint64(t.Dst[8:])
	k[4] = uint64(t.SrcPort)<<32 | uint64(t.DstPort)<<16 | v6
}

// setAddrs is set for the tuple of addresses src and dst (as
// header.Packet holds them) and ports, without building the tuple.
func (k *flowKey) setAddrs(src, dst *[16]byte, sport, dport uint16, v6 bool) {
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

// bucket returns the bucket of t and its tag. The hash is a seeded
// multiply-fold mix (as in wyhash): flows exist only for clients that
// completed a handshake, so it needs to be unpredictable, not a PRF (the SYN
// cache, which anyone can fill, uses SipHash).
func (ft *flowTable) bucket(t *cookies.Tuple) (int, uint32) {
	k := keyOf(t)
	return ft.bucketKey(&k)
}

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

func (ft *flowTable) slotsOf(i int) []flow {
	return ft.slots[i*FlowBucketSize : (i+1)*FlowBucketSize]
}

// expired reports whether f has outlived its state's timeout at now.
func (e *Engine) expired(f *flow, now int64) bool {
	switch f.state {
	case stateSynSent:
		return now-f.created > e.hsTimeout
	case stateEstablished:
		return now-f.lastSeen > e.idle
	case stateClosing:
		return now > f.closeAt
	}
	return false
}

// find returns the live flow for t in bucket i, or nil. An expired flow is
// removed on the way. The caller holds the bucket's lock.
func (e *Engine) findFlow(i int, tag uint32, k *flowKey, now int64) *flow {
	base := i * FlowBucketSize
	tags := e.flows.tags[base : base+FlowBucketSize]
	for j := range tags {
		if tags[j].Load()&^tagView != tag {
			continue
		}
		f := &e.flows.slots[base+j]
		if f.key.equal(k) {
			if e.expired(f, now) {
				e.removeFlow(f)
				e.st.flowsExpired.Add(1)
				return nil
			}
			return f
		}
	}
	return nil
}

// newFlow returns a cleared slot of bucket i for t, evicting if it must.
// The caller holds the bucket's lock.
func (e *Engine) newFlow(i int, tag uint32, t *cookies.Tuple, now int64) *flow {
	fs := e.flows.slotsOf(i)
	var pick *flow
	for j := range fs {
		f := &fs[j]
		if f.state == stateInvalid {
			pick = f
			break
		}
		if e.expired(f, now) {
			e.removeFlow(f)
			e.st.flowsExpired.Add(1)
			pick = f
			break
		}
		if pick == nil || f.lastSeen < pick.lastSeen {
			pick = f
		}
	}
	if pick.state != stateInvalid {
		e.removeFlow(pick)
		e.st.flowsEvicted.Add(1)
	}
	// Field by field: a flow literal is built aside and copied in wide
	// loads, which stall on its own narrower stores.
	slot := pick.slot
	*pick = flow{}
	pick.key.set(t)
	pick.tuple = *t
	pick.slot, pick.created, pick.lastSeen, pick.synSentAt = slot, now, now, now
	e.flows.tags[pick.slot].Store(tag)
	e.st.flowsActive.Add(1)
	e.st.flowsCreated.Add(1)
	return pick
}

// removeFlow frees f and the data it holds. The caller holds its lock.
func (e *Engine) removeFlow(f *flow) {
	if f.state == stateInvalid {
		return
	}
	e.flows.unpublish(f)
	e.releasePending(f)
	f.state = stateInvalid
	e.flows.tags[f.slot].Store(0)
	e.st.flowsActive.Add(-1)
}

func (e *Engine) releasePending(f *flow) {
	for k := 0; k < int(f.npend); k++ {
		e.pending.free(f.pend[k])
	}
	f.npend = 0
}

func (ft *flowTable) expire(e *Engine, now int64) int {
	n := 0
	for i := range ft.locks {
		mu := ft.lock(i)
		mu.Lock()
		fs := ft.slotsOf(i)
		for j := range fs {
			f := &fs[j]
			if f.state != stateInvalid && e.expired(f, now) {
				e.removeFlow(f)
				n++
			}
		}
		mu.Unlock()
	}
	e.st.flowsExpired.Add(uint64(n))
	return n
}

// pendingPool holds client payloads while a flow waits for its server: a
// fixed number of fixed-size slots and a free list.
type pendingPool struct {
	mu    sync.Mutex
	data  []byte
	len   []uint16
	seq   []uint32
	freeL []int32
}

func (p *pendingPool) init(n int) {
	p.data = make([]byte, n*PendingSize)
	p.len = make([]uint16, n)
	p.seq = make([]uint32, n)
	p.freeL = make([]int32, n)
	for i := range p.freeL {
		p.freeL[i] = int32(n - 1 - i)
	}
}

// put stores payload with its sequence number and returns the slot, or -1
// when the pool is full or the payload too big.
func (p *pendingPool) put(seq uint32, payload []byte) int32 {
	if len(payload) > PendingSize {
		return -1
	}
	p.mu.Lock()
	n := len(p.freeL)
	if n == 0 {
		p.mu.Unlock()
		return -1
	}
	s := p.freeL[n-1]
	p.freeL = p.freeL[:n-1]
	p.mu.Unlock()
	copy(p.data[int(s)*PendingSize:], payload)
	p.len[s] = uint16(len(payload))
	p.seq[s] = seq
	return s
}

func (p *pendingPool) get(s int32) (seq uint32, payload []byte) {
	o := int(s) * PendingSize
	return p.seq[s], p.data[o : o+int(p.len[s])]
}

func (p *pendingPool) free(s int32) {
	p.mu.Lock()
	p.freeL = append(p.freeL, s)
	p.mu.Unlock()
}

// holdData keeps payload for f; false when there is no room.
func (e *Engine) holdData(f *flow, seq uint32, payload []byte) bool {
	for k := 0; k < int(f.npend); k++ {
		if s, _ := e.pending.get(f.pend[k]); s == seq {
			return true // a retransmission of what we hold
		}
	}
	if int(f.npend) >= MaxPendingPerFlow {
		e.st.pendingDropped.Add(1)
		return false
	}
	s := e.pending.put(seq, payload)
	if s < 0 {
		e.st.pendingDropped.Add(1)
		return false
	}
	f.pend[f.npend] = s
	f.npend++
	e.st.pendingHeld.Add(1)
	return true
}

// freeCount returns how many slots are free.
func (p *pendingPool) freeCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.freeL)
}
