package daemon

import (
	"testing"
	"time"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway"
)

func TestRates(t *testing.T) {
	var r rates
	if _, ok := r.over(1); ok {
		t.Fatal("rates.over with no samples = ok, want none")
	}
	t0 := time.Unix(1000, 0)
	for i := range 15 {
		var s gateway.Stats
		s.Events[engine.EventSynAnswered] = uint64(i * 100)
		s.Events[engine.EventHandshake] = uint64(i * i)
		s.Events[engine.EventBadCookie] = 5
		r.add(t0.Add(time.Duration(i)*time.Second), s)
	}
	one, _ := r.over(1)
	ten, _ := r.over(10)
	if one.Seconds != 1 || one.Answered != 100 || one.Handshakes != 27 || one.Packets != 127 {
		t.Errorf("rate over 1s = %+v, want 100 SYNs, 27 handshakes (14²-13²), 127 packets per second", one)
	}
	if ten.Seconds != 10 || ten.Answered != 100 || ten.Handshakes != 18 {
		t.Errorf("rate over 10s = %+v, want 100 SYNs and 18 handshakes ((14²-4²)/10) per second", ten)
	}
	if len(one.Drops) != 0 {
		t.Errorf("drops = %v, want none (the bad-cookie counter did not move)", one.Drops)
	}
}
