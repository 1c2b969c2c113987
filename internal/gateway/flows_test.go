package gateway

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// TestFlowTableChurn: many more handshakes than slots; the table stays
// within its capacity and counts what it evicts.
func TestFlowTableChurn(t *testing.T) {
	h := newHarness(t, false, testAdvertise(), func(c *Config) { c.Flows = 256 })
	capacity := len(h.e.flows.slots)
	const n = 5000
	for i := 0; i < n; i++ {
		cl := client4.As4()
		cl[2], cl[3] = byte(i>>8), byte(i)
		if ev := h.handshakeFrom(netip.AddrFrom4(cl), uint16(2000+i), uint32(i)); ev != engine.EventHandshake {
			t.Fatalf("handshake %d: %v", i, ev)
		}
		h.now = h.now.Add(time.Millisecond)
	}
	st := h.e.Stats()
	live := 0
	for i := range h.e.flows.tags {
		if h.e.flows.tags[i].Load() != 0 {
			live++
		}
	}
	if st.FlowsActive != int64(live) || live > capacity {
		t.Errorf("FlowsActive %d, live %d, capacity %d", st.FlowsActive, live, capacity)
	}
	if st.FlowsCreated != n || st.FlowsCreated-st.FlowsEvicted-st.FlowsExpired != uint64(live) {
		t.Errorf("created %d evicted %d expired %d live %d: do not add up", st.FlowsCreated, st.FlowsEvicted, st.FlowsExpired, live)
	}
	if st.FlowsEvicted+st.FlowsExpired < n-uint64(capacity) {
		t.Errorf("evicted %d + expired %d, want at least %d", st.FlowsEvicted, st.FlowsExpired, n-capacity)
	}
	if len(h.e.flows.slots) != capacity {
		t.Errorf("flow table resized")
	}
}

// TestFlowExpiry: SynSent flows time out after the handshake timeout,
// established ones after the idle timeout; lookups treat them as gone.
func TestFlowExpiry(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	for i := 0; i < 10; i++ {
		cl := client4.As4()
		cl[3] = byte(10 + i)
		if ev := h.handshakeFrom(netip.AddrFrom4(cl), 3000, 77); ev != engine.EventHandshake {
			t.Fatalf("handshake: %v", ev)
		}
	}
	h.establish(7, "")
	if n := h.e.Expire(h.now.Add(4 * time.Second)); n != 0 {
		t.Errorf("Expire(+4s) = %d, want 0", n)
	}
	if n := h.e.Expire(h.now.Add(6 * time.Second)); n != 10 {
		t.Errorf("Expire(+6s) = %d, want the 10 SynSent flows", n)
	}
	h.now = h.now.Add(50 * time.Second)
	if _, ok := h.flowOf(); !ok {
		t.Errorf("established flow gone before its idle timeout")
	}
	h.now = h.now.Add(61 * time.Second)
	if _, ok := h.flowOf(); ok {
		t.Errorf("established flow still found after its idle timeout")
	}
	if st := h.e.Stats(); st.FlowsActive != 0 || st.FlowsExpired != 11 {
		t.Errorf("active %d expired %d, want 0 11", st.FlowsActive, st.FlowsExpired)
	}
}

// TestConcurrentWorkers runs whole connections on two workers of one engine
// while a third goroutine sweeps, reads counters and reloads the policy.
// Run with -race.
func TestConcurrentWorkers(t *testing.T) {
	h := newHarness(t, false, testAdvertise(), func(c *Config) { c.Flows = 4096; c.CacheBuckets, c.CacheEntries = 16, 4 }) // room for all: a full bucket would give up handshakes first
	pol := h.e.Policy()
	const perWorker = 300
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan string, 2)
	for wi := 0; wi < 2; wi++ {
		wg.Add(1)
		go func(wi int) {
			defer wg.Done()
			w := h.e.NewWorker()
			now := h.now
			var r engine.Result
			for i := 0; i < perWorker; i++ {
				cl := netip.AddrFrom4([4]byte{198, 18, byte(10 + wi), byte(i)})
				port := uint16(10000 + i)
				w.Process(craftPacket(t, cl, server4, port, serverPort, seg{flags: header.SYN, seq: 100, win: 1, mss: 1460, ts: true, tsVal: 1}), engine.Meta{}, now, &r)
				if r.Event != engine.EventSynAnswered {
					errs <- "SYN: " + r.Event.String()
					return
				}
				sa := decode(t, r.Inject[0])
				w.Process(craftPacket(t, cl, server4, port, serverPort, seg{flags: header.ACK, seq: 101, ack: sa.Seq + 1, win: 1, ts: true, tsVal: 2, tsEcr: sa.TSVal, payload: "x"}), engine.Meta{}, now, &r)
				if r.Event != engine.EventHandshake {
					errs <- "ACK: " + r.Event.String()
					return
				}
				w.Process(craftPacket(t, server4, cl, serverPort, port, seg{flags: header.SYN | header.ACK, seq: 5000, ack: 101, win: 1, ts: true, tsVal: 9, tsEcr: 2}), engine.Meta{}, now, &r)
				if r.Event != engine.EventServerUp || len(r.Inject) != 2 {
					errs <- "server SYN-ACK: " + r.Event.String()
					return
				}
				w.Process(craftPacket(t, cl, server4, port, serverPort, seg{flags: header.ACK, seq: 102, ack: sa.Seq + 2, win: 1, ts: true, tsVal: 3, tsEcr: sa.TSVal}), engine.Meta{}, now, &r)
				if r.Event != engine.EventTranslated {
					errs <- "data: " + r.Event.String()
					return
				}
				now = now.Add(time.Millisecond)
			}
		}(wi)
	}
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			h.e.Expire(h.now)
			_ = h.e.Stats()
			if err := h.e.SetPolicy(pol); err != nil {
				errs <- err.Error()
				return
			}
		}
	}()
	wg.Wait()
	close(done)
	select {
	case e := <-errs:
		t.Fatal(e)
	default:
	}
	st := h.e.Stats()
	if st.Events[engine.EventServerUp] != 2*perWorker || st.Events[engine.EventTranslated] != 2*perWorker {
		t.Errorf("server_up %d translated %d, want %d each", st.Events[engine.EventServerUp], st.Events[engine.EventTranslated], 2*perWorker)
	}
	if got := h.e.flows.pending.freeCount(); got != 64 {
		t.Errorf("free pending slots %d, want 64", got)
	}
}

// TestConcurrentLockFreeTranslation: two workers translate data of the same
// established flows both ways, mostly on the lock-free path, while a third
// churns a flow through every state in the same bucket (its slot's view is
// published and withdrawn, the slot reused) and marks other flows with a new
// SYN. Every translation must be exact. Run with -race.
func TestConcurrentLockFreeTranslation(t *testing.T) {
	h := newHarness(t, false, testAdvertise(), func(c *Config) { c.Flows = FlowBucketSize }) // one bucket
	const stable = 8
	type conn struct {
		c2s, s2c         []byte
		wantAck, wantSeq uint32 // translated ACK (c2s) and sequence number (s2c)
		syn              []byte // a retransmission of the connection's SYN
	}
	handshake := func(w *Worker, port uint16, isn uint32) (cookie uint32, ok bool) {
		var r engine.Result
		cl := netip.AddrFrom4([4]byte{198, 18, 1, byte(port)})
		w.Process(craftPacket(t, cl, server4, port, serverPort, seg{flags: header.SYN, seq: isn, win: 1000, mss: 1460, ts: true, tsVal: 1}), engine.Meta{}, h.now, &r)
		if r.Event != engine.EventSynAnswered {
			return 0, false
		}
		cookie = binary.BigEndian.Uint32(r.Inject[0][24:])
		tsVal := binary.BigEndian.Uint32(r.Inject[0][len(r.Inject[0])-8:])
		w.Process(craftPacket(t, cl, server4, port, serverPort, seg{flags: header.ACK, seq: isn + 1, ack: cookie + 1, win: 1000, ts: true, tsVal: 2, tsEcr: tsVal}), engine.Meta{}, h.now, &r)
		if r.Event != engine.EventHandshake {
			return 0, false
		}
		w.Process(craftPacket(t, server4, cl, serverPort, port, seg{flags: header.SYN | header.ACK, seq: 5000 + isn, ack: isn + 1, win: 1000, mss: 1400, ts: true, tsVal: 9, tsEcr: 2}), engine.Meta{}, h.now, &r)
		return cookie, r.Event == engine.EventServerUp
	}
	var conns []conn
	for i := 0; i < stable; i++ {
		port, isn := uint16(20000+i), uint32(100*i)
		cookie, ok := handshake(h.w, port, isn)
		if !ok {
			t.Fatalf("handshake %d failed", i)
		}
		cl := netip.AddrFrom4([4]byte{198, 18, 1, byte(port)})
		conns = append(conns, conn{
			c2s:     craftPacket(t, cl, server4, port, serverPort, seg{flags: header.ACK | header.PSH, seq: isn + 1, ack: cookie + 7, win: 1000, payload: "data"}),
			s2c:     craftPacket(t, server4, cl, serverPort, port, seg{flags: header.ACK, seq: 5000 + isn + 1, ack: isn + 5, win: 1000, payload: "reply"}),
			wantAck: 5000 + isn + 7, wantSeq: cookie + 1,
			syn: craftPacket(t, cl, server4, port, serverPort, seg{flags: header.SYN, seq: isn, win: 1000, mss: 1460}),
		})
	}
	done := make(chan struct{})
	errs := make(chan string, 3)
	var wg sync.WaitGroup
	for wi := 0; wi < 2; wi++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := h.e.NewWorker()
			var r engine.Result
			buf := make([]byte, 0, 256)
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				c := &conns[n%stable]
				buf = append(buf[:0], c.c2s...)
				w.Process(buf, engine.Meta{}, h.now, &r)
				if got := binary.BigEndian.Uint32(buf[28:]); r.Event != engine.EventTranslated || got != c.wantAck {
					errs <- fmt.Sprintf("c2s %d: %v ack %d, want translated ack %d", n%stable, r.Event, got, c.wantAck)
					return
				}
				buf = append(buf[:0], c.s2c...)
				w.Process(buf, engine.Meta{}, h.now, &r)
				if got := binary.BigEndian.Uint32(buf[24:]); r.Event != engine.EventTranslated || got != c.wantSeq {
					errs <- fmt.Sprintf("s2c %d: %v seq %d, want translated seq %d", n%stable, r.Event, got, c.wantSeq)
					return
				}
			}
		}()
	}
	w := h.e.NewWorker()
	var r engine.Result
	for i := 0; i < 500; i++ {
		port, isn := uint16(30000), uint32(7+1000*i)
		cl := netip.AddrFrom4([4]byte{198, 18, 1, byte(port)})
		cookie, ok := handshake(w, port, isn) // removes the closing flow of the last round
		if !ok {
			t.Errorf("churn handshake %d failed", i)
			break
		}
		data := craftPacket(t, cl, server4, port, serverPort, seg{flags: header.ACK, seq: isn + 1, ack: cookie + 1, win: 1000, payload: "x"})
		w.Process(data, engine.Meta{}, h.now, &r)
		if got, want := binary.BigEndian.Uint32(data[28:]), 5000+isn+1; r.Event != engine.EventTranslated || got != want {
			t.Errorf("churn data %d: %v ack %d, want translated ack %d", i, r.Event, got, want)
			break
		}
		w.Process(craftPacket(t, cl, server4, port, serverPort, seg{flags: header.RST | header.ACK, seq: isn + 1, ack: cookie + 1, win: 0}), engine.Meta{}, h.now, &r)
		if r.Event != engine.EventTranslated {
			t.Errorf("churn RST %d: %v", i, r.Event)
			break
		}
		if i%50 == 0 { // a new SYN on a stable flow: its view is withdrawn for good
			w.Process(append([]byte(nil), conns[i/50%stable].syn...), engine.Meta{}, h.now, &r)
		}
		h.e.Expire(h.now)
	}
	close(done)
	wg.Wait()
	select {
	case e := <-errs:
		t.Fatal(e)
	default:
	}
}

// TestTupleHash checks that the seeded tuple hash, which the SYN cache
// keeps in place of the tuple, tells apart tuples that differ in any one
// field.
func TestTupleHash(t *testing.T) {
	var ft flowTable
	ft.init(64, 1, [4]uint64{0x0123456789abcdef, 0xfedcba9876543210, 0x0f1e2d3c4b5a6978, 0x8796a5b4c3d2e1f0}, nil)
	hash := func(x *cookies.Tuple) uint64 {
		var k flowKey
		k.set(&x.Src, &x.Dst, x.SrcPort, x.DstPort, x.V6)
		return ft.hash(&k)
	}
	base := cookies.Tuple{SrcPort: 1, DstPort: 2, V6: true}
	for i := range base.Src {
		base.Src[i], base.Dst[i] = byte(i), byte(100+i)
	}
	if a := base; hash(&a) != hash(&base) {
		t.Errorf("hash of a copy = %#x, want %#x", hash(&a), hash(&base))
	}
	for i := 0; i < 16; i++ {
		a, b := base, base
		a.Src[i]++
		b.Dst[i]++
		if hash(&a) == hash(&base) || hash(&b) == hash(&base) {
			t.Errorf("hash with address byte %d changed = hash of the original %#x", i, hash(&base))
		}
	}
	for _, mod := range []func(*cookies.Tuple){
		func(x *cookies.Tuple) { x.SrcPort++ },
		func(x *cookies.Tuple) { x.DstPort++ },
		func(x *cookies.Tuple) { x.V6 = false },
		func(x *cookies.Tuple) { x.SrcPort, x.DstPort = x.DstPort, x.SrcPort },
	} {
		a := base
		mod(&a)
		if hash(&a) == hash(&base) {
			t.Errorf("hash(%+v) = hash(%+v) = %#x, want them to differ", a, base, hash(&a))
		}
	}
}

// TestFlowSize: a flow is a whole number of cache lines, so that slots
// never share one.
func TestFlowSize(t *testing.T) {
	if n := unsafe.Sizeof(flow{}); n != 256 {
		t.Errorf("unsafe.Sizeof(flow{}) = %d, want 256", n)
	}
}

// establishFrom runs a whole handshake for client port port (timestamps
// off) and returns the cookie.
func (h *harness) establishFrom(port uint16) uint32 {
	h.tb.Helper()
	r := h.expect(h.craft(seg{sport: port, flags: header.SYN, seq: clientISN, win: 1000, mss: 1460}), engine.Drop, engine.EventSynAnswered)
	sa := decode(h.tb, r.Inject[0])
	h.expect(h.craft(seg{sport: port, flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 1000}), engine.Accept, engine.EventHandshake)
	h.expect(h.craft(seg{fromServer: true, dport: port, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 1000, mss: 1400}), engine.Drop, engine.EventServerUp)
	return sa.Seq
}

// TestEvictionOrder (issue 12, 9): a full bucket gives up a closing flow
// before a handshake, and a handshake before an established flow; an
// established flow pushed out gets an RST to each end; evictions are
// counted by kind.
func TestEvictionOrder(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise(), func(c *Config) { c.Flows, c.FlowsPerSource = FlowBucketSize, 100 }) // one bucket
		cookies := map[uint16]uint32{}
		for i := range FlowBucketSize - 2 {
			port := uint16(42000 + i)
			cookies[port] = h.establishFrom(port)
			h.now = h.now.Add(time.Millisecond)
		}
		// One handshake waiting for its server, and one flow closing, both
		// used more recently than any established flow.
		r := h.expect(h.craft(seg{sport: 43000, flags: header.SYN, seq: clientISN, win: 1000}), engine.Drop, engine.EventSynAnswered)
		sa := decode(t, r.Inject[0])
		h.expect(h.craft(seg{sport: 43000, flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 1000}), engine.Accept, engine.EventHandshake)
		h.establishFrom(43001)
		h.expect(h.craft(seg{sport: 43001, flags: header.RST, seq: clientISN + 1}), engine.Accept, engine.EventTranslated)

		kinds := func() [4]uint64 {
			s := h.e.Stats()
			return [4]uint64{s.FlowsEvictedClosing, s.FlowsEvictedHandshake, s.FlowsEvictedEstablished, s.FlowsEvicted}
		}
		var sent []out
		for i, want := range []struct {
			kinds [4]uint64
			rsts  int
		}{
			{[4]uint64{1, 0, 0, 1}, 0}, // the closing flow
			{[4]uint64{1, 1, 0, 2}, 0}, // the handshake
			{[4]uint64{1, 1, 1, 3}, 2}, // the least recently used established flow, 42000
		} {
			h.now = h.now.Add(time.Millisecond)
			r := h.expect(h.craft(seg{sport: uint16(44000 + i), flags: header.SYN, seq: clientISN, win: 1000}), engine.Drop, engine.EventSynAnswered)
			sa := decode(t, r.Inject[0])
			r = h.expect(h.craft(seg{sport: uint16(44000 + i), flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 1000}), engine.Accept, engine.EventHandshake)
			sent = sent[:0]
			for _, p := range r.Inject {
				sent = append(sent, decode(t, p))
			}
			h.run(h.craft(seg{fromServer: true, dport: uint16(44000 + i), flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 1000}), engine.Meta{})
			if got := kinds(); got != want.kinds {
				t.Fatalf("handshake %d: evictions closing, handshake, established, all = %v, want %v", i, got, want.kinds)
			}
			if len(sent) != want.rsts {
				t.Fatalf("handshake %d: %d packets sent, want %d", i, len(sent), want.rsts)
			}
		}
		for port := uint16(42000); port < 42000+FlowBucketSize-2; port++ {
			if _, ok := h.flowAt(port); ok != (port != 42000) {
				t.Errorf("established flow of port %d present %v, want %v", port, ok, port != 42000)
			}
		}
		for _, port := range []uint16{43000, 43001} {
			if _, ok := h.flowAt(port); ok {
				t.Errorf("flow of port %d (handshake or closing) still there, want it evicted before any established flow", port)
			}
		}
		toClient, toServer := sent[0], sent[1]
		wantC := out{Src: h.server(), Dst: h.client(), SrcPort: serverPort, DstPort: 42000, HopLimit: 64, Seq: cookies[42000] + 1, Flags: header.RST, WS: -1}
		wantS := out{Src: h.client(), Dst: h.server(), SrcPort: 42000, DstPort: serverPort, HopLimit: 64, Seq: clientISN + 1, Flags: header.RST, WS: -1}
		if d := cmpDiff(wantC, toClient); d != "" {
			t.Errorf("RST to the client (-want +got):\n%s", d)
		}
		if d := cmpDiff(wantS, toServer); d != "" {
			t.Errorf("RST to the server (-want +got):\n%s", d)
		}
	})
}

// TestFlowQuota (issue 12, 9): a source holds at most FlowsPerSource
// flows; another source is not held back by it.
func TestFlowQuota(t *testing.T) {
	h := newHarness(t, false, testAdvertise(), func(c *Config) { c.FlowsPerSource = 2 })
	if ev := h.handshakeFrom(client4, 45000, 1); ev != engine.EventHandshake {
		t.Fatalf("first handshake: %v", ev)
	}
	if ev := h.handshakeFrom(client4, 45001, 1); ev != engine.EventHandshake {
		t.Fatalf("second handshake: %v", ev)
	}
	if ev := h.handshakeFrom(client4, 45002, 1); ev != engine.EventSynLimited {
		t.Errorf("third handshake from one source: %v, want syn_limited", ev)
	}
	if ev := h.handshakeFrom(netip.MustParseAddr("198.18.0.6"), 45003, 1); ev != engine.EventHandshake {
		t.Errorf("handshake from another source: %v, want handshake", ev)
	}
	if got := h.e.Stats().FlowQuotaRefused; got != 1 {
		t.Errorf("Stats().FlowQuotaRefused = %d, want 1", got)
	}
}

// TestExpireTellsBothEnds (issue 12, examined): a flow expired for
// idleness is not dropped silently: each end gets an ACK probe, and its
// answer an RST at the acknowledgment number it names, exact even when the
// last segments of the flow took the lock-free path and were not tracked;
// a handshake that times out goes silently.
func TestExpireTellsBothEnds(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		cookie, ourTS, _ := h.establish(7, "")
		// Lock-free: within the grain of the server's SYN-ACK.
		h.expect(h.craft(seg{fromServer: true, flags: header.ACK | header.PSH, seq: serverISN + 1, ack: clientISN + 1, win: 500, ts: true, tsVal: serverTS + 1, tsEcr: clientTS + 1, payload: "hello"}), engine.Accept, engine.EventTranslated)
		h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 6, win: 500, ts: true, tsVal: clientTS + 2, tsEcr: ourTS + 1}), engine.Accept, engine.EventTranslated)
		h.synSentFrom(48000)
		h.now = h.now.Add(2 * time.Minute)
		var probes []out
		n := h.e.ExpireAndTell(h.now, func(pkts [][]byte) {
			for _, p := range pkts {
				probes = append(probes, decode(t, p))
			}
		})
		if n != 1 {
			t.Errorf("ExpireAndTell = %d, want 1 (the handshake) removed", n)
		}
		if len(probes) != 2 || probes[0].Flags != header.ACK || probes[0].Dst != h.client() || probes[1].Flags != header.ACK || probes[1].Dst != h.server() {
			t.Fatalf("probes %+v, want an ACK to the client and one to the server", probes)
		}
		// Each end answers the probe with its RCV.NXT and gets its RST.
		r := h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 6, win: 500}), engine.Drop, engine.EventUnknown)
		wantC := out{Src: h.server(), Dst: h.client(), SrcPort: serverPort, DstPort: clientPort, HopLimit: 64, Seq: cookie + 6, Flags: header.RST, WS: -1}
		if len(r.Inject) != 1 {
			t.Fatalf("client's answer: %d packets sent, want its RST", len(r.Inject))
		}
		if d := cmpDiff(wantC, decode(t, r.Inject[0])); d != "" {
			t.Errorf("RST to the client (-want +got):\n%s", d)
		}
		r = h.expect(h.craft(seg{fromServer: true, flags: header.ACK, seq: serverISN + 6, ack: clientISN + 1, win: 500}), engine.Drop, engine.EventUnknown)
		wantS := out{Src: h.client(), Dst: h.server(), SrcPort: clientPort, DstPort: serverPort, HopLimit: 64, Seq: clientISN + 1, Flags: header.RST, WS: -1}
		if len(r.Inject) != 1 {
			t.Fatalf("server's answer: %d packets sent, want its RST", len(r.Inject))
		}
		if d := cmpDiff(wantS, decode(t, r.Inject[0])); d != "" {
			t.Errorf("RST to the server (-want +got):\n%s", d)
		}
		if got := h.e.Stats().IdleResets; got != 2 {
			t.Errorf("Stats().IdleResets = %d, want 2", got)
		}
		h.now = h.now.Add(11 * time.Second)
		if n := h.e.Expire(h.now); n != 1 {
			t.Errorf("Expire after the linger = %d, want 1", n)
		}
	})
}

// synSentFrom runs SYN and handshake ACK from client port port.
func (h *harness) synSentFrom(port uint16) {
	h.tb.Helper()
	r := h.expect(h.craft(seg{sport: port, flags: header.SYN, seq: clientISN, win: 1000}), engine.Drop, engine.EventSynAnswered)
	sa := decode(h.tb, r.Inject[0])
	h.expect(h.craft(seg{sport: port, flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 1000}), engine.Accept, engine.EventHandshake)
}

// BenchmarkExpire is the daemon's once-a-second sweep of a default-sized
// flow table holding one flow: what an idle gateway pays for expiry.
func BenchmarkExpire(b *testing.B) {
	h := newHarness(b, false, testAdvertise(), func(c *Config) { c.Flows = DefaultFlows })
	h.establish(7, "")
	for b.Loop() {
		h.e.Expire(h.now)
	}
	if h.e.Stats().FlowsActive != 1 {
		b.Fatalf("Stats().FlowsActive = %d, want the flow kept", h.e.Stats().FlowsActive)
	}
}
