package gateway

import (
	"testing"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

func TestCapacity(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	want := Capacity{CacheCapacity: 64 * 4, FlowsCapacity: 1024, PendingSlots: 64}
	if got := h.e.Capacity(); got != want {
		t.Fatalf("Capacity() of a new engine = %+v, want %+v", got, want)
	}
	var cookie uint32
	for i := range 3 {
		r := h.expect(h.craft(seg{flags: header.SYN, sport: uint16(40000 + i), seq: 1000, win: 1000, mss: 1460}), engine.Drop, engine.EventSynAnswered)
		cookie = decode(t, r.Inject[0]).Seq
	}
	want.CacheEntries = 3
	if got := h.e.Capacity(); got != want {
		t.Errorf("Capacity() after 3 SYNs = %+v, want %+v", got, want)
	}
	h.expect(h.craft(seg{flags: header.ACK, sport: 40002, seq: 1001, ack: cookie + 1, win: 1000}), engine.Accept, engine.EventHandshake)
	got := h.e.Capacity()
	if got.Flows != 1 || got.CacheEntries > 3 {
		t.Errorf("Capacity() after a handshake = %+v, want 1 flow and at most 3 cache entries", got)
	}
}
