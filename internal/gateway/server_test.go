package gateway

import (
	"net/netip"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

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
		if free := h.e.flows.pending.freeCount(); free != 64 {
			t.Errorf("free pending slots = %d, want 64", free)
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

// synSent runs SYN and handshake ACK and returns the cookie: the flow then
// waits for the server.
func (h *harness) synSent() uint32 {
	h.tb.Helper()
	r := h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
	sa := decode(h.tb, r.Inject[0])
	h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal}), engine.Accept, engine.EventHandshake)
	return sa.Seq
}

// TestBareServerResetInSynSent (issue 12, 6): in SYN-SENT a reset without
// ACK is dropped (RFC 9293 §3.10.7.3): it neither ends the handshake nor
// reaches the client, whatever its sequence number.
func TestBareServerResetInSynSent(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		h.synSent()
		for _, seq := range []uint32{0, 12345, serverISN} {
			r := h.expect(h.craft(seg{fromServer: true, flags: header.RST, seq: seq}), engine.Drop, engine.EventUnknown)
			if len(r.Inject) != 0 {
				t.Errorf("bare RST seq %d: %d packets sent, want none", seq, len(r.Inject))
			}
		}
		if f, ok := h.flowOf(); !ok || f.state != stateSynSent {
			t.Fatalf("after bare RSTs: flow %v (found %v), want SynSent", f.state, ok)
		}
		// The server's real answer still works.
		h.expect(h.craft(seg{fromServer: true, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 65160, mss: 1400}), engine.Drop, engine.EventServerUp)
	})
}

// TestServerChallengeAck (issue 12, 4): a server that still holds an
// established connection on the tuple answers our SYN with a challenge
// ACK (RFC 5961 §4); as a client in SYN-SENT would (RFC 9293 §3.10.7.3),
// the engine resets it at SEG.ACK and sends its SYN again.
func TestServerChallengeAck(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		h.synSent()
		h.now = h.now.Add(10 * time.Millisecond)
		r := h.expect(h.craft(seg{fromServer: true, flags: header.ACK, seq: 5555, ack: 777777, win: 100}), engine.Drop, engine.EventResync)
		if len(r.Inject) != 2 {
			t.Fatalf("challenge ACK: %d packets sent, want an RST and a SYN", len(r.Inject))
		}
		rst, syn := decode(t, r.Inject[0]), decode(t, r.Inject[1])
		want := out{Src: h.client(), Dst: h.server(), SrcPort: clientPort, DstPort: serverPort, HopLimit: 64, Seq: 777777, Flags: header.RST, WS: -1}
		if d := cmpDiff(want, rst); d != "" {
			t.Errorf("RST to the server (-want +got):\n%s", d)
		}
		if syn.Flags&header.SYN == 0 || syn.Seq != clientISN || syn.Src != h.client() || syn.Dst != h.server() {
			t.Errorf("then %+v, want our SYN with the client's ISN again", syn)
		}
		if got := h.e.Stats().ServerResyncs; got != 1 {
			t.Errorf("Stats().ServerResyncs = %d, want 1", got)
		}
		h.expect(h.craft(seg{fromServer: true, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 65160, mss: 1400}), engine.Drop, engine.EventServerUp)
	})
}

// TestHeldSegmentFlags (issue 12, examined): client segments held while
// the server has not answered keep FIN, URG with its pointer, ECE and CWR
// when they are replayed; a bare FIN is held too.
func TestHeldSegmentFlags(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		cookie := h.synSent()
		h.expect(h.craft(seg{flags: header.ACK | header.URG | header.CWR, seq: clientISN + 1, ack: cookie + 1, win: 500, urg: 2, payload: "ab"}), engine.Drop, engine.EventHeld)
		h.expect(h.craft(seg{flags: header.ACK | header.FIN, seq: clientISN + 3, ack: cookie + 1, win: 500}), engine.Drop, engine.EventHeld)
		r := h.expect(h.craft(seg{fromServer: true, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 65160, mss: 1400}), engine.Drop, engine.EventServerUp)
		if len(r.Inject) != 3 {
			t.Fatalf("server up: %d packets sent, want the ACK and two held segments", len(r.Inject))
		}
		data, fin := decode(t, r.Inject[1]), decode(t, r.Inject[2])
		if data.Flags != header.ACK|header.URG|header.CWR || data.Urgent != 2 || data.Payload != "ab" || data.Seq != clientISN+1 {
			t.Errorf("held data replayed as flags %#x urgent %d payload %q seq %d, want ACK|URG|CWR, 2, \"ab\", %d", data.Flags, data.Urgent, data.Payload, data.Seq, clientISN+1)
		}
		if fin.Flags != header.ACK|header.FIN || fin.Seq != clientISN+3 {
			t.Errorf("held FIN replayed as flags %#x seq %d, want ACK|FIN at %d", fin.Flags, fin.Seq, clientISN+3)
		}
	})
}

// TestPendingShare (issue 12, examined): one source's handshakes hold at
// most a sixteenth of the held-data pool; another source still gets room.
func TestPendingShare(t *testing.T) {
	h := newHarness(t, false, testAdvertise(), func(c *Config) { c.PendingSlots = 128 }) // a share of 8
	hold := func(src netip.Addr, port uint16) {
		t.Helper()
		r := h.expect(craftPacket(t, src, server4, port, serverPort, seg{flags: header.SYN, seq: clientISN, win: 1000}), engine.Drop, engine.EventSynAnswered)
		sa := decode(t, r.Inject[0])
		for k := range uint32(MaxPendingPerFlow) {
			h.run(craftPacket(t, src, server4, port, serverPort, seg{flags: header.ACK | header.PSH, seq: clientISN + 1 + 10*k, ack: sa.Seq + 1, win: 1000, payload: "0123456789"}), engine.Meta{})
		}
	}
	for port := uint16(47000); port < 47003; port++ {
		hold(client4, port)
	}
	if got := 128 - h.e.flows.pending.freeCount(); got != 8 {
		t.Errorf("one source holds %d segments, want its share of 8", got)
	}
	hold(netip.MustParseAddr("198.18.0.77"), 47010)
	if got := 128 - h.e.flows.pending.freeCount(); got != 12 {
		t.Errorf("after another source: %d segments held, want 12", got)
	}
}

// TestServerLacksOptions (issue 12, examined): a server whose SYN-ACK lacks
// timestamps, window scaling and SACK that our SYN-ACK agreed to with the
// client is counted, and the connection stays correct: the server's
// unscaled windows reach the client in the scale it was offered, and the
// client's scaled ones reach the server unscaled.
func TestServerLacksOptions(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		cookie := h.synSent()
		h.expect(h.craft(seg{fromServer: true, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 65160, mss: 1400}), engine.Drop, engine.EventServerUp)
		want := [NumServerLacks]uint64{LackTimestamps: 1, LackWScale: 1, LackSACK: 1}
		if got := h.e.Stats().ServerLacks; got != want {
			t.Errorf("Stats().ServerLacks = %v, want %v", got, want)
		}
		r := h.expect(h.craft(seg{fromServer: true, flags: header.ACK, seq: serverISN + 1, ack: clientISN + 1, win: 6400}), engine.Accept, engine.EventTranslated)
		if got := decode(t, r.Packet); got.Window != 6400>>7 || got.Seq != cookie+1 {
			t.Errorf("server window 6400 reaches the client as %d (seq %d), want %d (seq %d)", got.Window, got.Seq, 6400>>7, cookie+1)
		}
		r = h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 1, win: 100, ts: true, tsVal: 5, tsEcr: 6}), engine.Accept, engine.EventTranslated)
		if got := decode(t, r.Packet); got.Window != 100<<7 || got.Ack != serverISN+1 {
			t.Errorf("client window 100 reaches the server as %d (ack %d), want %d (ack %d)", got.Window, got.Ack, 100<<7, serverISN+1)
		}
	})
}
