package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/synwall/synwall/bench/internal/bounce"
	"github.com/synwall/synwall/bench/internal/host"
	"github.com/synwall/synwall/deploy/lab"
)

type options struct {
	rates       []int
	families    []int // 4, 6
	duration    time.Duration
	repeat      int
	satRate     int
	satDuration time.Duration
	legitRate   int
	legitDur    time.Duration
	conns       int
	stage       string
	nfqArgs     string // replaces the NFQUEUE row's extra synwall run arguments
	bpfArgs     string // replaces the BPF row's
	quiet       float64
	synwall     string
	out         string
	short       bool
}

// The full plan and the short one (TestShort, about 40 s of floods).
var (
	fullOptions = options{
		rates: []int{50_000, 150_000}, families: []int{4, 6}, duration: 5 * time.Second, repeat: 3,
		satRate: 500_000, satDuration: 8 * time.Second, legitRate: 100_000, legitDur: 10 * time.Second, conns: 200,
	}
	shortOptions = options{
		rates: []int{20_000}, families: []int{4, 6}, duration: 2 * time.Second, repeat: 1,
		satRate: 100_000, satDuration: 3 * time.Second, legitRate: 20_000, legitDur: 4 * time.Second, conns: 40,
	}
)

func main() {
	o := fullOptions
	var rates, families string
	flag.StringVar(&rates, "rates", "", "offered spoofed SYNs per second, comma-separated (default 50000,150000)")
	flag.StringVar(&families, "families", "", "address families, comma-separated: 4, 6 (default 4,6)")
	flag.DurationVar(&o.duration, "duration", 0, "length of each fixed-rate run (default 5s)")
	flag.IntVar(&o.repeat, "repeat", 0, "fixed-rate runs per defense and rate; the least busy counts (default 3)")
	flag.IntVar(&o.satRate, "sat-rate", 0, "rate of each of the two generators of the saturation run (default 500000)")
	flag.DurationVar(&o.satDuration, "sat-duration", 0, "length of the saturation run (default 8s)")
	flag.IntVar(&o.legitRate, "legit-rate", 0, "generator rate beside the two hping3 floods of the legitimate run (default 100000)")
	flag.DurationVar(&o.legitDur, "legit-duration", 0, "length of the legitimate run (default 10s)")
	flag.IntVar(&o.conns, "conns", 0, "legitimate connections of the legitimate run (default 200)")
	flag.StringVar(&o.stage, "stage", "tc", "--syn-stage of the BPF row")
	flag.StringVar(&o.nfqArgs, "nfq-args", "", "extra `ARGS` of synwall run for the NFQUEUE-only row, space-separated (default: --syn-stage off where the binary has it)")
	flag.StringVar(&o.bpfArgs, "bpf-args", "", "extra `ARGS` of synwall run for the BPF row, space-separated (default: --syn-stage STAGE)")
	flag.Float64Var(&o.quiet, "quiet", 0.15, "before each fixed-rate run, wait (up to 10 s) until the machine is less busy than this share (0: do not wait)")
	flag.StringVar(&o.synwall, "synwall", "", "synwall `BINARY` to measure (default: build ./cmd/synwall of the checkout)")
	flag.StringVar(&o.out, "out", "SYNACK.md", "write the markdown report to `FILE` (empty: only print it)")
	flag.BoolVar(&o.short, "short", false, "the short plan (about 40 s of floods), for a quick check")
	flag.Parse()
	if flag.NArg() > 0 {
		fatal(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	if o.short {
		o = o.merge(shortOptions)
	}
	var err error
	if rates != "" {
		if o.rates, err = parseInts(rates); err != nil {
			fatal(fmt.Errorf("-rates: %w", err))
		}
	}
	if families != "" {
		if o.families, err = parseInts(families); err != nil {
			fatal(fmt.Errorf("-families: %w", err))
		}
	}
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o, os.Stderr)
	if err != nil {
		fatal(err)
	}
	rep.command = host.CommandLine("./synack", flag.CommandLine)
	md := rep.markdown()
	fmt.Print(md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			fatal(err)
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", o.out)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "synack:", err)
	os.Exit(1)
}

func parseInts(s string) ([]int, error) {
	var v []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		v = append(v, n)
	}
	return v, nil
}

// merge takes the short plan's values for what the command line left at
// the full plan's zero values.
func (o options) merge(s options) options {
	o.rates, o.families = s.rates, s.families
	if o.duration == 0 {
		o.duration = s.duration
	}
	if o.repeat == 0 {
		o.repeat = s.repeat
	}
	if o.satRate == 0 {
		o.satRate = s.satRate
	}
	if o.satDuration == 0 {
		o.satDuration = s.satDuration
	}
	if o.legitRate == 0 {
		o.legitRate = s.legitRate
	}
	if o.legitDur == 0 {
		o.legitDur = s.legitDur
	}
	if o.conns == 0 {
		o.conns = s.conns
	}
	o.short = true
	return o
}

// withDefaults fills what is zero from the full plan.
func (o options) withDefaults() options {
	f := fullOptions
	if len(o.rates) == 0 {
		o.rates = f.rates
	}
	if len(o.families) == 0 {
		o.families = f.families
	}
	if o.duration == 0 {
		o.duration = f.duration
	}
	if o.repeat == 0 {
		o.repeat = f.repeat
	}
	if o.satRate == 0 {
		o.satRate = f.satRate
	}
	if o.satDuration == 0 {
		o.satDuration = f.satDuration
	}
	if o.legitRate == 0 {
		o.legitRate = f.legitRate
	}
	if o.legitDur == 0 {
		o.legitDur = f.legitDur
	}
	if o.conns == 0 {
		o.conns = f.conns
	}
	if o.stage == "" {
		o.stage = "tc"
	}
	return o
}

func (o options) validate() error {
	for _, f := range o.families {
		if f != 4 && f != 6 {
			return fmt.Errorf("family %d: want 4 or 6", f)
		}
	}
	if o.repeat < 1 || o.repeat > 10 {
		return fmt.Errorf("repeat %d not in [1, 10]", o.repeat)
	}
	if o.conns < 1 {
		return fmt.Errorf("conns %d < 1", o.conns)
	}
	// Rates and durations: the generator's bounds, checked by lab.SynLoad
	// before any flood.
	return nil
}

// target is the server's HTTP port in family f.
func target(f int) netip.AddrPort {
	if f == 6 {
		return netip.AddrPortFrom(lab.ServerV6, lab.HTTPPort)
	}
	return netip.AddrPortFrom(lab.ServerV4, lab.HTTPPort)
}

// fixedRun is one offered rate in one family: a row per defense, the
// drop baseline first.
type fixedRun struct {
	Rate, Family int
	Rows         []lab.SynResult
}

func (f fixedRun) find(name string) (lab.SynResult, bool) { return find(f.Rows, name) }

func find(rows []lab.SynResult, name string) (lab.SynResult, bool) {
	for _, r := range rows {
		if r.Defense.Name == name {
			return r, true
		}
	}
	return lab.SynResult{}, false
}

type report struct {
	o        options
	started  time.Time
	elapsed  time.Duration
	command  string
	commit   string
	hasStage bool
	fixed    []fixedRun
	sat      []lab.SynResult // IPv4, two generators + hping3
	legit    []lab.SynResult // IPv4, generator + two hping3, clients
}

// nameNoLimits is the saturated run's row of the BPF stage without limits.
const nameNoLimits = lab.NameBPF + ", limits off"

// noLimitsPolicy is the embedded default policy without its global
// SYN-ACK limit and per-source SYN limit.
const noLimitsPolicy = `version: 1
limits: {synack_rate: none}
services:
  - name: lab
    addresses: [198.18.3.0/24, "2001:db8:3::/64"]
    ports: ["1-65535"]
    mode: proxy
    advertise: {wscale: 10}
    limits: {syn_per_source: none}
`

// minAnswered is the share of its offered SYNs a defense must answer for
// a CPU-per-SYN-ACK figure.
const minAnswered = 0.01

func run(ctx context.Context, o options, log io.Writer) (rep *report, err error) {
	if err := lab.Require("ip", "iptables", "ip6tables", "hping3", "timeout"); err != nil {
		return nil, err
	}
	rep = &report{o: o, started: time.Now(), commit: host.GitCommit()}
	dir, err := os.MkdirTemp("", "synwall-synack-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	gen := filepath.Join(dir, "synflood")
	if err := host.BuildSynflood(ctx, gen, log); err != nil {
		return nil, err
	}
	bin := o.synwall
	if bin == "" {
		bin = filepath.Join(dir, "synwall")
		if err := host.BuildSynwall(ctx, bin, log); err != nil {
			return nil, err
		}
	}
	if rep.hasStage, err = lab.SynwallHasFlag(ctx, bin, lab.SynStageFlag); err != nil {
		return nil, err
	}
	l, err := lab.Up(ctx, lab.Config{})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "lab %s up\n", l.Prefix)
	defer func() {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, derr)
		}
		fmt.Fprintf(log, "lab %s removed\n", l.Prefix)
	}()
	srv, err := l.StartServers(lab.ServerConfig{})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	base := lab.SynwallConfig{Binary: bin}
	defenses := lab.StandardDefenses(false, o.stage, rep.hasStage)
	for i := range defenses {
		switch {
		case defenses[i].Name == lab.NameNFQueue && o.nfqArgs != "":
			defenses[i].SynwallArgs = strings.Fields(o.nfqArgs)
		case defenses[i].Name == lab.NameBPF && o.bpfArgs != "":
			defenses[i].SynwallArgs = strings.Fields(o.bpfArgs)
		}
	}

	// The fixed-rate runs also measure the bare bounce (the floor of any
	// kernel SYN stage on this path), after SYNPROXY.
	fixedDefenses := append(append(append([]lab.Defense(nil), defenses[:2]...), bounce.Defense()), defenses[2:]...)
	for _, fam := range o.families {
		for _, rate := range o.rates {
			f := fixedRun{Rate: rate, Family: fam}
			load := lab.SynLoad{Target: target(fam), Generator: []string{gen}, Rate: rate, Duration: o.duration, Repeat: o.repeat,
				QuietBelow: o.quiet, QuietWait: 10 * time.Second}
			// The baseline runs first and again last, and the less busy
			// of the two counts: a burst of other work during one of them
			// would make every defense look cheaper.
			for _, d := range append(fixedDefenses, fixedDefenses[0]) {
				rs, err := l.MeasureSyn(ctx, d, base, load)
				if err != nil {
					return nil, fmt.Errorf("IPv%d %d pps: %w", fam, rate, err)
				}
				logRow(log, fmt.Sprintf("IPv%d %d pps", fam, rate), rs[0])
				if len(f.Rows) == len(fixedDefenses) {
					f.Rows[0] = lab.LessBusy(f.Rows[0], rs[0])
					break
				}
				f.Rows = append(f.Rows, rs[0])
			}
			rep.fixed = append(rep.fixed, f)
		}
	}

	sat := lab.SynLoad{Target: target(4), Generator: []string{gen}, Rate: o.satRate, Generators: 2, Hpings: 1, Duration: o.satDuration}
	legit := lab.SynLoad{Target: target(4), Generator: []string{gen}, Rate: o.legitRate, Hpings: 2, Duration: o.legitDur,
		Connections: o.conns, Concurrency: 10, Timeout: 3 * time.Second}
	for _, d := range defenses[1:] { // no baseline: these are not CPU figures
		rs, err := l.MeasureSyn(ctx, d, base, sat, legit)
		if err != nil {
			return nil, err
		}
		logRow(log, "saturated", rs[0])
		logRow(log, "legitimate", rs[1])
		rep.sat = append(rep.sat, rs[0])
		rep.legit = append(rep.legit, rs[1])
	}
	// The default policy caps SYN-ACKs at 200k/s and hping3's one source at
	// 1000/s: the saturated run measures the stage's capacity once more
	// with both limits off, as SYNPROXY has none.
	if d := defenses[len(defenses)-1]; d.Name == lab.NameBPF {
		pol := filepath.Join(dir, "nolimits.yaml")
		if err := os.WriteFile(pol, []byte(noLimitsPolicy), 0o644); err != nil {
			return nil, err
		}
		d.Name = nameNoLimits
		d.SynwallArgs = append([]string{"--policy", pol}, d.SynwallArgs...)
		rs, err := l.MeasureSyn(ctx, d, base, sat)
		if err != nil {
			return nil, err
		}
		logRow(log, "saturated", rs[0])
		rep.sat = append(rep.sat, rs[0])
	}
	rep.elapsed = time.Since(rep.started)
	return rep, nil
}

func logRow(w io.Writer, what string, r lab.SynResult) {
	if !r.Measured() {
		fmt.Fprintf(w, "%s: %s: %s\n", what, r.Defense.Name, r.NotMeasured)
		return
	}
	fmt.Fprintf(w, "%s: %s: sent %d+%d in %v, SYN-ACKs %d spoofed / %d all (%.0f/s), busy %.0f%%, tasks %v",
		what, r.Defense.Name, r.Sent, r.HpingSent, r.Elapsed.Round(time.Millisecond), r.SynAcks, r.AllSynAcks, r.AllSynAckPPS(), 100*r.BusyShare(), r.TaskCPU.Total().Round(time.Millisecond))
	if r.Load.Attempts > 0 {
		fmt.Fprintf(w, ", legitimate %s", r.Load)
	}
	fmt.Fprintln(w)
}
