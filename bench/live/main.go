// Command live measures a running synwall in the namespace lab
// (deploy/lab): how many SYNs of one hping3 flood it answers and at what
// CPU cost, and how much of the kernel's forwarding throughput a proxied
// iperf3 flow keeps, with and without a SYN flood alongside.
//
//	cd bench && go run ./live [-short] [-backend raw|nfq|both] [-out FILE]
//
// It builds synwall, builds one lab, runs every phase in it, prints a
// markdown table and writes it with the raw numbers as CSV to FILE. The lab
// is removed at the end, also on error or Ctrl-C. It needs root, iproute2,
// iptables, hping3 and iperf3.
//
// Every flood is one bounded hping3 run from the lab's attacker namespace
// (RFC 2544 addresses, 198.18.0.0/15) against the lab's server; nothing
// leaves the lab's namespaces.
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
	"strings"
	"syscall"
	"time"

	"github.com/synwall/synwall/bench/internal/host"
	"github.com/synwall/synwall/deploy/lab"
)

type options struct {
	short    bool
	backends []string
	out      string
	policy   string
	synwall  string
	args     []string

	synFlood time.Duration
	iperf    time.Duration
}

func main() {
	var o options
	backend := flag.String("backend", "both", "queue backends to measure: `raw`, nfq or both")
	flag.BoolVar(&o.short, "short", false, "short phases (3 s flood, 2 s iperf) for a quick check")
	flag.StringVar(&o.out, "out", "live-results.md", "write the markdown report to `FILE` and the raw numbers to FILE with .csv (run from bench/)")
	flag.StringVar(&o.policy, "policy", "live/bench-policy.yaml", "policy `FILE` synwall runs with (run from bench/)")
	flag.StringVar(&o.synwall, "synwall", "", "synwall `BINARY`; empty builds the repository's ./cmd/synwall into a temporary directory")
	extra := flag.String("args", "", "more flags for `synwall run`, space separated (e.g. \"--queues 0-1 --cpu-fanout\")")
	flag.Parse()
	switch *backend {
	case "raw", "nfq":
		o.backends = []string{*backend}
	case "both":
		o.backends = []string{"raw", "nfq"}
	default:
		fmt.Fprintf(os.Stderr, "live: -backend %q, want raw, nfq or both\n", *backend)
		os.Exit(2)
	}
	o.args = strings.Fields(*extra)
	o.synFlood, o.iperf = 10*time.Second, 5*time.Second
	if o.short {
		o.synFlood, o.iperf = 3*time.Second, 2*time.Second
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "live: interrupted; no results written")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "live:", err)
		if errors.Is(err, lab.ErrPermission) || errors.Is(err, fs.ErrPermission) {
			os.Exit(77)
		}
		os.Exit(1)
	}
}

// synResult is one SYN-flood phase.
type synResult struct {
	Backend          string
	Offered          int
	Elapsed          time.Duration
	Answered         uint64 // events.syn_answered delta
	Limited          uint64 // events.syn_limited delta
	Packets          uint64 // queue.packets delta: what synwall received
	QueueDropped     uint64 // kernel queue_dropped delta
	UserDropped      uint64 // kernel user_dropped delta
	ENOBUFS          uint64
	CPU              time.Duration // synwall utime+stime delta
	CPUUser, CPUSys  time.Duration
	Machine          host.Share
	PIDNote          string
	SynwallPID       int
	StatsWaitSeconds float64
}

func (r synResult) offeredPPS() float64  { return float64(r.Offered) / r.Elapsed.Seconds() }
func (r synResult) answeredPPS() float64 { return float64(r.Answered) / r.Elapsed.Seconds() }
func (r synResult) ratio() float64 {
	if r.Offered == 0 {
		return 0
	}
	return float64(r.Answered) / float64(r.Offered)
}

// cpuPerPacket is synwall's CPU time per packet it received from the queue.
func (r synResult) cpuPerPacket() float64 {
	if r.Packets == 0 {
		return 0
	}
	return float64(r.CPU.Nanoseconds()) / float64(r.Packets)
}

// dataResult is one iperf3 run.
type dataResult struct {
	Name    string // "kernel", "synwall", "synwall+flood"
	Backend string // empty for kernel forwarding
	BPS     float64
	CPU     time.Duration // synwall's CPU time during the run
	Elapsed time.Duration
	Flood   int // SYNs the concurrent flood sent
	Machine host.Share
	// synwall's counters over the run (zero without synwall)
	Packets, QueueDropped, UserDropped uint64
}

type report struct {
	opts    options
	machine machine
	command string
	started time.Time
	syn     []synResult
	data    []dataResult
}

func run(ctx context.Context, o options) (err error) {
	if err := lab.Require("ip", "iptables", "hping3", "iperf3", "timeout"); err != nil {
		return err
	}
	if _, err := os.Stat(o.policy); err != nil {
		return fmt.Errorf("policy: %w (run from bench/)", err)
	}
	rep := &report{opts: o, started: time.Now(), command: host.CommandLine("./live", flag.CommandLine)}
	rep.machine = machine{
		NProc:   runtime.NumCPU(),
		CPU:     host.CPUModel(),
		Kernel:  host.Kernel(),
		Go:      runtime.Version(),
		Commit:  host.GitCommit(),
		LoadAvg: loadAvg(),
	}
	if o.synwall == "" {
		dir, err := os.MkdirTemp("", "synwall-live-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.synwall = filepath.Join(dir, "synwall")
		if err := host.BuildSynwall(ctx, o.synwall, os.Stderr); err != nil {
			return err
		}
	}
	policy, err := filepath.Abs(o.policy)
	if err != nil {
		return err
	}

	l, err := lab.Up(ctx, lab.Config{})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "lab %s up\n", l.Prefix)
	defer func() {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, derr)
		}
		fmt.Fprintf(os.Stderr, "lab %s removed\n", l.Prefix)
	}()
	if err := l.StartIperf(ctx); err != nil {
		return err
	}

	// (a) plain kernel forwarding.
	fmt.Fprintf(os.Stderr, "iperf3 %v through the gateway without synwall\n", o.iperf)
	base, err := measureIperf(ctx, l, nil, o.iperf, false)
	if err != nil {
		return err
	}
	base.Name = "kernel"
	rep.data = append(rep.data, base)
	fmt.Fprintf(os.Stderr, "  %.2f Gbit/s (%v)\n", base.BPS/1e9, base.Machine)
	// The same under a SYN flood: what the flood's CPU load alone costs.
	fmt.Fprintf(os.Stderr, "iperf3 %v through the gateway without synwall, under a SYN flood\n", o.iperf)
	kf, err := measureIperf(ctx, l, nil, o.iperf, true)
	if err != nil {
		return err
	}
	kf.Name = "kernel+flood"
	rep.data = append(rep.data, kf)
	fmt.Fprintf(os.Stderr, "  %.2f Gbit/s with %d flood SYNs (%v)\n", kf.BPS/1e9, kf.Flood, kf.Machine)

	for _, be := range o.backends {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := measureBackend(ctx, l, o, policy, be, rep); err != nil {
			return fmt.Errorf("backend %s: %w", be, err)
		}
	}

	md, csv := rep.markdown(), rep.csv()
	fmt.Print(md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
		csvPath := strings.TrimSuffix(o.out, filepath.Ext(o.out)) + ".csv"
		if err := os.WriteFile(csvPath, []byte(csv), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s and %s\n", o.out, csvPath)
	}
	return nil
}

// runningSynwall is a started daemon and its real PID.
type runningSynwall struct {
	*lab.Synwall
	pid  int
	note string
}

func (s *runningSynwall) cpu() (time.Duration, time.Duration, error) {
	return host.ProcCPU(s.pid)
}

func measureBackend(ctx context.Context, l *lab.Lab, o options, policy, be string, rep *report) error {
	fmt.Fprintf(os.Stderr, "starting synwall --backend %s\n", be)
	sw, err := l.StartSynwall(ctx, lab.SynwallConfig{Binary: o.synwall, Policy: policy, Backend: be, Args: o.args})
	if err != nil {
		return err
	}
	defer sw.Stop()
	pid, note, err := findProgram(sw.PID(), o.synwall)
	if err != nil {
		return err
	}
	rs := &runningSynwall{sw, pid, note}
	fmt.Fprintf(os.Stderr, "  synwall PID %d: %s\n", pid, note)

	// The data path first needs a working proxy: check it on its own.
	fmt.Fprintf(os.Stderr, "iperf3 %v through synwall (%s)\n", o.iperf, be)
	d, err := measureIperf(ctx, l, rs, o.iperf, false)
	if err != nil {
		return fmt.Errorf("%w; synwall stderr:\n%s", err, sw.Stderr())
	}
	d.Name, d.Backend = "synwall", be
	rep.data = append(rep.data, d)
	fmt.Fprintf(os.Stderr, "  %.2f Gbit/s, synwall CPU %v (%v)\n", d.BPS/1e9, d.CPU, d.Machine)

	fmt.Fprintf(os.Stderr, "SYN flood %v against synwall (%s)\n", o.synFlood, be)
	s, err := measureSYN(ctx, l, rs, o.synFlood)
	if err != nil {
		return fmt.Errorf("%w; synwall stderr:\n%s", err, sw.Stderr())
	}
	s.Backend = be
	rep.syn = append(rep.syn, s)
	fmt.Fprintf(os.Stderr, "  offered %d (%.0f/s), answered %d (%.0f/s, %.3f), queue drops %d+%d, CPU %v (%.0f ns/packet)\n",
		s.Offered, s.offeredPPS(), s.Answered, s.answeredPPS(), s.ratio(), s.QueueDropped, s.UserDropped, s.CPU, s.cpuPerPacket())

	fmt.Fprintf(os.Stderr, "iperf3 %v through synwall (%s) under a SYN flood\n", o.iperf, be)
	d, err = measureIperf(ctx, l, rs, o.iperf, true)
	if err != nil {
		return fmt.Errorf("%w; synwall stderr:\n%s", err, sw.Stderr())
	}
	d.Name, d.Backend = "synwall+flood", be
	rep.data = append(rep.data, d)
	fmt.Fprintf(os.Stderr, "  %.2f Gbit/s with %d flood SYNs, synwall CPU %v (%v)\n", d.BPS/1e9, d.Flood, d.CPU, d.Machine)

	if err := sw.Stop(); err != nil {
		return err
	}
	return nil
}

// statsSettle is how long to wait after a phase for the stats file, which
// the daemon writes every second, to include it.
const statsSettle = 1500 * time.Millisecond

func measureSYN(ctx context.Context, l *lab.Lab, sw *runningSynwall, d time.Duration) (synResult, error) {
	r := synResult{SynwallPID: sw.pid, PIDNote: sw.note}
	before, err := sw.Stats()
	if err != nil {
		return r, err
	}
	u0, s0, err := sw.cpu()
	if err != nil {
		return r, err
	}
	m0, err := host.ReadCPUTimes()
	if err != nil {
		return r, err
	}
	f, err := l.Flood(ctx, lab.Flood{Target: lab.ServerV4, Port: lab.HTTPPort, Flags: []string{"-S"}, Duration: d})
	if err != nil {
		return r, err
	}
	m1, err := host.ReadCPUTimes()
	if err != nil {
		return r, err
	}
	// Let the daemon drain its queue and write its counters.
	if err := host.Sleep(ctx, statsSettle); err != nil {
		return r, err
	}
	u1, s1, err := sw.cpu()
	if err != nil {
		return r, err
	}
	after, err := sw.Stats()
	if err != nil {
		return r, err
	}
	r.Offered, r.Elapsed = f.Sent, f.Elapsed
	r.Answered = delta(after.Events, before.Events, "syn_answered")
	r.Limited = delta(after.Events, before.Events, "syn_limited")
	r.Packets = delta(after.Queue, before.Queue, "packets")
	r.QueueDropped = delta(after.Queue, before.Queue, "queue_dropped")
	r.UserDropped = delta(after.Queue, before.Queue, "user_dropped")
	r.ENOBUFS = delta(after.Queue, before.Queue, "enobufs")
	r.CPUUser, r.CPUSys = u1-u0, s1-s0
	r.CPU = r.CPUUser + r.CPUSys
	r.Machine = host.CPUShare(m0, m1)
	return r, nil
}

// measureIperfOnce runs iperf3 from the client to the server for d; with flood,
// an hping3 SYN flood from the attacker runs from a second before until
// after it.
func measureIperfOnce(ctx context.Context, l *lab.Lab, sw *runningSynwall, d time.Duration, flood bool) (dataResult, error) {
	var r dataResult
	type fres struct {
		r   lab.FloodResult
		err error
	}
	fc := make(chan fres, 1)
	fctx, stopFlood := context.WithCancel(ctx)
	defer stopFlood()
	if flood {
		go func() {
			f, err := l.Flood(fctx, lab.Flood{Target: lab.ServerV4, Port: lab.HTTPPort, Flags: []string{"-S"}, Duration: d + 3*time.Second})
			fc <- fres{f, err}
		}()
		if err := host.Sleep(ctx, time.Second); err != nil {
			return r, err
		}
	}
	var u0, s0 time.Duration
	var st0 lab.Stats
	var err error
	if sw != nil {
		if st0, err = sw.Stats(); err != nil {
			return r, err
		}
		if u0, s0, err = sw.cpu(); err != nil {
			return r, err
		}
	}
	m0, err := host.ReadCPUTimes()
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	bps, ierr := l.Iperf(ctx, lab.ServerV4, d)
	r.Elapsed = time.Since(t0)
	m1, err := host.ReadCPUTimes()
	if err != nil {
		return r, err
	}
	r.Machine = host.CPUShare(m0, m1)
	if sw != nil {
		u1, s1, err := sw.cpu()
		if err != nil {
			return r, err
		}
		r.CPU = u1 + s1 - u0 - s0
	}
	if flood {
		stopFlood()
		f := <-fc
		if f.err != nil && ierr == nil {
			return r, f.err
		}
		r.Flood = f.r.Sent
	}
	if sw != nil {
		// The counters of the stats file lag by up to a second.
		if err := host.Sleep(ctx, statsSettle); err != nil {
			return r, err
		}
		st1, err := sw.Stats()
		if err != nil {
			return r, err
		}
		r.Packets = delta(st1.Queue, st0.Queue, "packets")
		r.QueueDropped = delta(st1.Queue, st0.Queue, "queue_dropped")
		r.UserDropped = delta(st1.Queue, st0.Queue, "user_dropped")
	}
	if ierr != nil {
		return r, ierr
	}
	r.BPS = bps
	return r, nil
}

// measureIperf is measureIperfOnce, again (with a new flood) while the
// iperf3 server still counts a previous test as running: a test whose
// control connection suffered under a flood can end at the server well
// after the client gave up. Every number comes from the attempt that ran.
func measureIperf(ctx context.Context, l *lab.Lab, sw *runningSynwall, d time.Duration, flood bool) (dataResult, error) {
	deadline := time.Now().Add(40 * time.Second)
	for {
		r, err := measureIperfOnce(ctx, l, sw, d, flood)
		if err == nil || !strings.Contains(err.Error(), "server is busy") || time.Now().After(deadline) {
			return r, err
		}
		fmt.Fprintf(os.Stderr, "  iperf3 server busy with an earlier test; retrying\n")
		if err := host.Sleep(ctx, 2*time.Second); err != nil {
			return r, err
		}
	}
}

// delta is a counter's growth from m0 to m1 (zero if it went back).
func delta(m1, m0 map[string]uint64, k string) uint64 { return m1[k] - min(m0[k], m1[k]) }
