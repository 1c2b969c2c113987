package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"
	"time"
)

// DemoConfig configures Demo. Zero fields take the defaults in brackets.
type DemoConfig struct {
	Synwall string // path of the synwall binary (required)
	Prefix  string // namespace prefix [sw<PID>-<n>]

	Flood       time.Duration // SYN flood per phase [10 s]
	Connections int           // legitimate connections per phase [200]
	Concurrency int           // at most this many at once [50]
	Timeout     time.Duration // per legitimate connection [3 s]

	// The unprotected server of the baseline: no SYN cookies, these
	// backlogs [64, 16].
	SynBacklog, ListenBacklog int

	// Synwall is started with these; Binary and StatsFile are filled in.
	Run SynwallConfig
}

func (c DemoConfig) withDefaults() DemoConfig {
	if c.Flood <= 0 {
		c.Flood = 10 * time.Second
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
	return c
}

// PhaseResult is one phase of the demo: the flood and the legitimate load
// that ran under it.
type PhaseResult struct {
	Flood FloodResult
	Load  LoadResult
}

// DemoResult is what Demo measured.
type DemoResult struct {
	Baseline, Protected PhaseResult
	Before, After       Stats // synwall's counters around the protected phase
	InvalidSent         int   // packets with invalid flag sets sent in the protected phase
}

// Demo builds a lab, floods the server's HTTP port with SYNs while a client
// makes short HTTP connections, first with the server unprotected (no SYN
// cookies, small backlogs) and then with synwall in the gateway, prints a
// summary to w and removes the lab (also on error or when ctx ends). It
// takes about 2×Flood + 10 s.
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
	if err := Require("ip", "iptables", "hping3", "timeout"); err != nil {
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
	fmt.Fprintf(w, "lab %s up: client %v → gateway → server %v, attacker %v\n", l.Prefix, ClientV4, target, AttackerV4)
	if err := l.WeakServer(cfg.SynBacklog, cfg.ListenBacklog); err != nil {
		return res, err
	}

	startServers := func() (*Servers, error) {
		s, err := l.StartServers(ServerConfig{Backlog: cfg.ListenBacklog})
		if err != nil {
			return nil, err
		}
		// The lab must work before anything is measured.
		r, err := l.Connect(ctx, Load{Addr: target, N: 5, Concurrency: 1, Timeout: 3 * time.Second})
		if err != nil {
			return nil, err
		}
		if r.OK != r.Attempts {
			return nil, fmt.Errorf("lab: demo: the client cannot reach the server before the flood: %v", r)
		}
		return s, nil
	}

	fmt.Fprintf(w, "\nA. no synwall; server without SYN cookies, SYN backlog %d, listen backlog %d\n", cfg.SynBacklog, cfg.ListenBacklog)
	srv, err := startServers()
	if err != nil {
		return res, err
	}
	res.Baseline, err = l.floodPhase(ctx, cfg, target)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return res, err
	}
	printPhase(w, res.Baseline)
	// The flood leaves the server's SYN queue full of half-open
	// connections for a minute; a new listener starts clean.
	srv.Close()

	fmt.Fprintf(w, "\nB. the same server and flood, synwall in the gateway\n")
	if _, err := startServers(); err != nil {
		return res, err
	}
	run := cfg.Run
	run.Binary = cfg.Synwall
	sw, err := l.StartSynwall(ctx, run)
	if err != nil {
		return res, err
	}
	if res.Before, err = sw.Stats(); err != nil {
		return res, err
	}
	res.Protected, err = l.floodPhase(ctx, cfg, target)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return res, fmt.Errorf("%w; synwall stderr:\n%s", err, sw.Stderr())
	}
	printPhase(w, res.Protected)
	for _, flags := range InvalidFlagSets {
		r, err := l.Flood(ctx, Flood{Target: ServerV4, Port: HTTPPort, Flags: flags, Count: 50, Interval: "u200", Duration: 5 * time.Second})
		if err != nil {
			return res, err
		}
		res.InvalidSent += r.Sent
	}
	time.Sleep(1500 * time.Millisecond) // the stats file is written every second
	if res.After, err = sw.Stats(); err != nil {
		return res, err
	}
	if err := sw.Stop(); err != nil {
		return res, err
	}
	fmt.Fprintln(w)
	printSummary(w, res)
	return res, nil
}

// InvalidFlagSets are the flag combinations a gateway must drop
// (RFC 9293 §3.10.7; see ARCHITECTURE.md): SYN+FIN, SYN+RST, FIN without
// ACK, no flags, FIN+PSH+URG.
var InvalidFlagSets = [][]string{{"-S", "-F"}, {"-S", "-R"}, {"-F"}, {}, {"-F", "-P", "-U"}}

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

func printPhase(w io.Writer, p PhaseResult) {
	fmt.Fprintf(w, "   flood:  %d SYNs in %v (%.0f/s)\n", p.Flood.Sent, p.Flood.Elapsed.Round(time.Millisecond), p.Flood.PPS())
	fmt.Fprintf(w, "   client: %v\n", p.Load)
}

func printSummary(w io.Writer, r DemoResult) {
	d := func(k string) string {
		return fmt.Sprint(r.After.Events[k] - min(r.Before.Events[k], r.After.Events[k]))
	}
	dropped := r.After.DropsTotal() - min(r.Before.DropsTotal(), r.After.DropsTotal())
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "\twithout synwall\twith synwall")
	fmt.Fprintf(tw, "SYN flood sent\t%d (%.0f/s)\t%d (%.0f/s)\n", r.Baseline.Flood.Sent, r.Baseline.Flood.PPS(), r.Protected.Flood.Sent, r.Protected.Flood.PPS())
	b, p := r.Baseline.Load, r.Protected.Load
	fmt.Fprintf(tw, "legitimate connections ok\t%d/%d (%.1f%%)\t%d/%d (%.1f%%)\n", b.OK, b.Attempts, 100*b.SuccessRate(), p.OK, p.Attempts, 100*p.SuccessRate())
	ms := func(v time.Duration) string {
		if v == 0 {
			return "-"
		}
		return Round(v).String()
	}
	fmt.Fprintf(tw, "connect p50\t%s\t%s\n", ms(b.ConnectP50), ms(p.ConnectP50))
	fmt.Fprintf(tw, "connect p99\t%s\t%s\n", ms(b.ConnectP99), ms(p.ConnectP99))
	fmt.Fprintf(tw, "request p99\t%s\t%s\n", ms(b.TotalP99), ms(p.TotalP99))
	fmt.Fprintf(tw, "SYNs answered by synwall\t-\t%s\n", d("syn_answered"))
	fmt.Fprintf(tw, "handshakes completed\t-\t%s\n", d("handshake"))
	fmt.Fprintf(tw, "flows translated\t-\t%s\n", d("translated"))
	fmt.Fprintf(tw, "SYNs over the per-source limit\t-\t%s\n", d("syn_limited"))
	fmt.Fprintf(tw, "invalid packets dropped\t-\t%d (of %d sent)\n", dropped, r.InvalidSent)
	qd := func(s Stats) uint64 { return s.Queue["queue_dropped"] + s.Queue["user_dropped"] }
	fmt.Fprintf(tw, "overflowed the kernel queue\t-\t%d\n", qd(r.After)-min(qd(r.Before), qd(r.After)))
	tw.Flush()
}
