package daemon

import (
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/synwall/synwall/internal/engine"
)

// opsDaemon is a daemon with its observer, fed a SYN flood from
// 198.18.1.0/24 and SYN+FIN packets, as synwall run would see them.
func opsDaemon(t *testing.T, pcap PcapConfig) *Daemon {
	t.Helper()
	d, _ := metricsDaemon(t)
	var err error
	if d.ops, err = newOps(pcap, 10*time.Second, d.engine); err != nil {
		t.Fatalf("newOps: %v", err)
	}
	d.started = time.Now().Add(-time.Minute)
	p := d.ops.processor(d.engine)
	var r engine.Result
	for i := range 200 {
		syn := flagged(t, layers.TCP{SrcPort: layers.TCPPort(20000 + i), SYN: true, Seq: 7})
		p.Process(syn, engine.Meta{}, time.Now(), &r)
		if r.Event != engine.EventSynAnswered {
			t.Fatalf("SYN: event %v, want syn_answered", r.Event)
		}
	}
	for i := range 30 {
		p.Process(flagged(t, layers.TCP{SrcPort: layers.TCPPort(30000 + i), SYN: true, FIN: true}), engine.Meta{}, time.Now(), &r)
	}
	return d
}

// TestStatusDuringReload: the status reports the queues the daemon bound,
// and reads nothing a reload rewrites meanwhile (d.rules is replaced by
// the reload goroutine while the control socket serves; go test -race).
func TestStatusDuringReload(t *testing.T) {
	d := opsDaemon(t, PcapConfig{})
	done := make(chan Status)
	go func() {
		var s Status
		for range 50 {
			s = d.status(time.Now())
		}
		done <- s
	}()
	for i := range 50 {
		r := d.rules // as reload does with rules for other queues
		r.QueueFirst, r.QueueLast = uint16(7+i), uint16(8+i)
		d.rules = r
	}
	if s := <-done; s.Mode.Queues != "3-4" {
		t.Errorf("status queues = %q, want the bound 3-4", s.Mode.Queues)
	}
}
