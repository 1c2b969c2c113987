package gateway

import (
	"testing"
	"time"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

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
