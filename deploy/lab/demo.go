package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"
)

// DemoConfig configures Demo. Zero fields take the defaults in brackets.
type DemoConfig struct {
	Synwall string // path of the synwall binary (required)
	// Generator is the command of the spoofed-SYN generator, run in the
	// attacker namespace with its flags appended (required):
	// `synwall-lab synflood`.
	Generator []string
	Prefix    string // namespace prefix [sw<PID>-<n>]

	Rate    int           // the generator's spoofed SYNs per second [50000]
	Measure time.Duration // the generator alone, per defense, for the CPU [3 s]
	Repeat  int           // generator-only runs per defense; the least busy counts [2]
	Flood   time.Duration // generator and hping3 --flood, per defense, with the client [8 s]

	Connections int           // legitimate connections per defense [200]
	Concurrency int           // at most this many at once [50]
	Timeout     time.Duration // per legitimate connection [3 s]

	// The server behind every defense: no SYN cookies, these backlogs
	// [64, 16].
	SynBacklog, ListenBacklog int

	// Stage is --syn-stage of the BPF row [tc: the lab's veths].
	Stage string

	// Synwall is started with these; Binary, StatsFile and the rows'
	// --syn-stage are filled in.
	Run SynwallConfig
}

func (c DemoConfig) withDefaults() DemoConfig {
	if c.Rate <= 0 {
		c.Rate = 50_000
	}
	if c.Measure <= 0 {
		c.Measure = 3 * time.Second
	}
	if c.Repeat <= 0 {
		c.Repeat = 2
	}
	if c.Flood <= 0 {
		c.Flood = 8 * time.Second
	}
	if c.Connections <= 0 {
		c.Connections = 200
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 50
	}
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Second
	}
	if c.SynBacklog <= 0 {
		c.SynBacklog = 64
	}
	if c.ListenBacklog <= 0 {
		c.ListenBacklog = 16
	}
	if c.Stage == "" {
		c.Stage = "tc"
	}
	return c
}

// DemoRow is one defense of the demo.
type DemoRow struct {
	Defense Defense
	// CPU is the generator alone; Legit the generator, hping3 and the
	// client (the baseline has no Legit run).
	CPU, Legit SynResult
	// Extra is CPU's whole-machine CPU time per SYN-ACK above the
	// baseline's; HasExtra is false where the row answered under 1 % of
	// what it was offered, or is the baseline, or was not measured.
	Extra    time.Duration
	HasExtra bool
	// TaskExtra is the same from the flood's tasks' exact CPU time
	// (TaskCPU, ExtraTaskCPUPerSynAck), which other work on the machine
	// hardly moves.
	TaskExtra    time.Duration
	HasTaskExtra bool
}

// DemoResult is what Demo measured: the drop baseline first, then no
// defense, kernel SYNPROXY, synwall on NFQUEUE alone and synwall with the
// BPF SYN stage.
type DemoResult struct {
	Rows []DemoRow
}

// Row returns the row of the defense with this name.
func (r DemoResult) Row(name string) (DemoRow, bool) {
	for _, x := range r.Rows {
		if x.Defense.Name == name {
			return x, true
		}
	}
	return DemoRow{}, false
}

// minAnswered is the share of the offered SYNs a defense must answer for
// its CPU per SYN-ACK to mean anything.
const minAnswered = 0.01

// Demo builds a lab and puts each defense in turn in the gateway in front
// of a server without SYN cookies: nothing but a rule that drops the flood
// (the baseline), no defense, kernel SYNPROXY, synwall on NFQUEUE alone and
// synwall with its BPF SYN stage. For each it floods the server's HTTP
// port with spoofed SYNs from random sources (the generator) and measures
// the SYN-ACKs that reach the attacker and the machine's CPU (Repeat
// times; the least busy run counts, as other work only adds), then adds
// hping3 --flood while the client makes short HTTP connections. It prints
// CPU per SYN-ACK above the baseline and the legitimate success of each,
// and removes the lab (also on error or when ctx ends). It takes about
// 6×Repeat×Measure + 4×Flood + 20 s (the baseline runs first and last).
func Demo(ctx context.Context, cfg DemoConfig, w io.Writer) (err error) {
	_, err = RunDemo(ctx, cfg, w)
	return err
}

// RunDemo is Demo that also returns the numbers.
func RunDemo(ctx context.Context, cfg DemoConfig, w io.Writer) (res DemoResult, err error) {
	cfg = cfg.withDefaults()
	if cfg.Synwall == "" {
		return res, errors.New("lab: demo: no synwall binary")
	}
	if len(cfg.Generator) == 0 {
		return res, errors.New("lab: demo: no generator command")
	}
	if err := Require("ip", "iptables", "ip6tables", "hping3", "timeout"); err != nil {
		return res, err
	}
	l, err := Up(ctx, Config{Prefix: cfg.Prefix})
	if err != nil {
		return res, err
	}
	defer func() {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, derr)
		}
		fmt.Fprintf(w, "lab %s removed\n", l.Prefix)
	}()
	target := netip.AddrPortFrom(ServerV4, HTTPPort)
	fmt.Fprintf(w, "lab %s up: client %v → gateway → server %v, attacker %v (spoofs %v)\n", l.Prefix, ClientV4, target, AttackerV4, SpoofPrefix)
	if err := l.WeakServer(cfg.SynBacklog, cfg.ListenBacklog); err != nil {
		return res, err
	}
	hasStage, err := SynwallHasFlag(ctx, cfg.Synwall, SynStageFlag)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(w, `Server: no SYN cookies, SYN backlog %d, listen backlog %d. Each defense in turn in the gateway:
  1. spoofed SYNs from random sources (%s) at %d/s for %v, %d times:
     SYN-ACKs to the spoofed sources counted at the attacker, whole-machine CPU from /proc/stat (the
     least busy run counts: the machine is shared); the cost per SYN-ACK is the CPU above what the
     drop baseline spent for as many SYNs
  2. the same plus hping3 -S --flood for %v, while the client makes %d HTTP connections
`, cfg.SynBacklog, cfg.ListenBacklog, strings.Join(cfg.Generator, " "), cfg.Rate, cfg.Measure, cfg.Repeat, cfg.Flood, cfg.Connections)

	var srv *Servers
	defer func() {
		if srv != nil {
			srv.Close()
		}
	}()
	// A flood leaves the server's SYN queue full of half-open connections,
	// whose SYN-ACKs it sends again for a minute: every run gets a new
	// listener, closed when the defense is done.
	fresh := func() error {
		if srv != nil {
			srv.Close()
		}
		var err error
		srv, err = l.StartServers(ServerConfig{Backlog: cfg.ListenBacklog})
		return err
	}
	measure := SynLoad{Target: target, Generator: cfg.Generator, Rate: cfg.Rate, Duration: cfg.Measure, Repeat: cfg.Repeat, Prepare: fresh,
		QuietBelow: 0.2, QuietWait: time.Second}
	legit := measure
	legit.Duration, legit.Hpings, legit.Repeat, legit.QuietBelow = cfg.Flood, 1, 1, 0
	legit.Connections, legit.Concurrency, legit.Timeout = cfg.Connections, cfg.Concurrency, cfg.Timeout
	base := cfg.Run
	base.Binary = cfg.Synwall
	for _, d := range StandardDefenses(true, cfg.Stage, hasStage) {
		loads := []SynLoad{measure}
		if d.Kind != DefenseDrop {
			loads = append(loads, legit)
		}
		if d.Name == NameNFQueue {
			loads[1].InvalidSets = len(InvalidFlagSets)
		}
		fmt.Fprintf(w, "\n== %s\n", d.Name)
		rs, err := l.MeasureSyn(ctx, d, base, loads...)
		if srv != nil {
			srv.Close()
			srv = nil
		}
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return res, err
		}
		row := DemoRow{Defense: d, CPU: rs[0]}
		if len(rs) > 1 {
			row.Legit = rs[1]
		}
		res.Rows = append(res.Rows, row)
		printDemoRow(w, row)
	}
	// The baseline again: the less busy of its two turns counts, so that a
	// burst of other work during one of them does not make every defense
	// look cheaper.
	fmt.Fprintf(w, "\n== %s, again\n", NameDrop)
	rs, err := l.MeasureSyn(ctx, res.Rows[0].Defense, base, measure)
	if srv != nil {
		srv.Close()
		srv = nil
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return res, err
	}
	printDemoRow(w, DemoRow{Defense: res.Rows[0].Defense, CPU: rs[0]})
	res.Rows[0].CPU = LessBusy(res.Rows[0].CPU, rs[0])
	for i := range res.Rows[1:] {
		r := &res.Rows[i+1]
		r.Extra, r.HasExtra = ExtraCPUPerSynAck(r.CPU, res.Rows[0].CPU, minAnswered)
		r.TaskExtra, r.HasTaskExtra = ExtraTaskCPUPerSynAck(r.CPU, res.Rows[0].CPU, minAnswered)
	}
	fmt.Fprintln(w)
	printDemoSummary(w, res)
	return res, nil
}

func printDemoRow(w io.Writer, r DemoRow) {
	if !r.CPU.Measured() {
		fmt.Fprintf(w, "   %s\n", r.CPU.NotMeasured)
		return
	}
	c := r.CPU
	var runs []string
	for _, b := range c.BusyShares {
		runs = append(runs, fmt.Sprintf("%.0f%%", 100*b))
	}
	fmt.Fprintf(w, "   generator: %d SYNs in %v (%.0f/s); SYN-ACKs to them %d (%.0f/s); machine busy %.0f%% (runs %s)\n",
		c.Sent, c.Elapsed.Round(time.Millisecond), c.OfferedPPS(), c.SynAcks, c.SynAckPPS(), 100*c.BusyShare(), strings.Join(runs, ", "))
	if g := r.Legit; g.Defense.Kind != 0 {
		fmt.Fprintf(w, "   with hping3: %d + %d SYNs in %v; SYN-ACKs at the attacker %d (%.0f/s)\n   client: %v\n",
			g.Sent, g.HpingSent, g.Elapsed.Round(time.Millisecond), g.AllSynAcks, g.AllSynAckPPS(), g.Load)
	}
}

func printDemoSummary(w io.Writer, r DemoResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "defense\tSYN-ACKs/s\tmachine busy\tCPU per SYN-ACK above baseline: machine\ttasks\tlegitimate ok (flood + hping3)\tconnect p99")
	for _, x := range r.Rows {
		if !x.CPU.Measured() {
			fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t\n", x.Defense.Name, x.CPU.NotMeasured)
			continue
		}
		per, task := "-", "-"
		switch {
		case x.Defense.Kind == DefenseDrop:
			per, task = "(baseline)", "(baseline)"
		case x.HasExtra:
			per = fmt.Sprintf("%.2f µs", float64(x.Extra)/float64(time.Microsecond))
			if x.HasTaskExtra {
				task = fmt.Sprintf("%.2f µs", float64(x.TaskExtra)/float64(time.Microsecond))
			}
		default:
			per = fmt.Sprintf("- (answers %.1f%%)", 100*float64(x.CPU.SynAcks)/max(1, float64(x.CPU.Sent)))
		}
		ok, p99 := "-", "-"
		if l := x.Legit.Load; l.Attempts > 0 {
			ok = fmt.Sprintf("%d/%d (%.1f%%)", l.OK, l.Attempts, 100*l.SuccessRate())
			if l.ConnectP99 > 0 {
				p99 = Round(l.ConnectP99).String()
			}
		}
		fmt.Fprintf(tw, "%s\t%.0f of %.0f\t%.0f%%\t%s\t%s\t%s\t%s\n", x.Defense.Name, x.CPU.SynAckPPS(), x.CPU.OfferedPPS(), 100*x.CPU.BusyShare(), per, task, ok, p99)
	}
	tw.Flush()
	if x, ok := r.Row(NameNFQueue); ok && x.Legit.Measured() {
		g := x.Legit
		fmt.Fprintf(w, "\n%s under generator + hping3: SYNs answered by synwall %d, handshakes completed %d, SYNs over the per-source limit %d, invalid packets dropped %d (of %d sent)\n",
			NameNFQueue, g.Delta("syn_answered"), g.Delta("handshake"), g.Delta("syn_limited"), g.Dropped(), g.InvalidSent)
	}
}

// InvalidFlagSets are the flag combinations a gateway must drop
// (RFC 9293 §3.10.7; see ARCHITECTURE.md): SYN+FIN, SYN+RST, FIN without
// ACK, no flags, FIN+PSH+URG.
var InvalidFlagSets = [][]string{{"-S", "-F"}, {"-S", "-R"}, {"-F"}, {}, {"-F", "-P", "-U"}}

// PhaseResult is one hping3 flood phase (TestFloodLegitimateLoad): the flood and the legitimate load
// that ran under it.
type PhaseResult struct {
	Flood FloodResult
	Load  LoadResult
}

// floodPhase floods target with SYNs for cfg.Flood and runs the legitimate
// load under it.
func (l *Lab) floodPhase(ctx context.Context, cfg DemoConfig, target netip.AddrPort) (PhaseResult, error) {
	var pr PhaseResult
	fctx, stopFlood := context.WithCancel(ctx)
	defer stopFlood()
	type fres struct {
		r   FloodResult
		err error
	}
	fc := make(chan fres, 1)
	go func() {
		r, err := l.Flood(fctx, Flood{Target: target.Addr(), Port: target.Port(), Flags: []string{"-S"}, Duration: cfg.Flood})
		fc <- fres{r, err}
	}()
	// Let the flood fill the queues, then start the clients spread over
	// the rest of it; the flood runs its full length either way.
	warm := min(time.Second, cfg.Flood/5)
	spread := max(cfg.Flood-warm-min(time.Second, cfg.Flood/5), 0)
	select {
	case <-time.After(warm):
	case f := <-fc:
		return pr, fmt.Errorf("lab: flood ended early: %v: %s", f.err, f.r.Output)
	case <-ctx.Done():
		return pr, ctx.Err()
	}
	lctx, cancel := context.WithTimeout(ctx, cfg.Flood+2*cfg.Timeout)
	var err error
	pr.Load, err = l.Connect(lctx, Load{Addr: target, N: cfg.Connections, Concurrency: cfg.Concurrency, Timeout: cfg.Timeout, Spread: spread})
	cancel()
	var f fres
	select {
	case f = <-fc:
	case <-ctx.Done():
		stopFlood()
		f = <-fc
	}
	pr.Flood = f.r
	if err != nil {
		return pr, err
	}
	if f.err != nil {
		return pr, f.err
	}
	return pr, nil
}
