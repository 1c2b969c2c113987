//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"bytes"
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/gateway/header"
)

// TestSampling: with sampling at 10 per second the program puts the first
// 10 of a burst of drops (the token bucket's second's worth) into its ring
// buffer, each with its reason and the packet's bytes, and ReadSamples
// hands them over; with sampling off, none.
func TestSampling(t *testing.T) {
	p := newPair(t, limitsPolicy(t, "drop"))
	if err := p.s.SetSampling(10); err != nil {
		t.Fatalf("SetSampling: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu   sync.Mutex
		got  []Sample
		done = make(chan error, 1)
	)
	go func() {
		done <- p.s.ReadSamples(ctx, func(s *Sample) {
			mu.Lock()
			defer mu.Unlock()
			c := *s
			c.Packet = bytes.Clone(s.Packet)
			got = append(got, c)
		})
	}()
	samples := func(want int) []Sample {
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n >= want {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // anything more that comes
		mu.Lock()
		defer mu.Unlock()
		return append([]Sample(nil), got...)
	}

	denied := synPacket(t, synSpec{src: netip.MustParseAddr("198.18.0.66"), port: portFull, mss: 1460, ws: -1, isn: 1, sport: 5000})
	if o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(denied)); o.Kind != "drop" {
		t.Fatalf("denied SYN: %+v, want a drop", o)
	}
	synfin := synPacket(t, synSpec{port: portFull, mss: 1460, ws: -1, flags: header.SYN | header.FIN, isn: 2, sport: 5001})
	start := time.Now()
	for range 30 {
		if o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(synfin)); o.Kind != "drop" {
			t.Fatalf("SYN+FIN: %+v, want a drop", o)
		}
	}
	elapsed := time.Since(start)
	s := samples(10)
	// Ten in the burst, and one more per 100 ms that the loop took.
	if max := 10 + int(elapsed/(100*time.Millisecond)) + 1; len(s) < 10 || len(s) > max {
		t.Fatalf("%d samples of 31 drops, want 10..%d", len(s), max)
	}
	if s[0].Reason != header.OK || !s[0].PolicyDrop || s[0].Limited || !bytes.Equal(s[0].Packet, denied) || s[0].Len != 14+len(denied) {
		t.Errorf("first sample %+v, want the denied SYN (policy drop, %d bytes) % x", s[0], 14+len(denied), denied)
	}
	for i, x := range s[1:] {
		if x.Reason != header.SynFin || x.PolicyDrop || x.Limited || !bytes.Equal(x.Packet, synfin) || x.Len != 14+len(synfin) {
			t.Errorf("sample %d: %+v, want the SYN+FIN (syn_fin) % x", i+1, x, synfin)
		}
	}

	if err := p.s.SetSampling(0); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got = nil
	mu.Unlock()
	time.Sleep(1100 * time.Millisecond) // the bucket refills
	for range 5 {
		p.runBPF(p.s.objs.SynstageTc, false, ethernet(synfin))
	}
	if s := samples(1); len(s) != 0 {
		t.Errorf("%d samples with sampling off, want 0", len(s))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ReadSamples: %v", err)
	}
}
