package gateway

import (
	"testing"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

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
