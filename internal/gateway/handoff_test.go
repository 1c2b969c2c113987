package gateway

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// serverSynAck is the server's SYN-ACK answering the handshake of
// establishWith; mod changes it.
func (h *harness) serverSynAck(mod func(*seg)) seg {
	s := seg{fromServer: true, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 65160,
		mss: h.mssFor(), sackPerm: true, ts: true, tsVal: serverTS, tsEcr: clientTS + 1, hasWS: true, ws: 7}
	if mod != nil {
		mod(&s)
	}
	return s
}

// establishWith runs the handshake with full options and the server's
// SYN-ACK ssa, and returns the cookie, our TSval and the result of the
// SYN-ACK.
func (h *harness) establishWith(ssa seg) (cookie, ourTS uint32, r engine.Result) {
	h.tb.Helper()
	r = h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
	sa := decode(h.tb, r.Inject[0])
	h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal}),
		engine.Accept, engine.EventHandshake)
	r = h.expect(h.craft(ssa), engine.Drop, engine.EventServerUp)
	return sa.Seq, sa.TSVal, r
}

func TestHandoffRecord(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		h.e.SetHandoff(true)
		cookie, ourTS, r := h.establishWith(h.serverSynAck(nil))
		tup := h.tuple()
		want := engine.Handoff{Valid: true, V6: v6, Client: tup.Src, Server: tup.Dst, ClientPort: clientPort, ServerPort: serverPort,
			WScale: true, SACK: true, Timestamps: true, ClientWScale: 7, ServerWScale: 7,
			CookieISN: cookie, ServerISN: serverISN, ITS: ourTS, ServerTSval: serverTS}
		if d := cmpDiff(want, r.Handoff); d != "" {
			t.Errorf("Result.Handoff (-want +got):\n%s", d)
		}
		if s := h.e.HandoffStats(); s.Emitted != 1 {
			t.Errorf("HandoffStats = %+v, want 1 emitted", s)
		}
	})
}

func TestHandoffSkips(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*seg)
		want engine.HandoffSkip
	}{
		{"server scales otherwise", func(s *seg) { s.ws = 9 }, engine.SkipWScale},
		{"server without window scaling", func(s *seg) { s.hasWS = false }, engine.SkipWScale},
		{"server without SACK", func(s *seg) { s.sackPerm = false }, engine.SkipSACK},
		{"server without timestamps", func(s *seg) { s.ts = false }, engine.SkipTimestamps},
		{"server MSS below the announced one", func(s *seg) { s.mss = 1200 }, engine.SkipMSS},
		{"server without MSS", func(s *seg) { s.mss = 0 }, engine.SkipMSS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false, testAdvertise())
			h.e.SetHandoff(true)
			_, _, r := h.establishWith(h.serverSynAck(tt.mod))
			if r.Handoff.Valid {
				t.Errorf("hand-off record %+v, want none", r.Handoff)
			}
			s := h.e.HandoffStats()
			var want [engine.NumHandoffSkips]uint64
			want[tt.want] = 1
			if s.Skipped != want || s.Emitted != 0 {
				t.Errorf("HandoffStats = %+v, want skipped %v", s, want)
			}
			if _, ok := h.flowOf(); !ok {
				t.Error("the flow kept in user space is gone")
			}
		})
	}
}

func TestHandoffOff(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	_, _, r := h.establishWith(h.serverSynAck(nil))
	if r.Handoff.Valid {
		t.Errorf("hand-off record with hand-offs off: %+v", r.Handoff)
	}
	if s := h.e.HandoffStats(); s != (HandoffStats{}) {
		t.Errorf("HandoffStats = %+v with hand-offs off, want zero", s)
	}
}

// TestHandedOff: a flow the kernel took still translates what reaches the
// engine for HandoffGrace, then expires, and is left out of the state.
func TestHandedOff(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		h.e.SetHandoff(true)
		cookie, _, _ := h.establishWith(h.serverSynAck(nil))
		client := netip.AddrPortFrom(h.client(), clientPort)
		server := netip.AddrPortFrom(h.server(), serverPort)
		if h.e.HandedOff(server, client, h.now) {
			t.Error("HandedOff(reversed tuple) = true")
		}
		if !h.e.HandedOff(client, server, h.now) {
			t.Fatal("HandedOff = false for the established flow")
		}
		// A packet queued before the entry existed is translated here.
		r := h.expect(h.craft(seg{fromServer: true, flags: header.ACK | header.PSH, seq: serverISN + 1, ack: clientISN + 1, win: 500,
			ts: true, tsVal: serverTS + 1, tsEcr: clientTS + 1, payload: "late"}), engine.Accept, engine.EventTranslated)
		if got := decode(t, r.Packet); got.Seq != cookie+1 {
			t.Errorf("late segment seq = %d, want %d", got.Seq, cookie+1)
		}
		var buf bytes.Buffer
		if err := h.e.SaveState(&buf, h.now); err != nil {
			t.Fatal(err)
		}
		st, err := ReadState(bytes.NewReader(buf.Bytes()), h.now)
		if err != nil {
			t.Fatal(err)
		}
		if n := st.Flows(); n != 0 {
			t.Errorf("state carries %d flows, want 0 (the kernel carries it)", n)
		}
		var told int
		tell := func(pkts [][]byte) { told += len(pkts) }
		if n := h.e.ExpireAndTell(h.now.Add(HandoffGrace/2), tell); n != 0 {
			t.Errorf("Expire within the grace removed %d flows", n)
		}
		if n := h.e.ExpireAndTell(h.now.Add(HandoffGrace+time.Millisecond), tell); n != 1 {
			t.Errorf("Expire after the grace removed %d flows, want 1", n)
		}
		if told != 0 {
			t.Errorf("expiring a handed-off flow sent %d packets to its ends, want none: the kernel carries it", told)
		}
		if s := h.e.HandoffStats(); s.Confirmed != 1 {
			t.Errorf("HandoffStats = %+v, want 1 confirmed", s)
		}
	})
}

// TestHandoffZeroAllocs: the server's SYN-ACK that yields a hand-off record
// allocates nothing.
func TestHandoffZeroAllocs(t *testing.T) {
	const n = 64
	h := newHarness(t, false, testAdvertise(), func(c *Config) { c.FlowsPerSource = 2 * n })
	h.e.SetHandoff(true)
	synacks := make([][]byte, n)
	for i := range n {
		port := uint16(41000 + i)
		r := h.expect(h.craft(seg{sport: port, flags: header.SYN, seq: clientISN, win: 64240, mss: 1460, sackPerm: true, ts: true, tsVal: clientTS, hasWS: true, ws: 7}),
			engine.Drop, engine.EventSynAnswered)
		sa := decode(t, r.Inject[0])
		h.expect(h.craft(seg{sport: port, flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal}),
			engine.Accept, engine.EventHandshake)
		ssa := h.serverSynAck(nil)
		ssa.dport = port
		synacks[i] = h.craft(ssa)
	}
	var r engine.Result
	i := 0
	if a := testing.AllocsPerRun(n-1, func() {
		r = engine.Result{}
		h.w.Process(synacks[i], engine.Meta{}, h.now, &r)
		i++
	}); a != 0 {
		t.Errorf("server SYN-ACK with a hand-off record: %v allocs, want 0", a)
	}
	if !r.Handoff.Valid || r.Event != engine.EventServerUp {
		t.Errorf("last result: event %v, hand-off %v; want server_up with a record", r.Event, r.Handoff.Valid)
	}
}
