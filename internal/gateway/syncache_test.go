package gateway

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// unkeyedBucket is a layout an attacker can compute: the low bits of the
// client address XOR the client port.
func unkeyedBucket(t *cookies.Tuple, mask uint32) uint32 {
	return (binary.BigEndian.Uint32(t.Src[:4]) ^ uint32(t.SrcPort)) & mask
}

// collidingTuples returns n distinct tuples that all land in bucket 0 of
// the unkeyed layout.
func collidingTuples(n int, mask uint32) []cookies.Tuple {
	out := make([]cookies.Tuple, 0, n)
	base := binary.BigEndian.Uint32(netip.MustParseAddr("198.18.0.0").AsSlice())
	for i := 0; len(out) < n; i++ {
		ip := base + uint32(i)
		t := cookies.Tuple{SrcPort: uint16(ip & mask), DstPort: serverPort}
		binary.BigEndian.PutUint32(t.Src[:], ip)
		copy(t.Dst[:], server4.AsSlice())
		out = append(out, t)
	}
	return out
}

// TestSynCacheKeyedSpread: SYNs crafted to collide under an unkeyed layout
// spread over the buckets like random ones, since a bucket is named by the
// cookie's keyed MAC bits: whether the attacker varies the tuple (every
// tuple in unkeyed bucket 0) or keeps one tuple and varies the ISN.
func TestSynCacheKeyedSpread(t *testing.T) {
	h := newHarness(t, false, testAdvertise(), func(c *Config) { c.CacheBuckets, c.CacheEntries = 512, 30 })
	c := &h.e.cache
	mask := uint32(c.nbuckets - 1)
	const n = 100000
	tuples := collidingTuples(n, mask)
	for i := range tuples {
		if b := unkeyedBucket(&tuples[i], mask); b != 0 {
			t.Fatalf("crafted tuple %d in unkeyed bucket %d, want 0", i, b)
		}
	}
	for _, tc := range []struct {
		name string
		syn  func(i int) (*cookies.Tuple, uint32) // tuple and client ISN of SYN i
	}{
		{"tuples", func(i int) (*cookies.Tuple, uint32) { return &tuples[i], 1 }},
		{"isns", func(i int) (*cookies.Tuple, uint32) { return &tuples[0], uint32(i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			load := make([]int, c.nbuckets)
			for i := 0; i < n; i++ {
				tp, isn := tc.syn(i)
				b, _ := c.bucket(h.e.Jar().ISN(tp, isn, 1460, h.now))
				load[b]++
			}
			mean := n / c.nbuckets
			maxLoad, minLoad := 0, n
			for _, l := range load {
				maxLoad, minLoad = max(maxLoad, l), min(minLoad, l)
			}
			// Poisson(195): the standard deviation is 14; 1.5× the mean is > 6 sd.
			if maxLoad > mean*3/2 || minLoad < mean/2 {
				t.Errorf("keyed bucket loads %d..%d for mean %d, want within [%d, %d]", minLoad, maxLoad, mean, mean/2, mean*3/2)
			}
		})
	}
}

// TestSynCacheCraftedSynsKeepEntries: 10 SYNs per bucket, crafted for one
// unkeyed bucket, go through the engine; with the keyed hash no live entry
// is evicted, so every one of those clients keeps its exact options.
func TestSynCacheCraftedSynsKeepEntries(t *testing.T) {
	h := newHarness(t, false, testAdvertise(), func(c *Config) { c.CacheBuckets, c.CacheEntries = 512, 30 })
	mask := uint32(h.e.cache.nbuckets - 1)
	tuples := collidingTuples(10*h.e.cache.nbuckets, mask)
	var r engine.Result
	for i := range tuples {
		tp := &tuples[i]
		pkt := craftPacket(t, netip.AddrFrom4([4]byte(tp.Src[:4])), server4, tp.SrcPort, serverPort,
			seg{flags: header.SYN, seq: uint32(i), win: 1000, mss: 1460})
		h.w.Process(pkt, engine.Meta{}, h.now, &r)
		if r.Event != engine.EventSynAnswered {
			t.Fatalf("SYN %d: %v", i, r.Event)
		}
	}
	if ev := h.e.Stats().CacheEvictions; ev > 0 {
		t.Errorf("CacheEvictions = %d after %d crafted SYNs into %d×%d entries, want 0", ev, len(tuples), h.e.cache.nbuckets, h.e.cache.per)
	}
	total := 0
	for _, l := range h.e.cache.load() {
		total += l
	}
	if total != len(tuples) {
		t.Errorf("cache holds %d entries, want %d", total, len(tuples))
	}
}

// TestSynFloodMemoryFixed: a million distinct SYNs leave the heap and the
// tables as they were; the cache fills and evicts its oldest entries.
func TestSynFloodMemoryFixed(t *testing.T) {
	n := 1000000
	if raceEnabled || testing.Short() {
		n = 100000
	}
	h := newHarness(t, false, testAdvertise(), func(c *Config) { c.CacheBuckets, c.CacheEntries = 512, 30 })
	pkt := craftPacket(t, client4, server4, 1, serverPort, seg{flags: header.SYN, seq: 1, win: 1000, mss: 1460, ts: true, tsVal: 5, sackPerm: true, hasWS: true, ws: 7})
	entries := len(h.e.cache.entries)
	var r engine.Result
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		// Distinct clients: address in 198.18.0.0/15 and port vary.
		binary.BigEndian.PutUint32(pkt[12:], 0xc6120000|uint32(i>>4)&0x1ffff)
		binary.BigEndian.PutUint16(pkt[20:], uint16(1024+i&15))
		binary.BigEndian.PutUint32(pkt[24:], uint32(i))
		h.w.Process(pkt, engine.Meta{}, h.now, &r)
		if r.Event != engine.EventSynAnswered {
			t.Fatalf("SYN %d: %v %v", i, r.Event, r.Reason)
		}
		if i%1000 == 0 {
			h.now = h.now.Add(time.Millisecond)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 1<<20 {
		t.Errorf("heap grew by %d bytes over %d SYNs, want < 1 MiB", grow, n)
	}
	if len(h.e.cache.entries) != entries {
		t.Errorf("cache has %d entries, want %d", len(h.e.cache.entries), entries)
	}
	total := 0
	for _, l := range h.e.cache.load() {
		if l > h.e.cache.per {
			t.Fatalf("bucket load %d > %d", l, h.e.cache.per)
		}
		total += l
	}
	st := h.e.Stats()
	if total != entries || st.CacheEvictions != uint64(n-entries) {
		t.Errorf("cache holds %d of %d, evictions %d, want full and %d", total, entries, st.CacheEvictions, n-entries)
	}
}

// TestSynCacheEvictsOldest: a bucket that takes one SYN more than it holds
// drops its oldest entry and keeps the others; the ACK of the evicted
// entry's SYN-ACK is still admitted by its cookie alone.
func TestSynCacheEvictsOldest(t *testing.T) {
	h := newHarness(t, false, testAdvertise()) // 64 buckets × 4
	c := &h.e.cache
	// Client ports whose SYNs' cookies name bucket 0 (the test holds the key).
	var tuples []cookies.Tuple
	for port := uint16(1024); len(tuples) < c.per+1; port++ {
		tp := h.tuple()
		tp.SrcPort = port
		if b, _ := c.bucket(h.e.Jar().ISN(&tp, clientISN, 1460, h.now)); b == 0 {
			tuples = append(tuples, tp)
		}
	}
	acks := make([][]byte, len(tuples))
	for i := range tuples {
		tp := &tuples[i]
		r := h.expect(craftPacket(t, h.client(), h.server(), tp.SrcPort, serverPort, fullSyn()), engine.Drop, engine.EventSynAnswered)
		sa := decode(t, r.Inject[0])
		acks[i] = craftPacket(t, h.client(), h.server(), tp.SrcPort, serverPort,
			seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal})
	}
	if got := h.e.Stats().CacheEvictions; got != 1 {
		t.Errorf("CacheEvictions = %d after %d SYNs into one bucket of %d, want 1", got, len(tuples), c.per)
	}
	for i := range acks {
		before := h.e.Stats()
		h.expect(acks[i], engine.Accept, engine.EventHandshake)
		after := h.e.Stats()
		wantHit := i > 0 // the first, oldest entry was evicted
		if hit := after.CacheHits > before.CacheHits; hit != wantHit {
			t.Errorf("ACK of SYN %d: cache hit %v, want %v", i, hit, wantHit)
		}
	}
}

// TestWindowScaleWithoutTimestamps (issue 12, 3): with a one-entry cache,
// two clients without timestamps that ask for window scaling and SACK.
// Whatever the SYN-ACK of each offered, the SYN to the server carries the
// same, so that the two sides never disagree on scaling: the first client's
// entry is pinned (it is offered both and keeps them), the second finds no
// room and is offered neither.
func TestWindowScaleWithoutTimestamps(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise(), func(c *Config) { c.CacheBuckets, c.CacheEntries = 1, 1 })
		syn := seg{flags: header.SYN, seq: clientISN, win: 64240, mss: 1460, sackPerm: true, hasWS: true, ws: 8}
		var synAcks [2]out
		for i, port := range []uint16{41000, 41001} {
			s := syn
			s.sport = port
			r := h.expect(h.craft(s), engine.Drop, engine.EventSynAnswered)
			synAcks[i] = decode(t, r.Inject[0])
		}
		for i, port := range []uint16{41000, 41001} {
			sa := synAcks[i]
			r := h.expect(h.craft(seg{sport: port, flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 2000}), engine.Accept, engine.EventHandshake)
			up := decode(t, r.Packet)
			if (sa.WS >= 0) != (up.WS >= 0) || sa.SACKPerm != up.SACKPerm {
				t.Errorf("client %d: SYN-ACK offered window scale %d, SACK %v; SYN to the server carries %d, %v", i, sa.WS, sa.SACKPerm, up.WS, up.SACKPerm)
			}
			if up.WS >= 0 && up.WS != 8 {
				t.Errorf("client %d: SYN to the server has window scale %d, want the client's 8", i, up.WS)
			}
		}
		if synAcks[0].WS != 7 || !synAcks[0].SACKPerm {
			t.Errorf("first SYN-ACK: window scale %d, SACK %v, want 7, true (a pinned entry)", synAcks[0].WS, synAcks[0].SACKPerm)
		}
		if synAcks[1].WS != -1 || synAcks[1].SACKPerm {
			t.Errorf("second SYN-ACK: window scale %d, SACK %v, want none (no room)", synAcks[1].WS, synAcks[1].SACKPerm)
		}
		if got := h.e.Stats().CacheFull; got != 1 {
			t.Errorf("Stats().CacheFull = %d, want 1", got)
		}
		// The first client's ACK took its entry: the slot is free at once.
		s := syn
		s.sport = 41003
		if sa := decode(t, h.expect(h.craft(s), engine.Drop, engine.EventSynAnswered).Inject[0]); sa.WS != 7 {
			t.Errorf("SYN-ACK after the pinned entry was taken: window scale %d, want 7", sa.WS)
		}
		// Once that cookie has expired, its entry makes room again.
		h.now = h.now.Add(2*30*time.Second + time.Second)
		s.sport = 41002
		sa := decode(t, h.expect(h.craft(s), engine.Drop, engine.EventSynAnswered).Inject[0])
		if sa.WS != 7 {
			t.Errorf("SYN-ACK after the pin expired: window scale %d, want 7", sa.WS)
		}
	})
}
