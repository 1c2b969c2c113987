package gateway

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/synwall/synwall/gateway/header"
)

// TestConcurrentWorkers runs whole connections on two workers of one engine
// while a third goroutine sweeps, reads counters and reloads the policy.
// Run with -race.
func TestConcurrentWorkers(t *testing.T) {
	h := newHarness(t, false, testAdvertise(), func(c *Config) { c.Flows = 512; c.CacheBuckets, c.CacheEntries = 16, 4 })
	pol := h.e.Policy()
	const perWorker = 300
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan string, 2)
	for wi := 0; wi < 2; wi++ {
		wg.Add(1)
		go func(wi int) {
			defer wg.Done()
			w := h.e.NewWorker()
			now := h.now
			var r Result
			for i := 0; i < perWorker; i++ {
				cl := netip.AddrFrom4([4]byte{198, 18, byte(10 + wi), byte(i)})
				port := uint16(10000 + i)
				w.Process(craftPacket(t, cl, server4, port, serverPort, seg{flags: header.SYN, seq: 100, win: 1, mss: 1460, ts: true, tsVal: 1}), Meta{}, now, &r)
				if r.Event != EventSynAnswered {
					errs <- "SYN: " + r.Event.String()
					return
				}
				sa := decode(t, r.Inject[0])
				w.Process(craftPacket(t, cl, server4, port, serverPort, seg{flags: header.ACK, seq: 101, ack: sa.Seq + 1, win: 1, ts: true, tsVal: 2, tsEcr: sa.TSVal, payload: "x"}), Meta{}, now, &r)
				if r.Event != EventHandshake {
					errs <- "ACK: " + r.Event.String()
					return
				}
				w.Process(craftPacket(t, server4, cl, serverPort, port, seg{flags: header.SYN | header.ACK, seq: 5000, ack: 101, win: 1, ts: true, tsVal: 9, tsEcr: 2}), Meta{}, now, &r)
				if r.Event != EventServerUp || len(r.Inject) != 2 {
					errs <- "server SYN-ACK: " + r.Event.String()
					return
				}
				w.Process(craftPacket(t, cl, server4, port, serverPort, seg{flags: header.ACK, seq: 102, ack: sa.Seq + 2, win: 1, ts: true, tsVal: 3, tsEcr: sa.TSVal}), Meta{}, now, &r)
				if r.Event != EventTranslated {
					errs <- "data: " + r.Event.String()
					return
				}
				now = now.Add(time.Millisecond)
			}
		}(wi)
	}
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			h.e.Expire(h.now)
			_ = h.e.Stats()
			if err := h.e.SetPolicy(pol); err != nil {
				errs <- err.Error()
				return
			}
		}
	}()
	wg.Wait()
	close(done)
	select {
	case e := <-errs:
		t.Fatal(e)
	default:
	}
	st := h.e.Stats()
	if st.Events[EventServerUp] != 2*perWorker || st.Events[EventTranslated] != 2*perWorker {
		t.Errorf("server_up %d translated %d, want %d each", st.Events[EventServerUp], st.Events[EventTranslated], 2*perWorker)
	}
	if got := h.e.pending.freeCount(); got != 64 {
		t.Errorf("free pending slots %d, want 64", got)
	}
}
