package gateway

import (
	"net/netip"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

func limitedPolicy(t *testing.T, perSource bool, synAck policy.Rate) *policy.Policy {
	t.Helper()
	s := &policy.Service{
		Name: "web", Mode: policy.ModeProxy, PortLo: serverPort, PortHi: serverPort,
		Prefixes:  []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")},
		Advertise: testAdvertise(),
	}
	if perSource {
		s.Limit = policy.SourceLimit{Rate: policy.PerSecond(10), Burst: 5, Prefix4: 24, Prefix6: 64}
	}
	p, err := policy.New([]*policy.Service{s}, policy.Tables{})
	if err != nil {
		t.Fatalf("policy.New: %v", err)
	}
	p.Limits = policy.Limits{SynAckRate: synAck, SynAckBurst: 8}
	return p
}

// answered sends n SYNs from distinct ports of src and counts the answers.
func (h *harness) answered(src netip.Addr, n int) int {
	got := 0
	for i := 0; i < n; i++ {
		var r engine.Result
		h.w.Process(craftPacket(h.tb, src, server4, uint16(5000+i), serverPort, seg{flags: header.SYN, seq: uint32(i), win: 1}), engine.Meta{}, h.now, &r)
		switch r.Event {
		case engine.EventSynAnswered:
			got++
		case engine.EventSynLimited:
			if r.Verdict != engine.Drop || len(r.Inject) != 0 {
				h.tb.Fatalf("limited SYN: %v with %d injected", r.Verdict, len(r.Inject))
			}
		default:
			h.tb.Fatalf("SYN: %v", r.Event)
		}
	}
	return got
}

func TestSourceLimit(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	if err := h.e.SetPolicy(limitedPolicy(t, true, policy.Rate{})); err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("198.18.7.1"), netip.MustParseAddr("198.18.7.200") // one /24
	if got := h.answered(a, 4); got != 4 {
		t.Errorf("first 4 SYNs: %d answered, want 4", got)
	}
	if got := h.answered(b, 4); got != 1 {
		t.Errorf("next 4 SYNs from the same /24: %d answered, want 1 (burst 5)", got)
	}
	if got := h.answered(netip.MustParseAddr("198.18.8.1"), 5); got != 5 {
		t.Errorf("another /24: %d answered, want 5", got)
	}
	h.now = h.now.Add(time.Second)
	if got := h.answered(a, 20); got != 5 {
		t.Errorf("a second later: %d answered, want 5 (refilled to the burst)", got)
	}
	if st := h.e.Stats(); st.Events[engine.EventSynLimited] != 3+15 {
		t.Errorf("Events[syn_limited] = %d, want 18", st.Events[engine.EventSynLimited])
	}
	// Reloading keeps the limiters' state.
	if err := h.e.SetPolicy(limitedPolicy(t, true, policy.Rate{})); err != nil {
		t.Fatal(err)
	}
	if got := h.answered(b, 5); got != 0 {
		t.Errorf("limited /24 after reload: %d answered, want 0 (state kept)", got)
	}
	// Without a per-source limit, nothing is limited.
	if err := h.e.SetPolicy(limitedPolicy(t, false, policy.Rate{})); err != nil {
		t.Fatal(err)
	}
	if got := h.answered(b, 20); got != 20 {
		t.Errorf("no limit: %d answered, want 20", got)
	}
}

func TestSynAckLimit(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	if err := h.e.SetPolicy(limitedPolicy(t, false, policy.PerSecond(100))); err != nil {
		t.Fatal(err)
	}
	if got := h.answered(netip.MustParseAddr("198.18.9.9"), 20); got != 8 {
		t.Errorf("global limit burst 8: %d answered, want 8", got)
	}
}
