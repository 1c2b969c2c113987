package gateway

import (
	"testing"

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
