package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/synwall/synwall/bench/internal/host"
	"github.com/synwall/synwall/deploy/lab"
)

// The weak server behind every defense: the values of `synwall-lab demo` and
// bench/compare.
const (
	synBacklog    = 64
	listenBacklog = 16
)

// statsSettle is how long to wait after a flood for synwall's stats file,
// written every second, to include it.
const statsSettle = 1500 * time.Millisecond

// metricsAddr is where synwall serves its metrics, on the gateway
// namespace's own loopback.
const metricsAddr = "127.0.0.1:9474"

type options struct {
	short    bool
	rates    []int         // sweep flood rates, pps
	point    time.Duration // flood time of a sweep point
	conns    int           // legitimate connections per point
	stages   []uint64      // distinct sources per memory stage
	memRate  int           // flood rate of the memory stages, pps
	out      string        // directory of the results
	synwall  string        // binary; empty builds it
	defenses []string      // which defenses to sweep
}

// Default plans.
var (
	fullRates   = []int{10_000, 20_000, 50_000, 100_000, 150_000, 200_000, 300_000}
	shortRates  = []int{10_000, 50_000}
	fullStages  = []uint64{1_000, 10_000, 100_000, 1_000_000}
	shortStages = []uint64{1_000, 100_000}
)

const (
	defSynproxy = "netfilter SYNPROXY"
	defSynwall  = "synwall"
)

func (o *options) defaults() {
	if o.rates == nil {
		o.rates = fullRates
		if o.short {
			o.rates = shortRates
		}
	}
	if o.stages == nil {
		o.stages = fullStages
		if o.short {
			o.stages = shortStages
		}
	}
	if o.point <= 0 {
		o.point = 8 * time.Second
		if o.short {
			o.point = 3 * time.Second
		}
	}
	if o.conns <= 0 {
		o.conns = 150
		if o.short {
			o.conns = 50
		}
	}
	if o.memRate <= 0 {
		// Both plans at a rate synwall takes without queue drops here,
		// so that every distinct source reaches it.
		o.memRate = 50_000
	}
	if o.defenses == nil {
		o.defenses = []string{defSynproxy, defSynwall}
	}
}

func (o options) validate() error {
	for _, r := range o.rates {
		if r < 1 || r > 1_000_000 {
			return fmt.Errorf("rate %d not in [1, 1000000]", r)
		}
	}
	for _, n := range o.stages {
		if n < 1 || n > 10_000_000 {
			return fmt.Errorf("stage of %d sources not in [1, 10^7]", n)
		}
		// A stage sends each source once: it must fit in the
		// generator's time bound at memRate.
		if d := float64(n) / float64(o.memRate); d > 50 {
			return fmt.Errorf("stage of %d sources takes %.0f s at %d pps, more than 50 s", n, d, o.memRate)
		}
	}
	if o.point < time.Second || o.point > 30*time.Second {
		return fmt.Errorf("point time %v not in [1s, 30s]", o.point)
	}
	for _, d := range o.defenses {
		if d != defSynproxy && d != defSynwall {
			return fmt.Errorf("unknown defense %q", d)
		}
	}
	return nil
}

func main() {
	var o options
	var rates, stages, defs string
	flag.BoolVar(&o.short, "short", false, "the CI plan: two sweep points of 3 s, two memory stages")
	flag.StringVar(&rates, "rates", "", "comma-separated flood rates of the sweep, `pps` (default 10000,...,300000; -short 10000,50000)")
	flag.StringVar(&stages, "stages", "", "comma-separated distinct sources of the memory stages (default 1000,...,1000000; -short 1000,100000)")
	flag.DurationVar(&o.point, "point", 0, "flood time of each sweep point (default 8s, -short 3s)")
	flag.IntVar(&o.conns, "conns", 0, "legitimate connections per sweep point (default 150, -short 50)")
	flag.IntVar(&o.memRate, "mem-rate", 0, "flood rate of the memory stages, `pps` (default 50000)")
	flag.StringVar(&defs, "defenses", "", "comma-separated defenses to sweep (default both: \"netfilter SYNPROXY,synwall\")")
	flag.StringVar(&o.out, "out", ".", "write the CSVs, plots and LOADTEST.md into `DIR` (run from bench/, the default is bench/)")
	flag.StringVar(&o.synwall, "synwall", "", "synwall `BINARY`; empty builds the repository's ./cmd/synwall")
	flag.Parse()
	var err error
	if o.rates, err = parseList(rates, strconv.Atoi); err != nil {
		fail(2, fmt.Errorf("-rates: %w", err))
	}
	if o.stages, err = parseList(stages, func(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }); err != nil {
		fail(2, fmt.Errorf("-stages: %w", err))
	}
	if defs != "" {
		o.defenses = strings.Split(defs, ",")
	}
	o.defaults()
	if err := o.validate(); err != nil {
		fail(2, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o, os.Stderr)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "loadtest: interrupted; lab removed, no results written")
			os.Exit(130)
		}
		if errors.Is(err, lab.ErrPermission) || errors.Is(err, fs.ErrPermission) {
			fail(77, err)
		}
		fail(1, err)
	}
	rep.command = host.CommandLine("./loadtest", flag.CommandLine)
	if err := rep.write(o.out); err != nil {
		fail(1, err)
	}
	fmt.Print(rep.markdown())
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "loadtest:", err)
	os.Exit(code)
}

// parseList parses a comma-separated list; empty gives nil.
func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	if s == "" {
		return nil, nil
	}
	var out []T
	for _, f := range strings.Split(s, ",") {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// env is what every phase shares.
type env struct {
	o        options
	l        *lab.Lab
	synwall  string // binary
	synflood string // binary
	log      io.Writer
}

// run builds the binaries and a lab, runs the sweep and the memory stages,
// and returns their results. The lab is gone when it returns.
func run(ctx context.Context, o options, log io.Writer) (rep *report, err error) {
	o.defaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := lab.Require("ip", "iptables", "curl"); err != nil {
		return nil, err
	}
	rep = newReport(o)
	dir, err := os.MkdirTemp("", "synwall-loadtest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	e := &env{o: o, synflood: filepath.Join(dir, "synflood"), synwall: o.synwall, log: log}
	if err := host.BuildSynflood(ctx, e.synflood, log); err != nil {
		return nil, err
	}
	if e.synwall == "" {
		e.synwall = filepath.Join(dir, "synwall")
		if err := host.BuildSynwall(ctx, e.synwall, log); err != nil {
			return nil, err
		}
	}

	l, err := lab.Up(ctx, lab.Config{})
	if err != nil {
		return nil, err
	}
	e.l = l
	fmt.Fprintf(log, "lab %s up; load average %s\n", l.Prefix, loadAvg())
	defer func() {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, derr)
		}
		fmt.Fprintf(log, "lab %s removed\n", l.Prefix)
	}()
	// Count every SYN-ACK that reaches the attacker: a rule without a
	// target only counts. It goes before the lab's rule that drops them.
	if _, err := l.Exec(ctx, l.Attacker, "iptables", "-w", "10", "-t", "raw", "-I", "PREROUTING", "1", "-p", "tcp",
		"--tcp-flags", "SYN,ACK", "SYN,ACK", "-m", "comment", "--comment", counterComment); err != nil {
		return nil, err
	}
	if err := l.WeakServer(synBacklog, listenBacklog); err != nil {
		return nil, err
	}
	srv, err := l.StartServers(lab.ServerConfig{Backlog: listenBacklog})
	if err != nil {
		return nil, err
	}
	defer srv.Close()

	for _, d := range o.defenses {
		pts, lines, err := sweep(ctx, e, d)
		rep.points = append(rep.points, pts...)
		if lines != nil {
			rep.synproxyRules = lines
		}
		if err != nil {
			return rep, fmt.Errorf("sweep %s: %w", d, err)
		}
	}
	if len(o.stages) > 0 {
		rep.memory, err = memory(ctx, e)
		if err != nil {
			return rep, fmt.Errorf("memory: %w", err)
		}
	}
	rep.loadEnd = loadAvg()
	return rep, nil
}

func loadAvg() string {
	f := strings.Fields(host.ReadTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
