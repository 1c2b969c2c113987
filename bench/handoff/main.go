// Command handoff measures established-flow throughput through synwall
// against kernel SYNPROXY in one run: one iperf3 stream client → server
// through the gateway of a namespace lab (deploy/lab), quiet and while one
// bounded `hping3 -S --flood` runs from the attacker namespace, for four
// set-ups in turn:
//
//   - kernel forwarding: the gateway forwards, nothing else (the ceiling);
//
//   - kernel SYNPROXY: the gateway's SYNPROXY target for the server's HTTP
//     and iperf3 ports, as its documentation sets it up (raw PREROUTING
//     `CT --notrack` for SYNs, FORWARD `SYNPROXY` for INVALID and
//     UNTRACKED, `DROP` for INVALID, nf_conntrack_tcp_loose=0), and for
//     the port the flood goes to (8080, guarded, nothing listens: the
//     defenses answer the flood themselves, and without one the server
//     answers with RSTs and keeps no half-open connections);
//
//   - synwall, conntrack hand-off: `synwall run` on handoff-policy.yaml
//     (the server's options learned by advertise.discover, no SYN rate
//     limits, so that it answers the flood as SYNPROXY does): established
//     flows are carried by the kernel;
//
//   - synwall, user space: the same with --conntrack=false: every segment
//     crosses NFQUEUE.
//
//     cd bench && go run ./handoff [-short] [-rounds 2] [-out HANDOFF.md]
//
// Each round measures every set-up, so the set-ups alternate and share the
// machine's state; the report gives each figure and the range over
// rounds. Measured per run: iperf3's received Gbit/s, the machine's busy
// CPU over the run (/proc/stat; the namespaces share one kernel, so
// iperf3, forwarding, synwall and hping3 all count) and from it the CPU
// per Gbit/s, and for synwall the packets the kernel queued to it
// (/proc/net/netfilter/nfnetlink_queue). Every flood is bounded in time
// and count, addresses are from 198.18.0.0/15, and the lab is removed on
// exit, error or Ctrl-C. It needs root, iproute2, iptables, iperf3 and
// hping3.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/synwall/synwall/bench/internal/host"
	"github.com/synwall/synwall/deploy/lab"
)

type options struct {
	short   bool
	rounds  int
	run     time.Duration
	out     string
	policy  string
	synwall string
}

func main() {
	var o options
	flag.BoolVar(&o.short, "short", false, "2 s iperf3 runs instead of 5 s")
	flag.IntVar(&o.rounds, "rounds", 2, "measure every set-up this many `times`, alternating")
	flag.StringVar(&o.out, "out", "HANDOFF.md", "write the markdown report to `FILE` (empty: only print it; run from bench/)")
	flag.StringVar(&o.policy, "policy", "handoff/handoff-policy.yaml", "policy `FILE` synwall runs with (run from bench/)")
	flag.StringVar(&o.synwall, "synwall", "", "synwall `BINARY`; empty builds the repository's ./cmd/synwall")
	flag.Parse()
	o.run = 5 * time.Second
	if o.short {
		o.run = 2 * time.Second
	}
	if o.rounds < 1 || o.rounds > 10 {
		fmt.Fprintf(os.Stderr, "handoff: -rounds %d not in [1, 10]\n", o.rounds)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "handoff: interrupted; lab removed, no results written")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "handoff:", err)
		if errors.Is(err, lab.ErrPermission) || errors.Is(err, fs.ErrPermission) {
			os.Exit(77)
		}
		os.Exit(1)
	}
}

// sample is one iperf3 run.
type sample struct {
	gbps    float64
	busy    float64 // machine CPU busy share (1: every core)
	queued  uint64  // packets the kernel queued to synwall during the run
	sent    int     // hping3's packets, under the flood
	created uint64  // conntrack entries synwall created during the run
	kept    uint64  // flows synwall kept in user space (engine or create failure)
}

// cpuPerGbps is busy cores per Gbit/s.
func (s sample) cpuPerGbps() float64 {
	if s.gbps <= 0 {
		return 0
	}
	return s.busy * float64(runtime.NumCPU()) / s.gbps
}

type setup struct {
	name, desc string
	prepare    func(ctx context.Context, e *env) (undo func() error, err error)
	synwall    bool
}

type env struct {
	o       options
	l       *lab.Lab
	synwall string
	policy  string
	rules   []string
	sw      *lab.Synwall // the running synwall, if any
}

func run(ctx context.Context, o options) (err error) {
	if err := lab.Require("ip", "iptables", "hping3", "timeout", "iperf3"); err != nil {
		return err
	}
	started := time.Now()
	policy, err := filepath.Abs(o.policy)
	if err != nil {
		return err
	}
	if _, err := os.Stat(policy); err != nil {
		return fmt.Errorf("-policy: %w (run from bench/)", err)
	}
	dir, err := os.MkdirTemp("", "synwall-handoff-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &env{o: o, synwall: o.synwall, policy: policy}
	if e.synwall == "" {
		e.synwall = filepath.Join(dir, "synwall")
		if err := host.BuildSynwall(ctx, e.synwall, os.Stderr); err != nil {
			return err
		}
	}
	l, err := lab.Up(ctx, lab.Config{})
	if err != nil {
		return err
	}
	e.l = l
	fmt.Fprintf(os.Stderr, "lab %s up\n", l.Prefix)
	defer func() {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, derr)
		}
		fmt.Fprintf(os.Stderr, "lab %s removed\n", l.Prefix)
	}()
	if _, err := l.StartServers(lab.ServerConfig{}); err != nil {
		return err
	}
	if err := l.StartIperf(ctx); err != nil {
		return err
	}

	setups := setups()
	quiet := make([][]sample, len(setups))
	flood := make([][]sample, len(setups))
	for round := 1; round <= o.rounds; round++ {
		for i, s := range setups {
			if err := ctx.Err(); err != nil {
				return err
			}
			q, f, err := measure(ctx, e, s)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			fmt.Fprintf(os.Stderr, "round %d %-28s quiet %.2f Gbit/s (%.2f cores/Gbit/s, %d queued, %d/%d handed off/kept)  flood %.2f Gbit/s (%.2f cores/Gbit/s, %d queued, %d/%d, hping3 %d)\n",
				round, s.name, q.gbps, q.cpuPerGbps(), q.queued, q.created, q.kept, f.gbps, f.cpuPerGbps(), f.queued, f.created, f.kept, f.sent)
			quiet[i], flood[i] = append(quiet[i], q), append(flood[i], f)
		}
	}
	md := markdown(o, started, host.CommandLine("./handoff", flag.CommandLine), setups, quiet, flood, e.rules)
	fmt.Print(md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", o.out)
	}
	return nil
}

func setups() []setup {
	startSynwall := func(args ...string) func(ctx context.Context, e *env) (func() error, error) {
		return func(ctx context.Context, e *env) (func() error, error) {
			sw, err := e.l.StartSynwall(ctx, lab.SynwallConfig{Binary: e.synwall, Policy: e.policy, Args: args})
			if err != nil {
				return nil, err
			}
			e.sw = sw
			return func() error {
				e.sw = nil
				return sw.Stop()
			}, nil
		}
	}
	return []setup{
		{"kernel forwarding", "no defense: the gateway forwards", func(context.Context, *env) (func() error, error) { return nil, nil }, false},
		{"kernel SYNPROXY", "SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460 for ports 80, 5201 and 8080; nf_conntrack_tcp_loose=0", installSynproxy, false},
		{"synwall, conntrack hand-off", "synwall run --policy handoff-policy.yaml (hand-off on, the default)", startSynwall(), true},
		{"synwall, user space", "synwall run --policy handoff-policy.yaml --conntrack=false", startSynwall("--conntrack=false"), true},
	}
}

// floodPort is where the flood goes: a guarded port the server does not
// listen on. Without a defense the server answers each SYN with an RST and
// keeps nothing; a port it listens on would leave half-open connections
// whose SYN-ACK retransmissions, for a minute, cross the next set-ups.
const floodPort = 8080

// synproxyRules are the SYNPROXY documentation's rules for the server's
// HTTP and iperf3 ports and the flood's port.
func synproxyRules() [][]string {
	srv, ports := lab.ServerV4.String(), fmt.Sprintf("%d,%d,%d", lab.HTTPPort, lab.IperfPort, floodPort)
	return [][]string{
		{"-t", "raw", "PREROUTING", "-p", "tcp", "-m", "tcp", "--syn", "-d", srv, "-m", "multiport", "--dports", ports, "-j", "CT", "--notrack"},
		{"-t", "filter", "FORWARD", "-p", "tcp", "-d", srv, "-m", "multiport", "--dports", ports,
			"-m", "conntrack", "--ctstate", "INVALID,UNTRACKED",
			"-j", "SYNPROXY", "--sack-perm", "--timestamp", "--wscale", "7", "--mss", "1460"},
		{"-t", "filter", "FORWARD", "-p", "tcp", "-d", srv, "-m", "multiport", "--dports", ports,
			"-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"},
	}
}

const loose = "net.netfilter.nf_conntrack_tcp_loose"

func installSynproxy(ctx context.Context, e *env) (func() error, error) {
	l := e.l
	var added [][]string
	args := func(op string, r []string) []string {
		return append([]string{"-w", "10", r[0], r[1], op, r[2]}, r[3:]...)
	}
	old, err := lab.Sysctl(l.Gateway, loose)
	if err != nil {
		return nil, err
	}
	undo := func() error {
		var errs []error
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i := len(added) - 1; i >= 0; i-- {
			if _, err := l.Exec(c, l.Gateway, "iptables", args("-D", added[i])...); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, lab.SetSysctl(l.Gateway, loose, old))
		return errors.Join(errs...)
	}
	e.rules = nil
	for _, r := range synproxyRules() {
		if _, err := l.Exec(ctx, l.Gateway, "iptables", args("-A", r)...); err != nil {
			return nil, errors.Join(err, undo())
		}
		added = append(added, r)
		e.rules = append(e.rules, "iptables "+strings.Join(args("-A", r)[2:], " "))
	}
	if err := lab.SetSysctl(l.Gateway, loose, "0"); err != nil {
		return nil, errors.Join(err, undo())
	}
	e.rules = append(e.rules, "sysctl "+loose+"=0")
	return undo, nil
}

// queued sums the kernel's per-queue packet sequence numbers in the
// gateway (0 without a bound queue).
func queued(ctx context.Context, l *lab.Lab) (uint64, error) {
	out, err := l.Exec(ctx, l.Gateway, "sh", "-c", "cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null || true")
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		v, err := strconv.ParseUint(f[7], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("nfnetlink_queue %q: %w", line, err)
		}
		n += v
	}
	return n, nil
}

// handoffs reads synwall's conntrack counters: entries created, and
// flows kept in user space (by the engine, or a failed create).
func handoffs(e *env) (created, kept uint64, err error) {
	if e.sw == nil {
		return 0, 0, nil
	}
	st, err := e.sw.Stats()
	if err != nil {
		return 0, 0, err
	}
	for k, v := range st.Other["conntrack"] {
		switch {
		case k == "created":
			created += v
		case k == "queue_full", strings.HasPrefix(k, "failed_"),
			k == "engine_wscale", k == "engine_sack", k == "engine_timestamps", k == "engine_mss":
			kept += v
		}
	}
	return created, kept, nil
}

// statsSettle is how long synwall's stats file (rewritten every second)
// takes to include what happened.
const statsSettle = 1100 * time.Millisecond

// iperf runs one iperf3 stream and reads the machine's CPU and synwall's
// queue around it.
func iperf(ctx context.Context, e *env) (sample, error) {
	var s sample
	cr0, kept0, err := handoffs(e)
	if err != nil {
		return s, err
	}
	q0, err := queued(ctx, e.l)
	if err != nil {
		return s, err
	}
	c0, err := host.ReadCPUTimes()
	if err != nil {
		return s, err
	}
	bps, err := e.l.Iperf(ctx, lab.ServerV4, e.o.run)
	if err != nil {
		return s, err
	}
	c1, err := host.ReadCPUTimes()
	if err != nil {
		return s, err
	}
	q1, err := queued(ctx, e.l)
	if err != nil {
		return s, err
	}
	s.gbps, s.busy, s.queued = bps/1e9, host.CPUShare(c0, c1).Busy(), q1-min(q0, q1)
	if e.sw != nil {
		if err := host.Sleep(ctx, statsSettle); err != nil {
			return s, err
		}
		cr1, kept1, err := handoffs(e)
		if err != nil {
			return s, err
		}
		s.created, s.kept = cr1-min(cr0, cr1), kept1-min(kept0, kept1)
	}
	return s, nil
}

func measure(ctx context.Context, e *env, s setup) (quiet, flooded sample, err error) {
	undo, err := s.prepare(ctx, e)
	if undo != nil {
		defer func() {
			if uerr := undo(); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}()
	}
	if err != nil {
		return quiet, flooded, err
	}
	if quiet, err = iperf(ctx, e); err != nil {
		return quiet, flooded, err
	}
	// One hping3 from a second before the stream to its end, bounded.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type done struct {
		sent int
		err  error
	}
	fc := make(chan done, 1)
	go func() {
		f, err := e.l.Flood(fctx, lab.Flood{Target: lab.ServerV4, Port: floodPort, Flags: []string{"-S"}, Duration: e.o.run + 3*time.Second})
		fc <- done{f.Sent, err}
	}()
	if err := host.Sleep(ctx, time.Second); err != nil {
		return quiet, flooded, err
	}
	flooded, err = iperf(ctx, e)
	cancel()
	f := <-fc
	flooded.sent = f.sent
	if err != nil {
		return quiet, flooded, err
	}
	if f.err != nil && !errors.Is(f.err, context.Canceled) {
		return quiet, flooded, fmt.Errorf("hping3: %w", f.err)
	}
	return quiet, flooded, nil
}

func span(ss []sample, f func(sample) float64) string {
	lo, hi := f(ss[0]), f(ss[0])
	for _, s := range ss[1:] {
		lo, hi = min(lo, f(s)), max(hi, f(s))
	}
	if len(ss) == 1 || fmt.Sprintf("%.2f", lo) == fmt.Sprintf("%.2f", hi) {
		return fmt.Sprintf("%.2f", lo)
	}
	return fmt.Sprintf("%.2f–%.2f", lo, hi)
}

func mean(ss []sample, f func(sample) float64) float64 {
	var t float64
	for _, s := range ss {
		t += f(s)
	}
	return t / float64(len(ss))
}

func markdown(o options, started time.Time, command string, setups []setup, quiet, flood [][]sample, rules []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Established flows: synwall (conntrack hand-off, user space) against kernel SYNPROXY\n\n")
	fmt.Fprintf(&b, "- Machine: %d × %s, Linux %s, %s, commit %s\n", runtime.NumCPU(), host.CPUModel(), host.Kernel(), runtime.Version(), host.GitCommit())
	fmt.Fprintf(&b, "- Date: %s\n", started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- Command (as root, from bench/): `%s`\n", command)
	fmt.Fprintf(&b, "- One iperf3 stream client → 198.18.3.2:5201 for %v, quiet and during one `hping3 -S --flood` to 198.18.3.2:%d (guarded, nothing listens) from the attacker namespace; %d round(s), the set-ups alternating.\n\n", o.run, floodPort, o.rounds)
	gbps := func(s sample) float64 { return s.gbps }
	cpu := func(s sample) float64 { return s.cpuPerGbps() }
	q := func(s sample) float64 { return float64(s.queued) }
	fmt.Fprintf(&b, "| set-up | Gbit/s quiet | Gbit/s under flood | cores per Gbit/s quiet | cores per Gbit/s under flood | packets queued to synwall (quiet / flood) |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|\n")
	for i, s := range setups {
		qs := "—"
		if s.synwall {
			qs = fmt.Sprintf("%.0f / %.0f", mean(quiet[i], q), mean(flood[i], q))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", s.name, span(quiet[i], gbps), span(flood[i], gbps), span(quiet[i], cpu), span(flood[i], cpu), qs)
	}
	// The ratios the hand-off is measured by, from the means.
	var sp, ho, us int = -1, -1, -1
	for i, s := range setups {
		switch s.name {
		case "kernel SYNPROXY":
			sp = i
		case "synwall, conntrack hand-off":
			ho = i
		case "synwall, user space":
			us = i
		}
	}
	if sp >= 0 && ho >= 0 {
		fmt.Fprintf(&b, "\n**synwall with the hand-off / kernel SYNPROXY: %.2f quiet, %.2f under the flood** (mean Gbit/s %.2f / %.2f and %.2f / %.2f)",
			mean(quiet[ho], gbps)/mean(quiet[sp], gbps), mean(flood[ho], gbps)/mean(flood[sp], gbps),
			mean(quiet[ho], gbps), mean(quiet[sp], gbps), mean(flood[ho], gbps), mean(flood[sp], gbps))
		if us >= 0 {
			fmt.Fprintf(&b, "; synwall in user space: %.2f and %.2f", mean(quiet[us], gbps)/mean(quiet[sp], gbps), mean(flood[us], gbps)/mean(flood[sp], gbps))
		}
		b.WriteString(".\n")
	}
	fmt.Fprintf(&b, "\nEach run (*entries*: conntrack entries synwall created during the run / flows it kept in user space; iperf3 opens two connections):\n\n| round | set-up | quiet Gbit/s | busy | entries | flood Gbit/s | busy | entries | hping3 sent |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for r := 0; r < o.rounds; r++ {
		for i, s := range setups {
			qq, ff := quiet[i][r], flood[i][r]
			qe, fe := "—", "—"
			if s.synwall {
				qe, fe = fmt.Sprintf("%d / %d", qq.created, qq.kept), fmt.Sprintf("%d / %d", ff.created, ff.kept)
			}
			fmt.Fprintf(&b, "| %d | %s | %.2f | %.0f%% | %s | %.2f | %.0f%% | %s | %d |\n", r+1, s.name, qq.gbps, 100*qq.busy, qe, ff.gbps, 100*ff.busy, fe, ff.sent)
		}
	}
	fmt.Fprintf(&b, "\nSet-ups:\n\n")
	for _, s := range setups {
		fmt.Fprintf(&b, "- **%s**: %s\n", s.name, s.desc)
	}
	if len(rules) > 0 {
		fmt.Fprintf(&b, "\nSYNPROXY rules in the gateway namespace (removed afterwards):\n\n```\n%s\n```\n", strings.Join(rules, "\n"))
	}
	fmt.Fprintf(&b, "\n*cores per Gbit/s*: the machine's non-idle share of its %d cores over the iperf3 run (/proc/stat), in cores, divided by the Gbit/s: iperf3 at both ends, the gateway's forwarding, synwall and, under the flood, hping3 all count, as they share one kernel. *packets queued*: the kernel's nfnetlink_queue packet ids in the gateway, summed over synwall's queues, across the run.\n", runtime.NumCPU())
	return b.String()
}
