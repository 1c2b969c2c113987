package gateway

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/gateway/reference"
	"github.com/synwall/synwall/internal/policy"
)

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
		if st := h.e.Stats(); st.PendingHeld != 1 || h.e.flows.pending.freeCount() != 64 {
			t.Errorf("PendingHeld %d, free slots %d, want 1, 64", st.PendingHeld, h.e.flows.pending.freeCount())
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
		if f, ok := h.flowOf(); !ok || f.state != stateClosing || f.up {
			t.Errorf("flow after the client's RST: state %v up %v found %v, want closing, not up", f.state, f.up, ok)
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

// TestNewSynOnClosingFlow: a SYN on the tuple of a closing flow only marks
// it (the SYN may be spoofed); the valid ACK for the new ISN replaces it.
func TestNewSynOnClosingFlow(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		cookie, _, _ := h.establish(7, "")
		h.expect(h.craft(seg{flags: header.RST | header.ACK, seq: clientISN + 1, ack: cookie + 1}), engine.Accept, engine.EventTranslated)
		if f, ok := h.flowOf(); !ok || f.state != stateClosing {
			t.Fatalf("after RST: %v %v, want closing", f.state, ok)
		}
		// A SYN only marks the closing flow (it may be spoofed) ...
		s := fullSyn()
		s.seq = 99
		r := h.expect(h.craft(s), engine.Drop, engine.EventSynAnswered)
		if f, ok := h.flowOf(); !ok || f.state != stateClosing || !f.newSyn {
			t.Fatalf("after a new SYN: state %v newSyn %v found %v, want a marked closing flow", f.state, f.newSyn, ok)
		}
		// ... and the valid ACK for its new ISN replaces it.
		sa := decode(t, r.Inject[0])
		r = h.expect(h.craft(seg{flags: header.ACK, seq: 100, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 9, tsEcr: sa.TSVal}), engine.Accept, engine.EventHandshake)
		if got := decode(t, r.Packet); got.Flags&header.SYN == 0 || got.Seq != 99 {
			t.Errorf("SYN to the server = flags %#x seq %d, want SYN with ISN 99", got.Flags, got.Seq)
		}
		if f, ok := h.flowOf(); !ok || f.state != stateSynSent || f.clientISN != 99 {
			t.Errorf("after the new ACK: state %v ISN %d, want SynSent with ISN 99", f.state, f.clientISN)
		}
	})
}

// TestLimitedSynLeavesFlow: a SYN refused by a rate limit touches no state,
// so a spoofed SYN on an established tuple cannot mark its flow (which
// would take it off the lock-free translation path for good).
func TestLimitedSynLeavesFlow(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	h.establish(-1, "")
	if err := h.e.SetPolicy(limitedPolicy(t, true, policy.Rate{})); err != nil {
		t.Fatal(err)
	}
	h.answered(h.client(), 10) // uses up the burst of the client's /24
	if r := h.run(h.craft(fullSyn()), engine.Meta{}); r.Event != engine.EventSynLimited {
		t.Fatalf("SYN on the established tuple: %v, want syn_limited", r.Event)
	}
	if f, ok := h.flowOf(); !ok || f.state != stateEstablished || f.newSyn {
		t.Errorf("flow after a refused SYN: found %v, state %v, newSyn %v; want established and unmarked", ok, f.state, f.newSyn)
	}
}

// TestRetransmittedSynOtherOptions: a SYN repeated with the same ISN but
// without window scaling gets a SYN-ACK without it, and the server is then
// opened without it too (not with the first SYN's cached options).
func TestRetransmittedSynOtherOptions(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
		s := fullSyn()
		s.hasWS, s.ws = false, -1
		r := h.expect(h.craft(s), engine.Drop, engine.EventSynAnswered)
		sa := decode(t, r.Inject[0])
		if sa.WS != -1 {
			t.Fatalf("SYN-ACK to a SYN without window scale offers %d", sa.WS)
		}
		r = h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal}), engine.Accept, engine.EventHandshake)
		if syn := decode(t, r.Packet); syn.WS != -1 {
			t.Errorf("SYN to the server carries window scale %d, want none (the SYN-ACK agreed to none)", syn.WS)
		}
	})
}

// TestSynAckMatchesReference: for varied SYNs the engine's SYN-ACK is byte
// for byte the one the gopacket reference builds.
func TestSynAckMatchesReference(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, s := range []seg{
			fullSyn(),
			{flags: header.SYN, seq: 1, win: 1, mss: 536},
			{flags: header.SYN, seq: 2, win: 1, sackPerm: true},
			{flags: header.SYN, seq: 3, win: 1, ts: true, tsVal: 99},
			{flags: header.SYN, seq: 4, win: 1, hasWS: true, ws: 14, mss: 8940},
			{flags: header.SYN | header.ECE | header.CWR, seq: 5, win: 1, ts: true, sackPerm: true, tsVal: 1, hasWS: true, ws: 0},
		} {
			h := newHarness(t, v6, testAdvertise())
			pkt := h.craft(s)
			want, err := reference.SynAck(pkt, h.e.Jar(), testAdvertise(), h.now)
			if err != nil {
				t.Fatalf("reference.SynAck: %v", err)
			}
			r := h.expect(pkt, engine.Drop, engine.EventSynAnswered)
			if d := cmp.Diff(want, r.Inject[0]); d != "" {
				t.Errorf("v6 %v, SYN %+v: engine SYN-ACK differs from the reference (-ref +engine):\n%s", v6, s, d)
			}
		}
	}
}

// TestBlindReset (issue 12, 1): a reset of an established flow is judged
// against the receiver's window as far as the flow tracked it (RFC 5961
// §3.2): outside it, it is dropped and counted and the flow lives on; in
// window but not exact, it is passed on and the flow closes, but reopens
// when the receiver answers (its challenge ACK); exact, it closes the flow
// for good.
func TestBlindReset(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		type step struct {
			seg     seg
			verdict engine.Verdict
			event   engine.Event
			state   flowState
			after   time.Duration // the clock moves first
		}
		for _, tt := range []struct {
			name  string
			steps func(cookie uint32) []step
		}{
			{"client reset outside", func(cookie uint32) []step {
				return []step{
					{seg{flags: header.RST, seq: clientISN + 1 + 1<<31}, engine.Drop, engine.EventBadReset, stateEstablished, 0},
					{seg{flags: header.RST | header.ACK, seq: clientISN + 1 + 3<<30, ack: cookie + 1}, engine.Drop, engine.EventBadReset, stateEstablished, 0},
					{seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 1, win: 500, payload: "x"}, engine.Accept, engine.EventTranslated, stateEstablished, 0},
				}
			}},
			{"server reset outside", func(cookie uint32) []step {
				return []step{
					{seg{fromServer: true, flags: header.RST, seq: serverISN + 1 + 1<<30}, engine.Drop, engine.EventBadReset, stateEstablished, 0},
					{seg{fromServer: true, flags: header.ACK, seq: serverISN + 1, ack: clientISN + 1, win: 500, payload: "y"}, engine.Accept, engine.EventTranslated, stateEstablished, 0},
				}
			}},
			{"client reset in window, receiver answers", func(cookie uint32) []step {
				return []step{
					{seg{flags: header.RST, seq: clientISN + 1 + 1000}, engine.Accept, engine.EventTranslated, stateClosing, 0},
					// The server's challenge ACK (RFC 5961 §3.2) shows it lives.
					{seg{fromServer: true, flags: header.ACK, seq: serverISN + 1, ack: clientISN + 1, win: 500}, engine.Accept, engine.EventTranslated, stateEstablished, 0},
				}
			}},
			{"server reset in window, receiver answers", func(cookie uint32) []step {
				return []step{
					{seg{fromServer: true, flags: header.RST, seq: serverISN + 1 + 30}, engine.Accept, engine.EventTranslated, stateClosing, 0},
					{seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 1, win: 500}, engine.Accept, engine.EventTranslated, stateEstablished, 0},
				}
			}},
			{"exact client reset", func(cookie uint32) []step {
				return []step{
					{seg{flags: header.RST, seq: clientISN + 1}, engine.Accept, engine.EventTranslated, stateClosing, 0},
					{seg{fromServer: true, flags: header.ACK, seq: serverISN + 1, ack: clientISN + 1, win: 500}, engine.Accept, engine.EventTranslated, stateClosing, 0},
				}
			}},
			{"exact server reset after data", func(cookie uint32) []step {
				// The data comes after the view's grain: it takes the lock
				// and is tracked (at most a grain of data is not).
				return []step{
					{seg{fromServer: true, flags: header.ACK | header.PSH, seq: serverISN + 1, ack: clientISN + 1, win: 500, payload: "hello"}, engine.Accept, engine.EventTranslated, stateEstablished, 2 * time.Millisecond},
					{seg{fromServer: true, flags: header.RST, seq: serverISN + 6}, engine.Accept, engine.EventTranslated, stateClosing, 0},
					{seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 6, win: 500}, engine.Accept, engine.EventTranslated, stateClosing, 0},
				}
			}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				h := newHarness(t, v6, testAdvertise())
				cookie, _, _ := h.establish(-1, "")
				for i, st := range tt.steps(cookie) {
					h.now = h.now.Add(st.after)
					r := h.run(h.craft(st.seg), engine.Meta{})
					if r.Verdict != st.verdict || r.Event != st.event {
						t.Fatalf("step %d: Process = %v/%v, want %v/%v", i, r.Verdict, r.Event, st.verdict, st.event)
					}
					if f, ok := h.flowOf(); !ok || f.state != st.state {
						t.Fatalf("step %d: flow state %v (found %v), want %v", i, f.state, ok, st.state)
					}
				}
			})
		}
	})
}

// TestCookieReplay (issue 12, 2): ACK, RST, ACK, RST ... of one valid
// cookie opens the server side once: the reset flow lingers and the
// replayed ACKs are dropped.
func TestCookieReplay(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		r := h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
		sa := decode(t, r.Inject[0])
		ack := h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal})
		rst := h.craft(seg{flags: header.RST, seq: clientISN + 1})
		syns := 0
		for i := range 5 {
			r := h.run(append([]byte(nil), ack...), engine.Meta{})
			if r.Event == engine.EventHandshake {
				syns++
			}
			h.run(append([]byte(nil), rst...), engine.Meta{})
			h.now = h.now.Add(time.Second)
			if i == 0 && r.Event != engine.EventHandshake {
				t.Fatalf("first ACK: %v, want handshake", r.Event)
			}
		}
		if syns != 1 {
			t.Errorf("5 replays of one cookie sent %d SYNs to the server, want 1", syns)
		}
		// A spoofed SYN with the same ISN changes nothing.
		h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
		h.expect(append([]byte(nil), ack...), engine.Drop, engine.EventUnknown)
	})
}

// TestHandshakeLimit (issue 12, 2): handshakes from one source are bound
// by a limiter of the service's per-source rate, so a cookie replayed
// after each linger does not open the server side at will.
func TestHandshakeLimit(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	p := limitedPolicy(t, true, policy.Rate{})
	p.Services[0].Limit = policy.SourceLimit{Rate: policy.Rate{Count: 1, Per: time.Minute}, Burst: 1, Prefix4: 32, Prefix6: 64}
	if err := h.e.SetPolicy(p); err != nil {
		t.Fatal(err)
	}
	r := h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
	sa := decode(t, r.Inject[0])
	ack := h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal})
	h.expect(append([]byte(nil), ack...), engine.Accept, engine.EventHandshake)
	h.expect(h.craft(seg{flags: header.RST, seq: clientISN + 1}), engine.Accept, engine.EventTranslated)
	h.now = h.now.Add(11 * time.Second) // past the linger, within the cookie's life
	h.expect(append([]byte(nil), ack...), engine.Drop, engine.EventSynLimited)
	if got := h.e.Stats().HandshakesLimited; got != 1 {
		t.Errorf("Stats().HandshakesLimited = %d, want 1", got)
	}
}

// TestNewSynMarkClears (issue 12, 7): a spoofed SYN on an established
// tuple marks the flow; the client's next segment of the connection
// clears the mark, and the flow is back on the lock-free path.
func TestNewSynMarkClears(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		cookie, ourTS, _ := h.establish(7, "")
		s := fullSyn()
		s.seq = 424242
		h.expect(h.craft(s), engine.Drop, engine.EventSynAnswered)
		if f, _ := h.flowOf(); !f.newSyn {
			t.Fatalf("after a SYN: newSyn false, want the flow marked")
		}
		data := seg{flags: header.ACK | header.PSH, seq: clientISN + 1, ack: cookie + 1, win: 500, ts: true, tsVal: clientTS + 3, tsEcr: ourTS, payload: "more"}
		h.expect(h.craft(data), engine.Accept, engine.EventTranslated)
		f, _ := h.flowOf()
		if f.newSyn {
			t.Errorf("after a segment of the connection: newSyn still set")
		}
		var k flowKey
		tup := h.tuple()
		k.set(&tup.Src, &tup.Dst, tup.SrcPort, tup.DstPort, tup.V6)
		i, tag := h.e.flows.bucketKey(&k)
		var x xlate
		if !h.e.flows.view(i, tag, &k, sideClient, h.now.UnixNano(), &x) {
			t.Errorf("the flow's view is not published: its packets still take the lock")
		}
	})
}

// TestForgedAckOdds: with the MAC cut to 12 bits (cookies.WeakenedForTest),
// random handshake ACKs sent through the whole engine, each naming a live
// counter as an attacker who knows the clock would, open the server side
// at the computed rate of 2^-12: the count stays within five standard
// deviations of the binomial mean. The production MAC has 28 bits
// (cookies/doc.go); a test this size would catch one shorter than about 17.
func TestForgedAckOdds(t *testing.T) {
	const bits = 12
	n := 1 << 20
	if raceEnabled {
		n = 1 << 17
	}
	base, err := cookies.New(cookies.Config{Period: 30 * time.Second, Rand: seeded(3)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, false, testAdvertise(), func(c *Config) {
		c.Cookies = base.WeakenedForTest(bits)
		c.Flows, c.FlowsPerSource = 1<<14, 1<<14
	})
	pkt := h.craft(seg{flags: header.ACK, seq: 1, ack: 1, win: 1000})
	rng := rand.New(seeded(4))
	counter := uint32(t0.UnixNano() / int64(30*time.Second))
	var r engine.Result
	events := map[engine.Event]int{}
	for i := range n {
		pkt[15] = byte(i)
		pkt[14] = byte(i >> 8)
		binary.BigEndian.PutUint16(pkt[20:], uint16(1024+i>>16))
		binary.BigEndian.PutUint32(pkt[24:], rng.Uint32()) // ISN + 1
		cookie := rng.Uint32() &^ 0xf
		idx := rng.Uint32() & 3
		cookie |= (idx<<2 | counter&3) ^ cookie>>28
		binary.BigEndian.PutUint32(pkt[28:], cookie+1)
		h.w.Process(pkt, engine.Meta{}, h.now, &r)
		events[r.Event]++
	}
	p := math.Ldexp(1, -bits)
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	got := events[engine.EventHandshake]
	if math.Abs(float64(got)-mean) > 5*sd {
		t.Errorf("%d of %d forged ACKs accepted, want %.0f ± %.0f (2^-%d)", got, n, mean, 5*sd, bits)
	}
	if got+events[engine.EventBadCookie] != n {
		t.Errorf("events %v, want only handshakes and bad cookies", events)
	}
	t.Logf("%d of %d forged ACKs accepted at 2^-%d: expected %.1f", got, n, bits, mean)
}
