//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/policy"
)

// Generated names, shortened.
type (
	bpfState       = synstageSynstageState
	bpfKey         = synstageSynstageKey
	bpfPolicy      = synstageSynstagePolicy
	bpfLPMKey      = synstageSynstageLpmKey
	bpfRange       = synstageSynstageRange
	bpfPorts       = synstageSynstagePorts
	bpfLimitKey    = synstageSynstageLimitKey
	bpfLimitConfig = synstageSynstageLimitConfig
	bpfCounter     = synstageSynstageCounter
	bpfMode        = synstageSynstageMode
	bpfAdvertise   = synstageSynstageAdv
)

// Stage is the loaded BPF SYN stage: its program, maps and attachments. It
// is safe for concurrent use.
type Stage struct {
	mu    sync.Mutex
	spec  *ebpf.CollectionSpec
	objs  synstageObjects
	links []attachment
	st    bpfState
	slots [4]bpfKey
	// inner holds the trie maps of each policy generation, so that the
	// ones a swap replaces are closed.
	inner    [2][]*ebpf.Map
	limitIDs map[limitName]uint32
	closed   bool

	// inherited are attachments an earlier process handed over that
	// Attach has not claimed yet; adopted says the program and maps are
	// the earlier process's (adoptErr: why not, when some were handed
	// over).
	inherited []attachment
	adopted   bool
	adoptErr  error

	cacheBuckets, cachePer int
	cacheMem               *gateway.CacheMemory
	flowSlots              int
	flowMem                []byte // the engine's flow tags, once mapped

	pol    bpfPolicy     // the policy scalars in force
	budget *SynAckBudget // nil until SynAckBudget
}

type attachment struct {
	ifname string
	mode   AttachMode
	l      link.Link
	peer   bool // marked in peer_ifs (markPeer)
}

// ifindex is the attachment's interface index now, 0 when it is gone.
func (a attachment) ifindex() int {
	ifi, err := net.InterfaceByName(a.ifname)
	if err != nil {
		return 0
	}
	return ifi.Index
}

// limitName identifies a per-source limiter across policy reloads: the
// engine keeps a limiter's state while the service's name and prefix
// lengths stay the same, and so does the stage.
type limitName struct {
	service    string
	pfx4, pfx6 uint8
}

// Load loads the program and its maps into the kernel. It attaches
// nothing; until SetPolicy and Rotate have run, the program lets every
// packet through. An error wraps ErrUnavailable: the caller runs without
// the stage (NFQUEUE alone) and says so.
//
// With Options.Inherited (a graceful restart), Load adopts the program and
// maps of the earlier process instead when they are the ones it would load
// (same BPF object, same sizes), with their state: keys, policy, limiters,
// counters and the SYN cache; else it loads its own and moves the
// inherited attachments onto them (Adopted says which and why). Either
// way the inherited attachments stay attached, and Attach claims them.
// Load consumes Options.Inherited.
func Load(opts Options) (*Stage, error) {
	in := opts.Inherited
	defer in.Close()
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	spec, err := loadSynstage()
	if err != nil {
		return nil, fmt.Errorf("%w: reading the object: %w", ErrUnavailable, err)
	}
	limitSlots := int(spec.Maps["source_limits"].MaxEntries)
	if opts.SourceLimitSlots > 0 {
		if opts.SourceLimitSlots > 1<<24 {
			return nil, fmt.Errorf("%w: %d per-source limiter slots are too many (at most 2^24)", ErrUnavailable, opts.SourceLimitSlots)
		}
		limitSlots = 1 << bits.Len(uint(opts.SourceLimitSlots-1))
		spec.Maps["source_limits"].MaxEntries = uint32(limitSlots)
	}
	buckets, per := cacheSize(opts)
	if buckets*per > 1<<26 || per > maxCachePer {
		return nil, fmt.Errorf("%w: a SYN cache of %d×%d entries is too large to share (at most %d per bucket and 2^26 in all)", ErrUnavailable, buckets, per, maxCachePer)
	}
	flows := opts.Flows
	if flows <= 0 {
		flows = gateway.DefaultFlows
	}
	flowSlots := gateway.FlowSlots(flows)
	if flowSlots > 1<<26 {
		return nil, fmt.Errorf("%w: a flow table of %d slots is too large to share", ErrUnavailable, flowSlots)
	}
	spec.Maps["flow_tags"].MaxEntries = uint32(flowSlots / gateway.FlowBucketSize)
	spec.Maps["cache_heads"].MaxEntries = uint32(buckets)
	spec.Maps["cache_slots"].MaxEntries = uint32(buckets * per)
	spec.Maps["cache_entries"].MaxEntries = uint32(buckets * per)
	spec.Maps["cache_pins"].MaxEntries = uint32(buckets * per)
	s := &Stage{spec: spec, limitIDs: map[limitName]uint32{}, cacheBuckets: buckets, cachePer: per, flowSlots: flowSlots}
	if in != nil {
		if err := s.adopt(in); err != nil {
			s.adoptErr = err
			s.objs = synstageObjects{}
			s.st, s.slots = bpfState{}, [4]bpfKey{}
			clear(s.limitIDs)
		}
	}
	if !s.adopted {
		if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				return nil, fmt.Errorf("%w: the verifier refused the program: %+v", ErrUnavailable, ve)
			}
			return nil, fmt.Errorf("%w: loading: %w", ErrUnavailable, err)
		}
		// The limiter table's slot hash: keyed, so that a sender cannot
		// aim its sources at another prefix's slot. Adopted maps keep
		// theirs with their buckets.
		var lc bpfLimitConfig
		for i := range lc.Seed {
			lc.Seed[i] = rand.Uint64()
		}
		lc.Mask = uint32(limitSlots - 1)
		if err := s.objs.LimitConfig.Put(uint32(0), &lc); err != nil {
			s.objs.Close()
			return nil, fmt.Errorf("%w: writing the limiter configuration: %w", ErrUnavailable, err)
		}
	}
	if in != nil {
		if err := s.takeLinks(in); err != nil {
			s.adoptErr = errors.Join(s.adoptErr, err)
		}
	}
	return s, nil
}

// maxCachePer is SYNSTAGE_MAX_CACHE_PER (bpf/synstage.h): the most entries
// per bucket the program walks (the engine takes up to 1024; its default
// is 30). A larger bucket leaves the stage unavailable.
const maxCachePer = 64

// cacheSize returns the SYN cache's geometry as the engine makes it.
func cacheSize(opts Options) (buckets, per int) {
	b, per := opts.CacheBuckets, opts.CacheEntries
	if b <= 0 {
		b = gateway.DefaultCacheBuckets
	}
	if per <= 0 {
		per = gateway.DefaultCacheEntries
	}
	buckets = 1
	for buckets < b {
		buckets <<= 1
	}
	return buckets, per
}

// CacheMemory returns the program's SYN cache maps, mapped into this
// process, for gateway.Config.CacheMemory: the engine then keeps its SYN
// cache there and finds the entries the program writes for the SYNs it
// answers. The mappings stay until the process exits (the engine may
// outlive the stage); the program writes entries only after ShareCache.
func (s *Stage) CacheMemory() (*gateway.CacheMemory, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.cacheMem != nil {
		return s.cacheMem, nil
	}
	mm := func(m *ebpf.Map, n, size int) ([]byte, error) {
		l := n * size
		pg := unix.Getpagesize()
		b, err := unix.Mmap(m.FD(), 0, (l+pg-1)/pg*pg, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("synstage: mapping the SYN cache: %w", err)
		}
		return b[:l], nil
	}
	n := s.cacheBuckets * s.cachePer
	var mem gateway.CacheMemory
	var err error
	if mem.Heads, err = mm(s.objs.CacheHeads, s.cacheBuckets, gateway.CacheHeadSize); err != nil {
		return nil, err
	}
	if mem.Slots, err = mm(s.objs.CacheSlots, n, gateway.CacheSlotSize); err != nil {
		return nil, err
	}
	if mem.Entries, err = mm(s.objs.CacheEntries, n, gateway.CacheEntrySize); err != nil {
		return nil, err
	}
	if mem.Pins, err = mm(s.objs.CachePins, n, gateway.CachePinSize); err != nil {
		return nil, err
	}
	s.cacheMem = &mem
	return s.cacheMem, nil
}

// FlowTagMemory returns the map of the engine's flow-table slot tags,
// mapped into this process, for gateway.Config.FlowTagMemory: the program
// then leaves a SYN on the tuple of a flow the engine holds to the engine
// (see doc.go). The mapping stays until the process exits; the program
// reads the tags only after ShareCache.
func (s *Stage) FlowTagMemory() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.flowMem != nil {
		return s.flowMem, nil
	}
	l := s.flowSlots * gateway.FlowTagSize
	pg := unix.Getpagesize()
	b, err := unix.Mmap(s.objs.FlowTags.FD(), 0, (l+pg-1)/pg*pg, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("synstage: mapping the flow tags: %w", err)
	}
	s.flowMem = b[:l]
	return s.flowMem, nil
}

// ShareCache lets the program write SYN-cache entries for an engine that
// keeps its cache in CacheMemory: seed is the engine's FlowSeed, with which
// the program names an entry's tuple as the engine does, and pinMs its
// CachePinMs, how long a pinned entry is kept. When the engine keeps its
// flow tags in FlowTagMemory, the program reads them from then on.
func (s *Stage) ShareCache(seed [4]uint64, pinMs uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	c := synstageSynstageCacheConfig{Mask: uint32(s.cacheBuckets - 1), Per: uint32(s.cachePer), Enabled: 1, PinMs: pinMs, Seed: seed}
	if s.flowMem != nil {
		c.Flows, c.FlowMask = 1, uint32(s.flowSlots/gateway.FlowBucketSize-1)
	}
	if err := s.objs.CacheConfig.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("synstage: writing the SYN cache configuration: %w", err)
	}
	return nil
}

// Attach attaches the program to the ingress of interface ifname: with
// tcx (kernel 6.6 or later) or as a native XDP program (drivers that
// support it). The attachment lasts until Close.
func (s *Stage) Attach(ifname string, mode AttachMode) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("%w: interface %s: %w", ErrUnavailable, ifname, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for i, a := range s.inherited {
		if a.ifname == ifname && a.mode == mode {
			// Attached by an earlier process and handed over: it
			// stays as it is, never detached in between.
			a.peer = s.markPeer(ifi.Index, mode)
			s.links = append(s.links, a)
			s.inherited = append(s.inherited[:i], s.inherited[i+1:]...)
			return nil
		}
	}
	var l link.Link
	switch mode {
	case AttachTCX:
		l, err = link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: s.objs.SynstageTc, Attach: ebpf.AttachTCXIngress})
	case AttachXDP:
		l, err = link.AttachXDP(link.XDPOptions{Interface: ifi.Index, Program: s.objs.SynstageXdp, Flags: link.XDPDriverMode})
	default:
		return fmt.Errorf("synstage: attach mode %v is not tcx or xdp", mode)
	}
	if err != nil {
		return fmt.Errorf("%w: attaching %v to %s: %w", ErrUnavailable, mode, ifname, err)
	}
	s.links = append(s.links, attachment{ifname: ifname, mode: mode, l: l, peer: s.markPeer(ifi.Index, mode)})
	return nil
}

// RecheckPeers checks again, for every tcx attachment, whether its veth's
// peer is still in another namespace (a peer moved into the gateway's own
// namespace would make bpf_redirect_peer drop every SYN-ACK), updates the
// marks and returns the attachments whose mark changed, as they are now.
// The daemon calls it on its housekeeping tick.
func (s *Stage) RecheckPeers() []Attachment {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var changed []Attachment
	for i := range s.links {
		a := &s.links[i]
		if a.mode != AttachTCX {
			continue
		}
		if peer := s.markPeer(a.ifindex(), a.mode); peer != a.peer {
			a.peer = peer
			changed = append(changed, Attachment{Interface: a.ifname, Mode: a.mode, Peer: peer})
		}
	}
	return changed
}

// markPeer writes ifindex into the program's peer_ifs slot when the tcx
// attachment there is on a veth whose peer is in another namespace, so
// that its SYN-ACKs take bpf_redirect_peer, and clears a mark it finds for
// the index otherwise (an adopted map may hold one for an index reused
// since). When another attached veth holds the slot, the interface stays
// unmarked: plain bpf_redirect is right everywhere. It reports whether the
// interface is marked; a failed check counts as no.
func (s *Stage) markPeer(ifindex int, mode AttachMode) bool {
	if ifindex <= 0 {
		return false
	}
	slot := uint32(ifindex) & 255
	var cur uint32
	if err := s.objs.PeerIfs.Lookup(slot, &cur); err != nil {
		return false
	}
	ok := false
	if mode == AttachTCX {
		ok, _ = vethPeerElsewhere(ifindex)
	}
	if !ok {
		if cur == uint32(ifindex) {
			s.objs.PeerIfs.Put(slot, uint32(0))
		}
		return false
	}
	if cur != 0 && cur != uint32(ifindex) {
		for _, a := range append(s.links[:len(s.links):len(s.links)], s.inherited...) {
			if a.peer && a.ifindex() == int(cur) {
				return false
			}
		}
	}
	return s.objs.PeerIfs.Put(slot, uint32(ifindex)) == nil
}

// Rotate gives the stage the cookie keys of jar around now: the keys of
// counters cur-2 .. cur+1 and cur as the counter in force. The daemon calls
// it at every key rotation (at least once per cookie period, and at once
// after Load); calling it more often is harmless.
func (s *Stage) Rotate(jar *cookies.Jar, now time.Time) error {
	cur := jar.Counter(now)
	var keys [4]cookies.CounterKey
	for i := range keys {
		keys[i] = jar.CounterKey(cur - 2 + uint64(i))
	}
	return s.SetKeys(now, cur, keys)
}

// SetKeys installs keys[i] as the key of counter cur-2+i and makes cur the
// counter in force. The stage never derives keys and never reads the wall
// clock for the counter; now anchors the millisecond clock of the TSval it
// sends (slots already holding their key keep their anchor).
//
// Each key lives in ring slot counter&3 and is written before its counter
// comes into force (as cur+1 one period early), so a SYN never reads a key
// being written; the slot that changes at a rotation is the one of cur+1.
func (s *Stage) SetKeys(now time.Time, cur uint64, keys [4]cookies.CounterKey) error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("synstage: reading the monotonic clock: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for i, k := range keys {
		c := cur - 2 + uint64(i)
		slot := uint32(c & 3)
		old := &s.slots[slot]
		if old.Counter == c && old.K0 == k.K0 && old.K1 == k.K1 && s.st.Flags&uint32(synstageSynstageFlagsSYNSTAGE_F_KEYS) != 0 {
			continue
		}
		nk := bpfKey{Counter: c, K0: k.K0, K1: k.K1, TsMs: uint64(now.UnixMilli()), TsNs: uint64(ts.Nano())}
		if err := s.objs.Keys.Put(slot, &nk); err != nil {
			return fmt.Errorf("synstage: writing key slot %d: %w", slot, err)
		}
		*old = nk
	}
	st := s.st
	st.Counter = cur
	st.Flags |= uint32(synstageSynstageFlagsSYNSTAGE_F_KEYS)
	return s.putState(st)
}

func (s *Stage) putState(st bpfState) error {
	if err := s.objs.State.Put(uint32(0), &st); err != nil {
		return fmt.Errorf("synstage: writing the state: %w", err)
	}
	s.st = st
	return nil
}

// setFixedClock makes every TSval the anchor of its key slot (tests, so
// that the program's output does not depend on when it runs).
func (s *Stage) setFixedClock(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Flags &^= uint32(synstageSynstageFlagsSYNSTAGE_F_FIXED_CLOCK)
	if on {
		st.Flags |= uint32(synstageSynstageFlagsSYNSTAGE_F_FIXED_CLOCK)
	}
	return s.putState(st)
}

// gcraParams are the limit package's constants for rate and burst.
func gcraParams(perSecond float64, burst uint32) (interval, tau uint64) {
	iv := uint64(math.Round(1e9 / perSecond))
	return iv, iv * uint64(max(burst, 1))
}

// SetPolicy makes p the policy of the stage. The tries of the services,
// deny and allow lists are built anew, beside the ones in force, and come
// into force together with p's limits by one write of the generation
// number; see doc.go. Per-source limiter state survives where the service
// name and its prefix lengths are unchanged. On error the old policy stays.
func (s *Stage) SetPolicy(p *policy.Policy) error {
	if p == nil {
		return errors.New("synstage: nil policy")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	g := 1 - s.st.Gen&1

	svcs, err := s.servicesTrie(p)
	if err != nil {
		return err
	}
	deny, err := s.prefixTrie(p.Deny)
	if err != nil {
		svcs.Close()
		return err
	}
	allow, err := s.prefixTrie(p.Allow)
	if err != nil {
		svcs.Close()
		deny.Close()
		return err
	}
	maps := []*ebpf.Map{svcs, deny, allow}
	fail := func(err error) error {
		for _, m := range maps {
			m.Close()
		}
		return err
	}
	var bp bpfPolicy
	if p.InvalidFlags == policy.InvalidFlagsCount {
		bp.InvalidFlagsCount = 1
	}
	if len(p.Deny) > 0 {
		bp.HasDeny = 1
	}
	if r := p.Limits.SynAckRate; !r.IsZero() {
		bp.SynackLimit = 1
		bp.SynackIntervalNs, bp.SynackTauNs = gcraParams(r.PerSecond(), p.Limits.SynAckBurst)
	}
	for _, x := range []struct {
		outer *ebpf.Map
		inner *ebpf.Map
	}{{s.objs.Services, svcs}, {s.objs.Deny, deny}, {s.objs.Allow, allow}} {
		if err := x.outer.Put(g, x.inner); err != nil {
			return fail(fmt.Errorf("synstage: installing a trie: %w", err))
		}
	}
	if err := s.objs.Policy.Put(g, &bp); err != nil {
		return fail(fmt.Errorf("synstage: writing the policy: %w", err))
	}
	st := s.st
	st.Gen = g
	if err := s.putState(st); err != nil {
		return fail(err)
	}
	s.pol = bp
	if s.budget != nil {
		s.budget.setPolicy(bp)
	}
	for _, m := range s.inner[g] {
		m.Close()
	}
	s.inner[g] = maps
	return nil
}

// lpmKey returns the trie key of a prefix.
func lpmKey(pf netip.Prefix, addr []byte, v6 bool) bpfLPMKey {
	var k bpfLPMKey
	k.Family = 4
	if v6 {
		k.Family = 6
	}
	copy(k.Addr[:], addr)
	k.Prefixlen = 8 + uint32(pf.Bits())
	return k
}

func (s *Stage) newTrie(template string, n int) (*ebpf.Map, error) {
	ms := s.spec.Maps[template].Copy()
	ms.MaxEntries = uint32(max(n, 1))
	ms.Pinning = ebpf.PinNone
	m, err := ebpf.NewMap(ms)
	if err != nil {
		return nil, fmt.Errorf("synstage: creating a %d-entry trie: %w", n, err)
	}
	return m, nil
}

func (s *Stage) servicesTrie(p *policy.Policy) (*ebpf.Map, error) {
	ents := servicePrefixes(p)
	m, err := s.newTrie("services_trie", len(ents))
	if err != nil {
		return nil, err
	}
	used := map[limitName]bool{}
	for _, e := range ents {
		var v bpfPorts
		if len(e.Ranges) > len(v.R) {
			v.N = uint32(len(v.R)) + 1 // left to the NFQUEUE path
		} else {
			v.N = uint32(len(e.Ranges))
			for i, r := range e.Ranges {
				v.R[i] = s.rangeValue(r, used)
			}
		}
		a := e.Prefix.Addr()
		var k bpfLPMKey
		if a.Is4() {
			b := a.As4()
			k = lpmKey(e.Prefix, b[:], false)
		} else {
			b := a.As16()
			k = lpmKey(e.Prefix, b[:], true)
		}
		if err := m.Put(&k, &v); err != nil {
			m.Close()
			return nil, fmt.Errorf("synstage: adding %v to the services trie: %w", e.Prefix, err)
		}
	}
	for n := range s.limitIDs {
		if !used[n] {
			delete(s.limitIDs, n)
		}
	}
	return m, nil
}

// rangeValue is the program's view of one range and its service.
func (s *Stage) rangeValue(r portRange, used map[limitName]bool) bpfRange {
	sv := r.Svc
	a := &sv.Advertise
	v := bpfRange{Lo: r.Lo, Hi: r.Hi, AdvWscale: a.WScale, AdvMss4: a.MSS4, AdvMss6: a.MSS6, AdvWindow: a.Window}
	switch sv.Mode {
	case policy.ModeProxy:
		v.Mode = uint8(synstageSynstageModeSYNSTAGE_MODE_PROXY)
	case policy.ModePass:
		v.Mode = uint8(synstageSynstageModeSYNSTAGE_MODE_PASS)
	default:
		v.Mode = uint8(synstageSynstageModeSYNSTAGE_MODE_DROP)
	}
	if a.SACK {
		v.Adv |= uint8(synstageSynstageAdvSYNSTAGE_ADV_SACK)
	}
	if a.Timestamps {
		v.Adv |= uint8(synstageSynstageAdvSYNSTAGE_ADV_TS)
	}
	if a.ECN {
		v.Adv |= uint8(synstageSynstageAdvSYNSTAGE_ADV_ECN)
	}
	// Per-source limits as gateway buildActive makes them: proxy services
	// only, /24 and /64 unless set.
	if l := sv.Limit; !l.Rate.IsZero() && sv.Mode == policy.ModeProxy {
		p4, p6 := l.Prefix4, l.Prefix6
		if p4 == 0 {
			p4 = 24
		}
		if p6 == 0 {
			p6 = 64
		}
		n := limitName{sv.Name, p4, p6}
		id, ok := s.limitIDs[n]
		if !ok {
			id = s.nextLimitID()
			s.limitIDs[n] = id
		}
		used[n] = true
		v.LimitId, v.LimitPrefix4, v.LimitPrefix6 = id, p4, p6
		v.LimitIntervalNs, v.LimitTauNs = gcraParams(l.Rate.PerSecond(), l.Burst)
	}
	return v
}

// nextLimitID returns an id no live limiter uses. Ids are never 0.
func (s *Stage) nextLimitID() uint32 {
	for id := uint32(1); ; id++ {
		taken := false
		for _, v := range s.limitIDs {
			if v == id {
				taken = true
				break
			}
		}
		if !taken {
			return id
		}
	}
}

func (s *Stage) prefixTrie(list []netip.Prefix) (*ebpf.Map, error) {
	m, err := s.newTrie("prefix_trie", len(list))
	if err != nil {
		return nil, err
	}
	one := uint8(1)
	for _, pf := range list {
		pf = pf.Masked()
		a := pf.Addr()
		var k bpfLPMKey
		if a.Is4() {
			b := a.As4()
			k = lpmKey(pf, b[:], false)
		} else {
			b := a.As16()
			k = lpmKey(pf, b[:], true)
		}
		if err := m.Put(&k, &one); err != nil {
			m.Close()
			return nil, fmt.Errorf("synstage: adding %v to a prefix trie: %w", pf, err)
		}
	}
	return m, nil
}

// Stats returns the stage's counters, summed over CPUs.
func (s *Stage) Stats() (Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st Stats
	if s.closed {
		return st, ErrClosed
	}
	var raw [synstageSynstageCounterSYNSTAGE_NUM_COUNTERS]uint64
	var per []uint64
	for i := range raw {
		if err := s.objs.Counters.Lookup(uint32(i), &per); err != nil {
			return st, fmt.Errorf("synstage: reading counter %d: %w", i, err)
		}
		for _, v := range per {
			raw[i] += v
		}
	}
	st.fill(raw[:])
	return st, nil
}

// Attachments lists where the program is attached.
func (s *Stage) Attachments() []Attachment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Attachment, 0, len(s.links))
	for _, a := range s.links {
		out = append(out, Attachment{Interface: a.ifname, Mode: a.mode, Peer: a.peer})
	}
	return out
}

// Close detaches the program from every interface and releases the
// program and maps. It is safe to call twice.
func (s *Stage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.budget != nil {
		s.budget.off.Store(true)
	}
	var errs []error
	for _, a := range s.links {
		if err := a.l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("synstage: detaching from %s: %w", a.ifname, err))
		}
	}
	s.links = nil
	for _, a := range s.inherited {
		if err := a.l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("synstage: detaching from %s: %w", a.ifname, err))
		}
	}
	s.inherited = nil
	for g := range s.inner {
		for _, m := range s.inner[g] {
			m.Close()
		}
		s.inner[g] = nil
	}
	if err := s.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
