package gateway

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/gateway/reference"
)

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
