package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synwall/synwall/bench/internal/bounce"
	"github.com/synwall/synwall/deploy/lab"
)

// TestShort runs the short plan in a lab of its own and checks the
// report's structure and that its numbers hold together: a row per
// defense, rate and family; no more SYN-ACKs than SYNs offered; CPU not
// negative; the drop baseline answers nothing; the proxies answer most of
// a light flood; the ratios are computed from the same run.
func TestShort(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the benchmark floods a namespace lab for about 40 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := options{}.merge(shortOptions).withDefaults()
	t0 := time.Now()
	rep, err := run(ctx, o, testLog{t})
	if errors.Is(err, lab.ErrPermission) {
		t.Skipf("needs root to build network namespaces: %v", err)
	}
	if errors.Is(err, lab.ErrMissingTool) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: the tools must be installed)", err)
		}
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("short plan took %v", time.Since(t0).Round(time.Second))
	md := rep.markdown()
	out := filepath.Join(t.TempDir(), "SYNACK.md")
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", md)

	want := []string{lab.NameDrop, lab.NameSynproxy, bounce.Name, lab.NameNFQueue, lab.NameBPF}
	if got := len(rep.fixed); got != len(o.families)*len(o.rates) {
		t.Fatalf("%d fixed-rate runs, want %d", got, len(o.families)*len(o.rates))
	}
	for _, f := range rep.fixed {
		for i, name := range want {
			if i >= len(f.Rows) || f.Rows[i].Defense.Name != name {
				t.Fatalf("IPv%d %d pps: rows %v, want %v in that order", f.Family, f.Rate, names(f.Rows), want)
			}
		}
		for _, r := range f.Rows {
			checkRow(t, rep, r)
			if !r.Measured() {
				continue
			}
			switch r.Defense.Kind {
			case lab.DefenseDrop:
				if r.SynAcks != 0 {
					t.Errorf("IPv%d %d pps: the drop baseline answered %d SYNs, want none", f.Family, f.Rate, r.SynAcks)
				}
			case lab.DefenseSynproxy, lab.DefenseSynwall, lab.DefenseCustom:
				if float64(r.SynAcks) < 0.5*float64(r.Sent) {
					t.Errorf("IPv%d %d pps: %s answered %d of %d SYNs, want at least half", f.Family, f.Rate, r.Defense.Name, r.SynAcks, r.Sent)
				}
				if _, ok := f.extra(r); !ok {
					t.Errorf("IPv%d %d pps: %s has no CPU per SYN-ACK", f.Family, f.Rate, r.Defense.Name)
				}
				if _, ok := f.taskExtra(r); !ok {
					t.Errorf("IPv%d %d pps: %s has no task CPU per SYN-ACK", f.Family, f.Rate, r.Defense.Name)
				}
			}
			if r.Defense.Kind == lab.DefenseSynwall || r.Defense.Kind == lab.DefenseCustom {
				if _, ok := f.extraRatio(r); !ok {
					t.Errorf("IPv%d %d pps: %s has no ratio to SYNPROXY", f.Family, f.Rate, r.Defense.Name)
				}
				if _, ok := f.taskRatio(r); !ok {
					t.Errorf("IPv%d %d pps: %s has no task CPU ratio to SYNPROXY", f.Family, f.Rate, r.Defense.Name)
				}
			}
			// The generator's own runtime is in every row.
			if r.TaskCPU.Generators <= 0 {
				t.Errorf("IPv%d %d pps: %s: generator CPU %v, want > 0", f.Family, f.Rate, r.Defense.Name, r.TaskCPU.Generators)
			}
		}
	}
	// Not the bounce: it is no defense. The saturated run adds the stage
	// without limits.
	defs := []string{lab.NameSynproxy, lab.NameNFQueue, lab.NameBPF}
	for i, rows := range [][]lab.SynResult{rep.sat, rep.legit} {
		w := defs
		if i == 0 {
			w = append(defs[:3:3], nameNoLimits)
		}
		if got := names(rows); strings.Join(got, ",") != strings.Join(w, ",") {
			t.Errorf("rows %v, want %v", got, w)
		}
		for _, r := range rows {
			checkRow(t, rep, r)
		}
	}
	for _, r := range rep.legit {
		if r.Measured() && r.Load.Attempts != o.conns {
			t.Errorf("%s: %d legitimate connections, want %d", r.Defense.Name, r.Load.Attempts, o.conns)
		}
	}
	for _, s := range []string{"## Fixed offered rate", "## Saturated machine", "## Legitimate success", "Command: `cd bench && go run ./synack`", "Machine: "} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q", s)
		}
	}
	if got, want := strings.Count(md, "| 20k pps |"), len(o.families)*len(want); got != want {
		t.Errorf("report has %d fixed-rate table rows, want %d", got, want)
	}
}

// checkRow checks what holds for every row.
func checkRow(t *testing.T, rep *report, r lab.SynResult) {
	t.Helper()
	if !r.Measured() {
		if r.Defense.Kind != lab.DefenseSynwall || r.NotMeasured != lab.NotAvailable || rep.hasStage {
			t.Errorf("%s not measured: %q (binary has the stage: %v)", r.Defense.Name, r.NotMeasured, rep.hasStage)
		}
		return
	}
	if r.Sent <= 0 || r.Elapsed <= 0 || r.Window < r.Elapsed {
		t.Errorf("%s: sent %d in %v (window %v), want > 0 and a window around it", r.Defense.Name, r.Sent, r.Elapsed, r.Window)
	}
	// hping3 counts what it sent when it prints its statistics; the
	// SYNs of its last moment may be answered but not counted.
	if r.SynAcks > uint64(r.Sent) || float64(r.AllSynAcks) > float64(r.Sent)+1.001*float64(r.HpingSent)+10 || r.SynAcks > r.AllSynAcks {
		t.Errorf("%s: SYN-ACKs %d to spoofed sources, %d all, for %d + %d SYNs offered", r.Defense.Name, r.SynAcks, r.AllSynAcks, r.Sent, r.HpingSent)
	}
	if r.Busy < 0 || r.BusyShare() > 1.05 {
		t.Errorf("%s: busy %v = %.2f of the machine", r.Defense.Name, r.Busy, r.BusyShare())
	}
}

func names(rows []lab.SynResult) []string {
	var n []string
	for _, r := range rows {
		n = append(n, r.Defense.Name)
	}
	return n
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestMarkdown renders a report of made-up numbers: ratios come from the
// same run, a missing stage says so, the baseline has no figure.
func TestMarkdown(t *testing.T) {
	d := lab.StandardDefenses(false, "tc", false)
	row := func(i int, synacks uint64, busy time.Duration) lab.SynResult {
		return lab.SynResult{Defense: d[i], Sent: 100_000, SynAcks: synacks, AllSynAcks: synacks, Elapsed: 2 * time.Second,
			Busy: busy, Window: 2 * time.Second, CPUs: 2, BusyShares: []float64{float64(busy) / float64(4*time.Second)}}
	}
	// Baseline 0.2 CPU-s/s; SYNPROXY 0.4 more: 8 µs per SYN-ACK;
	// synwall 1.6 more: 32 µs, 4× SYNPROXY's.
	rep := &report{o: fullOptions, command: "go run ./synack", started: time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)}
	rep.fixed = []fixedRun{{Rate: 50_000, Family: 4, Rows: []lab.SynResult{
		row(0, 0, 400*time.Millisecond), row(1, 100_000, 1200*time.Millisecond), row(2, 100_000, 3600*time.Millisecond),
		{Defense: d[3], NotMeasured: lab.NotAvailable},
	}}}
	rep.sat = []lab.SynResult{row(1, 100_000, time.Second), row(2, 50_000, time.Second), {Defense: d[3], NotMeasured: lab.NotAvailable}}
	md := rep.markdown()
	for _, s := range []string{
		"| 50k pps | IPv4 | drop (baseline) | 50k | 0 | 10% (10) | (baseline) | — |",
		"| 50k pps | IPv4 | kernel SYNPROXY | 50k | 50k | 30% (30) | 8.00 µs | 1 |",
		"| 50k pps | IPv4 | synwall, NFQUEUE only | 50k | 50k | 90% (90) | 32.00 µs | 4.00 |",
		"| 50k pps | IPv4 | synwall + BPF SYN stage (`--syn-stage tc --syn-stage-if cli0,atk0`) | not available in this build |",
		"| synwall, NFQUEUE only | 50k + 0 | 25k | 25% | 0.50 |",
		"lists no --syn-stage",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
}
