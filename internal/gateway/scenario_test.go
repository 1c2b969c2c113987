package gateway

import (
	"net/netip"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

const (
	clientISN = 1000
	serverISN = 7000000
	clientTS  = 111
	serverTS  = 9000
)

// mssFor is the MSS the test policy advertises to the family.
func (h *harness) mssFor() uint16 {
	if h.v6 {
		return 1440
	}
	return 1460
}

// synOut is the SYN-ACK the engine should send for a SYN with full options
// under testAdvertise; seq and TSval are filled from got.
func (h *harness) wantSynAck(got out, ws int, sack, ts bool, tsEcr uint32) out {
	w := out{Src: h.server(), Dst: h.client(), SrcPort: serverPort, DstPort: clientPort, HopLimit: 64,
		Seq: got.Seq, Ack: clientISN + 1, Flags: header.SYN | header.ACK, Window: 65535,
		MSS: h.mssFor(), WS: ws, SACKPerm: sack}
	if ts {
		w.TS, w.TSVal, w.TSEcr = true, got.TSVal, tsEcr
	}
	return w
}

func fullSyn() seg {
	return seg{flags: header.SYN, seq: clientISN, win: 64240, mss: 1460, sackPerm: true, ts: true, tsVal: clientTS, hasWS: true, ws: 7}
}

// TestFullConnection runs a whole connection through the engine: SYN,
// SYN-ACK, ACK, the server side handshake, data both ways, FIN both ways,
// linger and removal.
func TestFullConnection(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())

		// 1. SYN → cookie SYN-ACK, as the server.
		r := h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
		if len(r.Inject) != 1 {
			t.Fatalf("SYN: %d injected, want 1", len(r.Inject))
		}
		sa := decode(t, r.Inject[0])
		if d := cmpDiff(h.wantSynAck(sa, 7, true, true, clientTS), sa); d != "" {
			t.Errorf("SYN-ACK (-want +got):\n%s", d)
		}
		tup := h.tuple()
		wantClass := cookies.MSSTable(v6)[3] // 1460
		if v6 {
			wantClass = cookies.MSSTable(v6)[2] // 1440
		}
		if mss, err := h.e.Jar().Check(&tup, clientISN, sa.Seq, h.now); err != nil || mss != wantClass {
			t.Errorf("Jar.Check(SYN-ACK seq) = %d, %v, want %d, nil", mss, err, wantClass)
		}
		if o, ok := cookies.DecodeTS(sa.TSVal); !ok || o != (cookies.TSOptions{WScale: 7, SACK: true}) {
			t.Errorf("DecodeTS(SYN-ACK TSval) = %+v, %v, want wscale 7, SACK", o, ok)
		}
		cookie, ourTS := sa.Seq, sa.TSVal

		// 2. ACK → SYN to the server with the client's ISN and options.
		h.now = h.now.Add(10 * time.Millisecond)
		r = h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: ourTS}), engine.Accept, engine.EventHandshake)
		syn := decode(t, r.Packet)
		wantSyn := out{Src: h.client(), Dst: h.server(), SrcPort: clientPort, DstPort: serverPort, HopLimit: 64,
			Seq: clientISN, Flags: header.SYN, Window: 502 << 7, MSS: 1460, WS: 7, SACKPerm: true,
			TS: true, TSVal: clientTS + 1}
		if d := cmpDiff(wantSyn, syn); d != "" {
			t.Errorf("SYN to server (-want +got):\n%s", d)
		}
		if f, ok := h.flowOf(); !ok || f.state != stateSynSent {
			t.Fatalf("flow after ACK: %v %v, want SynSent", f.state, ok)
		}

		// 3. The server's SYN-ACK → ACK to the server, SYN-ACK dropped.
		r = h.expect(h.craft(seg{fromServer: true, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 65160,
			mss: 1400, sackPerm: true, ts: true, tsVal: serverTS, tsEcr: clientTS + 1, hasWS: true, ws: 7}), engine.Drop, engine.EventServerUp)
		if len(r.Inject) != 1 {
			t.Fatalf("server SYN-ACK: %d injected, want 1", len(r.Inject))
		}
		ack := decode(t, r.Inject[0])
		wantAck := out{Src: h.client(), Dst: h.server(), SrcPort: clientPort, DstPort: serverPort, HopLimit: 64,
			Seq: clientISN + 1, Ack: serverISN + 1, Flags: header.ACK, Window: 502, WS: -1,
			TS: true, TSVal: clientTS + 1, TSEcr: serverTS}
		if d := cmpDiff(wantAck, ack); d != "" {
			t.Errorf("ACK to server (-want +got):\n%s", d)
		}

		// 4. Client data: ack and TSecr move to the server's spaces.
		r = h.expect(h.craft(seg{flags: header.ACK | header.PSH, seq: clientISN + 1, ack: cookie + 1, win: 502, ts: true, tsVal: clientTS + 2, tsEcr: ourTS, payload: "hello"}), engine.Accept, engine.EventTranslated)
		got := decode(t, r.Packet)
		want := out{Src: h.client(), Dst: h.server(), SrcPort: clientPort, DstPort: serverPort, HopLimit: 64,
			Seq: clientISN + 1, Ack: serverISN + 1, Flags: header.ACK | header.PSH, Window: 502, WS: -1,
			TS: true, TSVal: clientTS + 2, TSEcr: serverTS, Payload: "hello"}
		if d := cmpDiff(want, got); d != "" {
			t.Errorf("client data (-want +got):\n%s", d)
		}

		// 5. Server data: seq and TSval move to the client's view.
		r = h.expect(h.craft(seg{fromServer: true, flags: header.ACK | header.PSH, seq: serverISN + 1, ack: clientISN + 6, win: 500, ts: true, tsVal: serverTS + 5, tsEcr: clientTS + 2, payload: "world!"}), engine.Accept, engine.EventTranslated)
		got = decode(t, r.Packet)
		want = out{Src: h.server(), Dst: h.client(), SrcPort: serverPort, DstPort: clientPort, HopLimit: 64,
			Seq: cookie + 1, Ack: clientISN + 6, Flags: header.ACK | header.PSH, Window: 500, WS: -1,
			TS: true, TSVal: ourTS + 5, TSEcr: clientTS + 2, Payload: "world!"}
		if d := cmpDiff(want, got); d != "" {
			t.Errorf("server data (-want +got):\n%s", d)
		}

		// 6. FIN both ways, then the last ACK; the flow lingers.
		h.expect(h.craft(seg{flags: header.FIN | header.ACK, seq: clientISN + 6, ack: cookie + 7, win: 502}), engine.Accept, engine.EventTranslated)
		if f, _ := h.flowOf(); f.state != stateEstablished {
			t.Errorf("after client FIN: state %v, want established", f.state)
		}
		r = h.expect(h.craft(seg{fromServer: true, flags: header.FIN | header.ACK, seq: serverISN + 7, ack: clientISN + 7, win: 500}), engine.Accept, engine.EventTranslated)
		if got := decode(t, r.Packet); got.Seq != cookie+7 {
			t.Errorf("server FIN seq = %d, want %d", got.Seq, cookie+7)
		}
		r = h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 7, ack: cookie + 8, win: 502}), engine.Accept, engine.EventTranslated)
		if got := decode(t, r.Packet); got.Ack != serverISN+8 {
			t.Errorf("last ACK ack = %d, want %d", got.Ack, serverISN+8)
		}
		if f, ok := h.flowOf(); !ok || f.state != stateClosing {
			t.Fatalf("after FIN both ways: %v %v, want closing", f.state, ok)
		}
		if n := h.e.Expire(h.now.Add(5 * time.Second)); n != 0 {
			t.Errorf("Expire before linger = %d, want 0", n)
		}
		h.now = h.now.Add(11 * time.Second)
		if n := h.e.Expire(h.now); n != 1 {
			t.Errorf("Expire after linger = %d, want 1", n)
		}
		if _, ok := h.flowOf(); ok {
			t.Errorf("flow still there after linger")
		}
		st := h.e.Stats()
		if st.FlowsActive != 0 || st.FlowsCreated != 1 || st.CacheHits != 1 || st.Events[engine.EventTranslated] != 5 {
			t.Errorf("Stats = active %d created %d hits %d translated %d, want 0 1 1 5", st.FlowsActive, st.FlowsCreated, st.CacheHits, st.Events[engine.EventTranslated])
		}
	})
}

// TestOptionMatrix checks the SYN-ACK and the SYN to the server for client
// option sets, with the SYN cache entry present and evicted.
func TestOptionMatrix(t *testing.T) {
	type opts struct {
		mss             uint16
		ts, sack, ecn   bool
		ws              int // -1 none
		advWS           int8
		advTS, advSACK  bool
		evicted         bool
		wantSynAckWS    int
		wantServerWS    int
		wantServerSACK  bool
		wantServerMSS   uint16 // 0: the class from the cookie
		wantServerTS    bool
		wantServerECN   bool
		wantSynAckSACK  bool
		wantSynAckTS    bool
		wantSynAckECE   bool
		wantCacheHitInc uint64
	}
	cases := map[string]opts{
		"all":                 {mss: 1460, ts: true, sack: true, ecn: true, ws: 7, advWS: 7, advTS: true, advSACK: true, wantSynAckWS: 7, wantServerWS: 7, wantServerSACK: true, wantServerMSS: 1460, wantServerTS: true, wantServerECN: true, wantSynAckSACK: true, wantSynAckTS: true, wantSynAckECE: true, wantCacheHitInc: 1},
		"none":                {mss: 536, ws: -1, advWS: 7, advTS: true, advSACK: true, wantSynAckWS: -1, wantServerWS: -1, wantServerMSS: 536, wantCacheHitInc: 1},
		"no ts":               {mss: 1220, sack: true, ws: 2, advWS: 9, advTS: true, advSACK: true, wantSynAckWS: 9, wantServerWS: 2, wantServerSACK: true, wantServerMSS: 1220, wantSynAckSACK: true, wantCacheHitInc: 1},
		"jumbo":               {mss: 8940, ts: true, ws: 14, advWS: 0, advTS: true, wantSynAckWS: 0, wantServerWS: 14, wantServerMSS: 8940, wantServerTS: true, wantSynAckTS: true, wantCacheHitInc: 1},
		"adv none":            {mss: 1460, ts: true, sack: true, ws: 7, advWS: -1, wantSynAckWS: -1, wantServerWS: -1, wantServerMSS: 1460, wantCacheHitInc: 1},
		"evicted with ts":     {mss: 1460, ts: true, sack: true, ecn: true, ws: 5, advWS: 7, advTS: true, advSACK: true, evicted: true, wantSynAckWS: 7, wantServerWS: 5, wantServerSACK: true, wantServerTS: true, wantServerECN: true, wantSynAckSACK: true, wantSynAckTS: true, wantSynAckECE: true},
		"evicted without ts":  {mss: 1460, sack: true, ecn: true, ws: 5, advWS: 7, advTS: true, advSACK: true, evicted: true, wantSynAckWS: 7, wantServerWS: -1, wantSynAckSACK: true, wantSynAckECE: true},
		"evicted mss 536":     {mss: 536, ts: true, ws: -1, advWS: 7, advTS: true, evicted: true, wantSynAckWS: -1, wantServerWS: -1, wantServerTS: true, wantSynAckTS: true},
		"evicted no mss sent": {ts: true, ws: 3, advWS: 3, advTS: true, evicted: true, wantSynAckWS: 3, wantServerWS: 3, wantServerTS: true, wantSynAckTS: true},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			families(t, func(t *testing.T, v6 bool) {
				if c.mss == 8940 && !v6 {
					c.mss = 1460 // 8940 is an IPv6 jumbo class; IPv4 gets the top class
					c.wantServerMSS = 1460
				}
				adv := testAdvertise()
				adv.WScale, adv.Timestamps, adv.SACK = c.advWS, c.advTS, c.advSACK
				h := newHarness(t, v6, adv)
				s := seg{flags: header.SYN, seq: clientISN, win: 64240, mss: c.mss, sackPerm: c.sack, ts: c.ts, tsVal: clientTS}
				if c.ws >= 0 {
					s.hasWS, s.ws = true, c.ws
				}
				if c.ecn {
					s.flags |= header.ECE | header.CWR
				}
				r := h.expect(h.craft(s), engine.Drop, engine.EventSynAnswered)
				sa := decode(t, r.Inject[0])
				want := h.wantSynAck(sa, c.wantSynAckWS, c.wantSynAckSACK, c.wantSynAckTS, clientTS)
				if c.wantSynAckECE {
					want.Flags |= header.ECE
				}
				if d := cmpDiff(want, sa); d != "" {
					t.Errorf("SYN-ACK (-want +got):\n%s", d)
				}
				if c.evicted {
					h.clearCache()
				}
				ack := seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 1000}
				if sa.TS {
					ack.ts, ack.tsVal, ack.tsEcr = true, clientTS+1, sa.TSVal
				}
				before := h.e.Stats().CacheHits
				r = h.expect(h.craft(ack), engine.Accept, engine.EventHandshake)
				if got := h.e.Stats().CacheHits - before; got != c.wantCacheHitInc && !c.evicted || c.evicted && got != 0 {
					t.Errorf("cache hits +%d, evicted %v", got, c.evicted)
				}
				syn := decode(t, r.Packet)
				wantMSS := c.wantServerMSS
				if wantMSS == 0 {
					// The largest class not above the client's MSS (the
					// smallest when it sent none).
					tab := cookies.MSSTable(v6)
					wantMSS = tab[0]
					for _, m := range tab {
						if m <= c.mss {
							wantMSS = m
						}
					}
				}
				win := uint16(1000)
				if c.wantServerWS >= 0 {
					win = uint16(min(1000<<c.wantServerWS, 65535))
				}
				wantSyn := out{Src: h.client(), Dst: h.server(), SrcPort: clientPort, DstPort: serverPort, HopLimit: 64,
					Seq: clientISN, Flags: header.SYN, Window: win, MSS: wantMSS, WS: c.wantServerWS, SACKPerm: c.wantServerSACK}
				if c.wantServerTS {
					wantSyn.TS, wantSyn.TSVal = true, clientTS+1
				}
				if c.wantServerECN {
					wantSyn.Flags |= header.ECE | header.CWR
				}
				if d := cmpDiff(wantSyn, syn); d != "" {
					t.Errorf("SYN to server (-want +got):\n%s", d)
				}
			})
		})
	}
}

// TestRetransmittedSyn: a repeated SYN in the same cookie period gets the
// very same SYN-ACK; after a period tick it gets a new cookie (the cache
// bucket follows the cookie), and an ACK of the first SYN-ACK still finds
// its cache entry; a SYN with a new ISN gets a new cookie.
func TestRetransmittedSyn(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		r := h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
		first := append([]byte(nil), r.Inject[0]...)
		h.now = h.now.Add(3 * time.Second)
		r = h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
		if d := cmpDiff(first, r.Inject[0]); d != "" {
			t.Errorf("retransmitted SYN-ACK differs (-first +second):\n%s", d)
		}
		if got := h.e.Stats().CacheRetransmits; got != 1 {
			t.Errorf("CacheRetransmits = %d, want 1", got)
		}
		s := fullSyn()
		s.seq = clientISN + 99999
		r = h.expect(h.craft(s), engine.Drop, engine.EventSynAnswered)
		if a, b := decode(t, first).Seq, decode(t, r.Inject[0]).Seq; a == b {
			t.Errorf("SYN with a new ISN got the same cookie %d", a)
		}

		h.now = h.now.Add(h.e.Jar().Period()) // the next counter period
		r = h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
		sa1, sa2 := decode(t, first), decode(t, r.Inject[0])
		if sa1.Seq == sa2.Seq {
			t.Errorf("SYN a period later got the cookie of the first period %d", sa1.Seq)
		}
		if got := h.e.Stats().CacheRetransmits; got != 1 {
			t.Errorf("CacheRetransmits = %d after a period tick, want still 1", got)
		}
		h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: sa1.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa1.TSVal}), engine.Accept, engine.EventHandshake)
		if got := h.e.Stats().CacheHits; got != 1 {
			t.Errorf("CacheHits = %d for the ACK of the first SYN-ACK, want 1", got)
		}
	})
}

// establish runs the handshake with full options and returns cookie and
// our TSval. serverWS is the server's window scale (-1 none).
func (h *harness) establish(serverWS int, thirdAckPayload string) (cookie, ourTS uint32, injected []out) {
	h.tb.Helper()
	r := h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
	sa := decode(h.tb, r.Inject[0])
	ack := seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal, payload: thirdAckPayload}
	if thirdAckPayload != "" {
		ack.flags |= header.PSH
	}
	h.expect(h.craft(ack), engine.Accept, engine.EventHandshake)
	ssa := seg{fromServer: true, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 65160,
		mss: 1400, sackPerm: true, ts: true, tsVal: serverTS, tsEcr: clientTS + 1}
	if serverWS >= 0 {
		ssa.hasWS, ssa.ws = true, serverWS
	}
	r = h.expect(h.craft(ssa), engine.Drop, engine.EventServerUp)
	for _, p := range r.Inject {
		injected = append(injected, decode(h.tb, p))
	}
	return sa.Seq, sa.TSVal, injected
}

// TestDataOnThirdAck: data riding on the handshake ACK is replayed to the
// server after its SYN-ACK, after the ACK that completes its handshake.
func TestDataOnThirdAck(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		_, _, inj := h.establish(7, "GET / HTTP/1.0\r\n\r\n")
		if len(inj) != 2 {
			t.Fatalf("injected %d packets, want ACK + data", len(inj))
		}
		want := out{Src: h.client(), Dst: h.server(), SrcPort: clientPort, DstPort: serverPort, HopLimit: 64,
			Seq: clientISN + 1, Ack: serverISN + 1, Flags: header.ACK | header.PSH, Window: 502, WS: -1,
			TS: true, TSVal: clientTS + 1, TSEcr: serverTS, Payload: "GET / HTTP/1.0\r\n\r\n"}
		if d := cmpDiff(want, inj[1]); d != "" {
			t.Errorf("replayed data (-want +got):\n%s", d)
		}
		if inj[0].Flags != header.ACK || inj[0].Payload != "" {
			t.Errorf("first injected = flags %#x payload %q, want a bare ACK", inj[0].Flags, inj[0].Payload)
		}
		if st := h.e.Stats(); st.PendingHeld != 1 || h.e.pending.freeCount() != 64 {
			t.Errorf("PendingHeld %d, free slots %d, want 1, 64", st.PendingHeld, h.e.pending.freeCount())
		}
	})
}

// TestDataBeforeServerUp: client data while the server has not answered is
// held (and dropped); after a second the SYN to the server is resent; the
// data goes out once the server answers.
func TestDataBeforeServerUp(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		r := h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
		sa := decode(t, r.Inject[0])
		h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal}), engine.Accept, engine.EventHandshake)
		r = h.expect(h.craft(seg{flags: header.ACK | header.PSH, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 2, tsEcr: sa.TSVal, payload: "early"}), engine.Drop, engine.EventHeld)
		if len(r.Inject) != 0 {
			t.Errorf("held data at once: %d injected, want 0", len(r.Inject))
		}
		h.now = h.now.Add(1500 * time.Millisecond)
		r = h.expect(h.craft(seg{flags: header.ACK | header.PSH, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 3, tsEcr: sa.TSVal, payload: "early"}), engine.Drop, engine.EventHeld)
		if len(r.Inject) != 1 {
			t.Fatalf("held data after 1.5 s: %d injected, want the SYN again", len(r.Inject))
		}
		if syn := decode(t, r.Inject[0]); syn.Flags != header.SYN || syn.Seq != clientISN || syn.TSVal != clientTS+3 {
			t.Errorf("resent SYN = flags %#x seq %d TSval %d, want SYN %d %d", syn.Flags, syn.Seq, syn.TSVal, clientISN, clientTS+3)
		}
		r = h.expect(h.craft(seg{fromServer: true, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 65160,
			mss: 1400, ts: true, tsVal: serverTS, tsEcr: clientTS + 3, hasWS: true, ws: 7}), engine.Drop, engine.EventServerUp)
		if len(r.Inject) != 2 {
			t.Fatalf("server up: %d injected, want ACK + one data segment (the retransmission is not held twice)", len(r.Inject))
		}
		d := decode(t, r.Inject[1])
		if d.Payload != "early" || d.Seq != clientISN+1 || d.Ack != serverISN+1 || d.TSVal != clientTS+3 || d.TSEcr != serverTS {
			t.Errorf("replayed = %+v", d)
		}
	})
}

// TestServerRefuses: the server's RST during the handshake becomes an RST
// to the client, from the server, in the cookie's sequence space.
func TestServerRefuses(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		r := h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
		sa := decode(t, r.Inject[0])
		h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal, payload: "x"}), engine.Accept, engine.EventHandshake)
		// An RST+ACK acking something else is not the server's answer.
		h.expect(h.craft(seg{fromServer: true, flags: header.RST | header.ACK, ack: clientISN + 5}), engine.Drop, engine.EventUnknown)
		r = h.expect(h.craft(seg{fromServer: true, flags: header.RST | header.ACK, ack: clientISN + 1}), engine.Drop, engine.EventServerRefused)
		got := decode(t, r.Inject[0])
		want := out{Src: h.server(), Dst: h.client(), SrcPort: serverPort, DstPort: clientPort, HopLimit: 64,
			Seq: sa.Seq + 1, Flags: header.RST, WS: -1}
		if d := cmpDiff(want, got); d != "" {
			t.Errorf("RST to client (-want +got):\n%s", d)
		}
		if _, ok := h.flowOf(); ok {
			t.Errorf("flow still there after refusal")
		}
		if free := h.e.pending.freeCount(); free != 64 {
			t.Errorf("free pending slots = %d, want 64", free)
		}
	})
}

// TestClientRstWhileSynSent: the client's RST removes the flow and goes to
// the server as a bare RST with the client's sequence number.
func TestClientRstWhileSynSent(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		r := h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
		sa := decode(t, r.Inject[0])
		h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal}), engine.Accept, engine.EventHandshake)
		r = h.expect(h.craft(seg{flags: header.RST | header.ACK, seq: clientISN + 1, ack: sa.Seq + 1}), engine.Accept, engine.EventTranslated)
		got := decode(t, r.Packet)
		if got.Flags != header.RST || got.Seq != clientISN+1 || got.Ack != 0 {
			t.Errorf("RST to server = flags %#x seq %d ack %d, want RST %d 0", got.Flags, got.Seq, got.Ack, clientISN+1)
		}
		if _, ok := h.flowOf(); ok {
			t.Errorf("flow still there")
		}
	})
}

// TestBadAcks: forged, expired and unknown ACKs never reach the server.
func TestBadAcks(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		h.expect(h.craft(seg{flags: header.ACK, seq: 5, ack: 12345, win: 10}), engine.Drop, engine.EventBadCookie)
		h.expect(h.craft(seg{flags: header.RST, seq: 5}), engine.Drop, engine.EventUnknown)
		h.expect(h.craft(seg{flags: header.FIN | header.ACK, seq: 5, ack: 9}), engine.Drop, engine.EventUnknown)
		h.expect(h.craft(seg{fromServer: true, flags: header.ACK, seq: 5, ack: 9}), engine.Drop, engine.EventUnknown)

		r := h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
		sa := decode(t, r.Inject[0])
		// Right cookie, wrong client ISN; wrong TS bits.
		h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 2, ack: sa.Seq + 1, win: 502}), engine.Drop, engine.EventBadCookie)
		h.clearCache()
		h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: 1, tsEcr: sa.TSVal + 3600e3}), engine.Drop, engine.EventBadCookie)
		h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: 1, tsEcr: sa.TSVal - 3600e3}), engine.Drop, engine.EventBadCookie)
		// Two periods later the cookie has expired, cache or not.
		h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
		h.now = h.now.Add(60 * time.Second)
		h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: 1, tsEcr: sa.TSVal}), engine.Drop, engine.EventExpiredCookie)
		if st := h.e.Stats(); st.FlowsCreated != 0 {
			t.Errorf("FlowsCreated = %d, want 0", st.FlowsCreated)
		}
	})
}

// TestTranslateSackAndTimestamps: SACK blocks from the client move into the
// server's space; the server's SACK blocks stay; timestamps both ways.
func TestTranslateSackAndTimestamps(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		cookie, ourTS, _ := h.establish(7, "")
		r := h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 1, win: 502, ts: true, tsVal: 200, tsEcr: ourTS + 40,
			sack: [][2]uint32{{cookie + 1001, cookie + 2001}, {cookie + 3001, cookie + 4001}, {cookie - 5, cookie + 3}}}), engine.Accept, engine.EventTranslated)
		got := decode(t, r.Packet)
		wantSack := [][2]uint32{{serverISN + 1001, serverISN + 2001}, {serverISN + 3001, serverISN + 4001}, {serverISN - 5, serverISN + 3}}
		if d := cmpDiff(wantSack, got.SACK); d != "" {
			t.Errorf("client SACK (-want +got):\n%s", d)
		}
		if got.TSEcr != serverTS+40 || got.TSVal != 200 || got.Ack != serverISN+1 {
			t.Errorf("client TS/ack = %d %d %d, want %d 200 %d", got.TSEcr, got.TSVal, got.Ack, serverTS+40, serverISN+1)
		}
		r = h.expect(h.craft(seg{fromServer: true, flags: header.ACK, seq: serverISN + 1, ack: clientISN + 1, win: 300, ts: true, tsVal: serverTS + 77, tsEcr: 200,
			sack: [][2]uint32{{clientISN + 100, clientISN + 200}}}), engine.Accept, engine.EventTranslated)
		got = decode(t, r.Packet)
		if d := cmpDiff([][2]uint32{{clientISN + 100, clientISN + 200}}, got.SACK); d != "" {
			t.Errorf("server SACK (-want +got):\n%s", d)
		}
		if got.TSVal != ourTS+77 || got.TSEcr != 200 || got.Seq != cookie+1 {
			t.Errorf("server TS/seq = %d %d %d, want %d 200 %d", got.TSVal, got.TSEcr, got.Seq, ourTS+77, cookie+1)
		}
	})
}

// TestWindowRescale: when the server's window scale differs from the one our
// SYN-ACK offered, windows are converted both ways.
func TestWindowRescale(t *testing.T) {
	for _, tc := range []struct {
		serverWS          int
		s2cIn, s2cOut     uint16
		c2sIn, c2sOut     uint16
		ackWin            uint16
		rescaleC, rescale bool
	}{
		{serverWS: 7, s2cIn: 300, s2cOut: 300, c2sIn: 502, c2sOut: 502, ackWin: 502},
		{serverWS: 9, s2cIn: 300, s2cOut: 1200, c2sIn: 502, c2sOut: 502, ackWin: 502, rescale: true},
		{serverWS: 2, s2cIn: 3000, s2cOut: 93, c2sIn: 502, c2sOut: 502, ackWin: 502, rescale: true},
		{serverWS: 14, s2cIn: 60000, s2cOut: 65535, c2sIn: 502, c2sOut: 502, ackWin: 502, rescale: true},
		// The server did not scale: scaling is off toward it both ways.
		{serverWS: -1, s2cIn: 65000, s2cOut: 507, c2sIn: 502, c2sOut: 64256, ackWin: 64256, rescaleC: true, rescale: true},
		{serverWS: -1, s2cIn: 65000, s2cOut: 507, c2sIn: 3, c2sOut: 384, ackWin: 64256, rescaleC: true, rescale: true},
		{serverWS: -1, s2cIn: 65000, s2cOut: 507, c2sIn: 600, c2sOut: 65535, ackWin: 64256, rescaleC: true, rescale: true},
	} {
		families(t, func(t *testing.T, v6 bool) {
			h := newHarness(t, v6, testAdvertise())
			cookie, _, inj := h.establish(tc.serverWS, "")
			if inj[0].Window != tc.ackWin {
				t.Errorf("ws %d: ACK to server window = %d, want %d", tc.serverWS, inj[0].Window, tc.ackWin)
			}
			f, _ := h.flowOf()
			if f.rescaleS2C != tc.rescale || f.rescaleC2S != tc.rescaleC {
				t.Errorf("ws %d: rescale s2c %v c2s %v, want %v %v", tc.serverWS, f.rescaleS2C, f.rescaleC2S, tc.rescale, tc.rescaleC)
			}
			r := h.expect(h.craft(seg{fromServer: true, flags: header.ACK, seq: serverISN + 1, ack: clientISN + 1, win: tc.s2cIn}), engine.Accept, engine.EventTranslated)
			if got := decode(t, r.Packet).Window; got != tc.s2cOut {
				t.Errorf("ws %d: server window %d → %d, want %d", tc.serverWS, tc.s2cIn, got, tc.s2cOut)
			}
			r = h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 1, win: tc.c2sIn}), engine.Accept, engine.EventTranslated)
			if got := decode(t, r.Packet).Window; got != tc.c2sOut {
				t.Errorf("ws %d: client window %d → %d, want %d", tc.serverWS, tc.c2sIn, got, tc.c2sOut)
			}
		})
	}
}

// TestCsumNotReady: a packet whose checksum field holds only the
// pseudo-header sum (GSO super-packets, packets forwarded from a veth) gets a
// complete checksum after the rewrite, because the kernel takes an altered
// packet's checksum as final (measured; see queue/doc.go).
func TestCsumNotReady(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		cookie, ourTS, _ := h.establish(7, "")
		for _, fromServer := range []bool{false, true} {
			s := seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 1, win: 502, ts: true, tsVal: 5, tsEcr: ourTS, payload: string(make([]byte, 3000))}
			if fromServer {
				s = seg{fromServer: true, flags: header.ACK, seq: serverISN + 1, ack: clientISN + 1, win: 502, ts: true, tsVal: serverTS + 1, tsEcr: 5, payload: string(make([]byte, 3000))}
			}
			pkt := h.craft(s)
			ipl := 20
			if v6 {
				ipl = 40
			}
			const partial = 0xbeef
			pkt[ipl+16], pkt[ipl+17] = partial>>8, partial&0xff
			var r engine.Result
			h.w.Process(pkt, engine.Meta{CsumNotReady: true}, h.now, &r)
			if r.Verdict != engine.Accept || r.Event != engine.EventTranslated {
				t.Fatalf("Process = %v %v", r.Verdict, r.Event)
			}
			var p header.Packet
			if reason := header.Parse(r.Packet, &p); reason != header.OK {
				t.Fatalf("fromServer %v: output does not parse: %v", fromServer, reason)
			}
			if !p.VerifyTCPChecksum() {
				t.Errorf("fromServer %v: checksum %#x of the translated packet is not complete and valid", fromServer, p.TCP.Checksum())
			}
			tcp := header.TCP(r.Packet[ipl:])
			if fromServer && tcp.SequenceNumber() != cookie+1 || !fromServer && tcp.AckNumber() != serverISN+1 {
				t.Errorf("fromServer %v: seq/ack not rewritten", fromServer)
			}
		}
	})
}

// TestInvalidFlagsTouchNothing: every invalid flag combination is dropped
// with its reason before the SYN cache or the flow table is looked at.
func TestInvalidFlagsTouchNothing(t *testing.T) {
	const (
		F, S, R, P, A, U = header.FIN, header.SYN, header.RST, header.PSH, header.ACK, header.URG
	)
	cases := []struct {
		flags      uint8
		fromServer bool
		want       header.Reason
	}{
		{S | F, false, header.SynFin},
		{S | F | P, false, header.SynFin},
		{S | R, false, header.SynRst},
		{R | A | S, false, header.SynRst},
		{F, false, header.FinNoAck},
		{0, false, header.NullFlags},
		{F | P | U, false, header.Xmas},
		{P, false, header.NoAck},
		{S | A, false, header.SynAckFromClient},
		{S, true, header.ServerSyn},
		{S | F, true, header.SynFin},
	}
	for _, c := range cases {
		families(t, func(t *testing.T, v6 bool) {
			h := newHarness(t, v6, testAdvertise())
			cookie, _, _ := h.establish(7, "")
			before, _ := h.flowOf()
			cacheBefore := append([]cacheEntry(nil), h.e.cache.entries...)
			tagsBefore := append([]uint64(nil), h.e.cache.tags...)
			statsBefore := h.e.Stats()
			r := h.run(h.craft(seg{fromServer: c.fromServer, flags: c.flags, seq: clientISN + 1, ack: cookie + 1, win: 9}), engine.Meta{})
			if r.Verdict != engine.Drop || r.Event != engine.EventMalformed || r.Reason != c.want {
				t.Errorf("flags %#x server %v: Process = %v %v %v, want drop malformed %v", c.flags, c.fromServer, r.Verdict, r.Event, r.Reason, c.want)
			}
			after, _ := h.flowOf()
			if d := cmpDiff(before, after, cmpAllowUnexported(flow{}, cookies.Tuple{})); d != "" {
				t.Errorf("flags %#x: flow changed:\n%s", c.flags, d)
			}
			if d := cmpDiff(cacheBefore, h.e.cache.entries, cmpAllowUnexported(cacheEntry{}, cookies.Tuple{})); d != "" {
				t.Errorf("flags %#x: cache changed:\n%s", c.flags, d)
			}
			if d := cmpDiff(tagsBefore, h.e.cache.tags); d != "" {
				t.Errorf("flags %#x: cache tags changed:\n%s", c.flags, d)
			}
			st := h.e.Stats()
			if st.Drops[c.want] != statsBefore.Drops[c.want]+1 {
				t.Errorf("flags %#x: Drops[%v] not counted", c.flags, c.want)
			}
		})
	}
}

// TestModesAndUnguarded covers pass, drop, unguarded traffic and malformed
// input.
func TestModesAndUnguarded(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	h.expect(h.craft(seg{flags: header.SYN, seq: 1, dport: passPort}), engine.Accept, engine.EventPassed)
	h.expect(h.craft(seg{flags: header.SYN, seq: 1, dport: dropPort}), engine.Drop, engine.EventPolicyDrop)
	h.expect(h.craft(seg{flags: header.SYN, seq: 1, dst: other4}), engine.Accept, engine.EventUnguarded)
	h.expect(h.craft(seg{flags: 0, seq: 1, dst: other4}), engine.Accept, engine.EventUnguarded)
	r := h.expect([]byte{0x45, 0, 0}, engine.Drop, engine.EventMalformed)
	if r.Reason == header.OK || r.Reason == header.ReasonInvalid {
		t.Errorf("truncated packet reason = %v", r.Reason)
	}
	if got := h.e.Stats().Events[engine.EventPassed]; got != 1 {
		t.Errorf("Events[passed] = %d, want 1", got)
	}
	// SetPolicy: with the proxy service turned to drop, SYNs are dropped.
	adv := testAdvertise()
	p2, err := policy.New([]*policy.Service{{Name: "web", Mode: policy.ModeDrop, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}, PortLo: serverPort, PortHi: serverPort, Advertise: adv}}, policy.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	h.e.SetPolicy(p2)
	h.expect(h.craft(fullSyn()), engine.Drop, engine.EventPolicyDrop)
}

// TestNewSynOnEstablishedFlow: a client reusing the tuple of an established
// flow gets a cookie; its valid ACK replaces the old flow.
func TestNewSynOnEstablishedFlow(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		h.establish(7, "")
		s := fullSyn()
		s.seq = 555555
		r := h.expect(h.craft(s), engine.Drop, engine.EventSynAnswered)
		sa := decode(t, r.Inject[0])
		h.expect(h.craft(seg{flags: header.ACK, seq: 555556, ack: sa.Seq + 1, win: 502, ts: true, tsVal: 1, tsEcr: sa.TSVal}), engine.Accept, engine.EventHandshake)
		if f, ok := h.flowOf(); !ok || f.clientISN != 555555 || f.state != stateSynSent {
			t.Errorf("flow = %v isn %d, want a new SynSent flow for ISN 555555", f.state, f.clientISN)
		}
	})
}

// TestServerSynAckRetransmit: when our ACK to the server is lost, the
// server resends its SYN-ACK and gets the ACK again; the client sees
// nothing of it.
func TestServerSynAckRetransmit(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		_, _, first := h.establish(7, "")
		r := h.expect(h.craft(seg{fromServer: true, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 65160,
			mss: 1400, sackPerm: true, ts: true, tsVal: serverTS + 1000, tsEcr: clientTS + 1, hasWS: true, ws: 7}), engine.Drop, engine.EventServerUp)
		if len(r.Inject) != 1 {
			t.Fatalf("%d injected, want the ACK", len(r.Inject))
		}
		again := decode(t, r.Inject[0])
		want := first[0]
		want.TSEcr = serverTS + 1000
		if d := cmpDiff(want, again); d != "" {
			t.Errorf("re-sent ACK (-want +got):\n%s", d)
		}
		// A SYN-ACK with another ISN is not ours to answer.
		h.expect(h.craft(seg{fromServer: true, flags: header.SYN | header.ACK, seq: serverISN + 5, ack: clientISN + 1, win: 1}), engine.Drop, engine.EventUnknown)
	})
}

// TestNewSynOnClosingFlow: a SYN on the tuple of a closing flow removes it,
// so the new connection starts clean.
func TestNewSynOnClosingFlow(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		cookie, _, _ := h.establish(7, "")
		h.expect(h.craft(seg{flags: header.RST | header.ACK, seq: clientISN + 1, ack: cookie + 1}), engine.Accept, engine.EventTranslated)
		if f, ok := h.flowOf(); !ok || f.state != stateClosing {
			t.Fatalf("after RST: %v %v, want closing", f.state, ok)
		}
		s := fullSyn()
		s.seq = 99
		h.expect(h.craft(s), engine.Drop, engine.EventSynAnswered)
		if _, ok := h.flowOf(); ok {
			t.Errorf("closing flow still there after a new SYN")
		}
	})
}
