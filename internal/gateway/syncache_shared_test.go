package gateway

import (
	"testing"
	"unsafe"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// TestCacheEntryLayout holds cacheEntry to the layout the BPF SYN stage
// shares (CacheEntrySize and the Cache*Offset constants; internal/synstage
// holds its C struct to the same constants).
func TestCacheEntryLayout(t *testing.T) {
	var c cacheEntry
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"size", unsafe.Sizeof(c), CacheEntrySize},
		{"fp", unsafe.Offsetof(c.fp), CacheFPOffset},
		{"clientISN", unsafe.Offsetof(c.clientISN), CacheClientISNOffset},
		{"cookie", unsafe.Offsetof(c.cookie), CacheCookieOffset},
		{"ourTS", unsafe.Offsetof(c.ourTS), CacheOurTSOffset},
		{"clientTS", unsafe.Offsetof(c.clientTS), CacheClientTSOffset},
		{"mss", unsafe.Offsetof(c.mss), CacheMSSOffset},
		{"ws", unsafe.Offsetof(c.ws), CacheWSOffset},
		{"advWS", unsafe.Offsetof(c.advWS), CacheAdvWSOffset},
		{"sack", unsafe.Offsetof(c.sack), CacheSACKOffset},
		{"ts", unsafe.Offsetof(c.ts), CacheTSOffset},
		{"ecn", unsafe.Offsetof(c.ecn), CacheECNOffset},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("cacheEntry %s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

// sharedMemory returns cache memory for buckets × per entries, as the SYN
// stage's maps provide it.
func sharedMemory(buckets, per int) *CacheMemory {
	heads := make([]uint64, buckets)
	slots := make([]uint64, buckets*per)
	entries := make([]uint64, buckets*per*CacheEntrySize/8)
	b := func(w []uint64) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), len(w)*8) }
	return &CacheMemory{Heads: b(heads), Slots: b(slots), Entries: b(entries)}
}

// TestSharedCacheMemory builds an engine on shared cache memory and checks
// that its entries live there (a handshake served from the cache), and that
// memory too small is refused.
func TestSharedCacheMemory(t *testing.T) {
	mem := sharedMemory(64, 4)
	h := newHarness(t, false, testAdvertise(), func(c *Config) { c.CacheMemory = mem })
	syn := h.craft(seg{flags: header.SYN, seq: 1000, mss: 1234, ws: 3, hasWS: true, sackPerm: true})
	r := h.expect(syn, engine.Drop, engine.EventSynAnswered)
	if n := countNonZero(mem.Slots); n != 1 {
		t.Fatalf("%d slot words in the shared memory are set after one SYN, want 1", n)
	}
	cookie := header.TCP(r.Inject[0][20:]).SequenceNumber()
	ack := h.craft(seg{flags: header.ACK, seq: 1001, ack: cookie + 1})
	r = h.expect(ack, engine.Accept, engine.EventHandshake)
	var p header.Packet
	if reason := header.Parse(r.Packet, &p); reason != header.OK {
		t.Fatal(reason)
	}
	// Without timestamps only the cache keeps the exact MSS and the scale.
	if !p.Opts.HasMSS || p.Opts.MSS != 1234 || !p.Opts.HasWScale || p.Opts.WScale != 3 || !p.Opts.SACKPermitted {
		t.Errorf("SYN to the server has options %+v, want MSS 1234, wscale 3, SACK from the shared cache", p.Opts)
	}
	if st := h.e.Stats(); st.CacheHits != 1 {
		t.Errorf("CacheHits = %d, want 1", st.CacheHits)
	}

	short := sharedMemory(64, 2)
	_, err := New(Config{Policy: testPolicy(t, testAdvertise()), CacheBuckets: 64, CacheEntries: 4, CacheMemory: short, Rand: seeded(2)})
	if err == nil {
		t.Error("New with cache memory for 64×2 entries and a cache of 64×4 succeeded")
	}
}

func countNonZero(b []byte) int {
	n := 0
	for i := 0; i+8 <= len(b); i += 8 {
		if *(*uint64)(unsafe.Pointer(&b[i])) != 0 {
			n++
		}
	}
	return n
}

// TestHandshakeOnClosingFlow: the handshake ACK of a new connection on the
// tuple of a closing flow, whose SYN the engine never saw (the BPF SYN
// stage answered it), replaces the flow instead of being translated into
// the old one.
func TestHandshakeOnClosingFlow(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		cookie, _, _ := h.establish(7, "")
		h.expect(h.craft(seg{flags: header.RST | header.ACK, seq: clientISN + 1, ack: cookie + 1}), engine.Accept, engine.EventTranslated)
		if f, ok := h.flowOf(); !ok || f.state != stateClosing {
			t.Fatalf("after RST: %v %v, want closing", f.state, ok)
		}
		tup := h.tuple()
		c2 := h.e.Jar().ISN(&tup, 99, 1460, h.now) // the stage's SYN-ACK
		h.expect(h.craft(seg{flags: header.ACK, seq: 100, ack: c2 + 1, win: 502}), engine.Accept, engine.EventHandshake)
		if f, ok := h.flowOf(); !ok || f.clientISN != 99 || f.state != stateSynSent {
			t.Errorf("flow = %v isn %d, want a new SynSent flow for ISN 99", f.state, f.clientISN)
		}
	})
}
