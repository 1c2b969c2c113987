package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/synwall/synwall/bench/internal/host"
	"github.com/synwall/synwall/deploy/lab"
)

// stage is synwall's memory after a flood of Sources distinct sources
// (0: before any flood).
type stage struct {
	Sources uint64
	Sent    int
	Elapsed time.Duration
	// SYNs synwall took from the queue during the stage: answered with a
	// SYN-ACK or refused by a rate limit; and the kernel queue's drops.
	Answered, Limited, Drops uint64
	RSSkB, HWMkB             uint64
	HeapAlloc, HeapSys       uint64 // bytes, from the Go runtime's metrics
}

// memory starts a fresh synwall and floods it from a growing number of
// distinct sources, reading its memory after each stage.
func memory(ctx context.Context, e *env) (stages []stage, err error) {
	sw, err := e.l.StartSynwall(ctx, lab.SynwallConfig{Binary: e.synwall, Args: []string{"--metrics-addr", metricsAddr}})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, sw.Stop()) }()
	read := func(s *stage) error {
		var err error
		if s.RSSkB, err = host.ProcStatusKB(sw.PID(), "VmRSS"); err != nil {
			return err
		}
		if s.HWMkB, err = host.ProcStatusKB(sw.PID(), "VmHWM"); err != nil {
			return err
		}
		m, err := scrape(ctx, e.l)
		if err != nil {
			return err
		}
		s.HeapAlloc, s.HeapSys = uint64(m["go_memstats_heap_alloc_bytes"]), uint64(m["go_memstats_heap_sys_bytes"])
		return nil
	}
	base := stage{}
	if err := read(&base); err != nil {
		return nil, err
	}
	stages = append(stages, base)
	fmt.Fprintf(e.log, "== memory: before any flood RSS %d kB, heap %d kB\n", base.RSSkB, base.HeapAlloc>>10)
	for _, n := range e.o.stages {
		s := stage{Sources: n}
		st0, err := sw.Stats()
		if err != nil {
			return stages, err
		}
		// Each source once: n packets at memRate, with twice the time
		// and two seconds for a busy machine (at most the generator's
		// 60 s); the count ends the stage.
		d := min(2*time.Duration(math.Ceil(float64(n)/float64(e.o.memRate)))*time.Second+2*time.Second, 60*time.Second)
		t0 := time.Now()
		if s.Sent, err = flood(ctx, e, d, "-rate", strconv.Itoa(e.o.memRate), "-duration", d.String(),
			"-count", strconv.FormatUint(n, 10), "-distinct", strconv.FormatUint(n, 10)); err != nil {
			return stages, err
		}
		s.Elapsed = time.Since(t0)
		if err := host.Sleep(ctx, statsSettle); err != nil {
			return stages, err
		}
		st1, err := sw.Stats()
		if err != nil {
			return stages, err
		}
		diff := func(m1, m0 map[string]uint64, k string) uint64 { return m1[k] - min(m0[k], m1[k]) }
		s.Answered = diff(st1.Events, st0.Events, "syn_answered")
		s.Limited = diff(st1.Events, st0.Events, "syn_limited")
		s.Drops = diff(st1.Queue, st0.Queue, "queue_dropped") + diff(st1.Queue, st0.Queue, "user_dropped")
		if err := read(&s); err != nil {
			return stages, err
		}
		fmt.Fprintf(e.log, "== memory: %d sources: sent %d in %v, answered %d, limited %d, drops %d; RSS %d kB (peak %d), heap %d kB\n",
			n, s.Sent, s.Elapsed.Round(time.Millisecond), s.Answered, s.Limited, s.Drops, s.RSSkB, s.HWMkB, s.HeapAlloc>>10)
		stages = append(stages, s)
	}
	return stages, nil
}

// scrape reads synwall's metrics from inside the gateway namespace.
func scrape(ctx context.Context, l *lab.Lab) (map[string]float64, error) {
	out, err := l.Exec(ctx, l.Gateway, "curl", "-sS", "--max-time", "5", "http://"+metricsAddr+"/metrics")
	if err != nil {
		return nil, err
	}
	return parseMetrics(out)
}

// parseMetrics reads the samples without labels of the Prometheus text
// format; it fails when the Go runtime's heap gauges are missing.
func parseMetrics(text string) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || strings.ContainsRune(f[0], '{') {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		m[f[0]] = v
	}
	for _, k := range []string{"go_memstats_heap_alloc_bytes", "go_memstats_heap_sys_bytes"} {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("metrics: no %s", k)
		}
	}
	return m, nil
}
