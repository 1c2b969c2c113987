package main

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/synwall/synwall/deploy/lab"
)

// Floors of the short run, behaviour facts only.
const (
	// shortRSSGrowth bounds synwall's RSS growth from 10^3 to 10^5
	// distinct sources. Per-source or per-tuple state that grew with the
	// sources would cost at least 64 B × 99,000 ≈ 6 MiB; the tables are
	// allocated at start, so the growth is the Go runtime's noise.
	shortRSSGrowth = 4 << 20
	// shortSuccess is the least share of legitimate connections that must
	// succeed under synwall at the short run's highest flood rate. The
	// target of the full run is 99%; the floor allows for a busy shared
	// machine (a SYN lost to a full queue is retransmitted after 1 s, and
	// the client gives up after 3 s).
	shortSuccess = 0.90
)

// TestShort runs the load test's short plan in a lab of its own: two
// sweep points per defense, two memory stages. It checks that it ran, not
// how fast: every defense and point produced a row, the plots are PNGs,
// synwall's RSS stayed flat between the memory stages, and most legitimate
// connections succeeded under synwall.
func TestShort(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the load test floods a namespace lab for about a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := options{short: true}
	o.defaults()
	rep, err := run(ctx, o, testLog{t})
	if errors.Is(err, lab.ErrPermission) {
		t.Skipf("needs root to build network namespaces: %v", err)
	}
	if errors.Is(err, lab.ErrMissingTool) {
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	dir := t.TempDir()
	if err := rep.write(dir); err != nil {
		t.Fatalf("write: %v", err)
	}
	checkOutputs(t, dir, o)
	if testing.Verbose() {
		b, _ := os.ReadFile(dir + "/" + markdownOut)
		t.Logf("%s", b)
	}

	for _, p := range rep.points {
		if p.Sent == 0 || p.Load.Attempts != o.conns {
			t.Errorf("%s at %d pps: sent %d, %d connections attempted, want > 0 and %d", p.Defense, p.Rate, p.Sent, p.Load.Attempts, o.conns)
		}
		if p.SynAcks == 0 {
			t.Errorf("%s at %d pps: no SYN-ACKs counted", p.Defense, p.Rate)
		}
	}
	top := o.rates[len(o.rates)-1]
	if sw, ok := rep.find(defSynwall, top); !ok {
		t.Errorf("no synwall point at %d pps", top)
	} else if got := sw.Load.SuccessRate(); got < shortSuccess {
		t.Errorf("synwall at %d pps: legitimate success %.3f (%s), want ≥ %.2f", top, got, sw.Load, shortSuccess)
	}

	if len(rep.memory) != len(o.stages)+1 {
		t.Fatalf("%d memory rows, want %d", len(rep.memory), len(o.stages)+1)
	}
	for _, s := range rep.memory[1:] {
		if uint64(s.Sent) != s.Sources {
			t.Errorf("stage of %d sources sent %d SYNs, want one per source", s.Sources, s.Sent)
		}
		if s.RSSkB == 0 || s.HeapAlloc == 0 {
			t.Errorf("stage of %d sources: RSS %d kB, heap %d B, want both read", s.Sources, s.RSSkB, s.HeapAlloc)
		}
	}
	first, last := rep.memory[1], rep.memory[len(rep.memory)-1]
	if g := int64(last.RSSkB) - int64(first.RSSkB); g > shortRSSGrowth>>10 {
		t.Errorf("synwall RSS grew by %d kB from %d to %d sources, want ≤ %d kB", g, first.Sources, last.Sources, shortRSSGrowth>>10)
	}
}

// testLog writes the harness's progress to the test log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}
