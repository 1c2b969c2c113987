package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/synwall/synwall/internal/daemon"
	"github.com/synwall/synwall/internal/firewall"
	"github.com/synwall/synwall/internal/observe"
	"github.com/synwall/synwall/internal/queue"
)

// runFlags are the flags of `synwall run` and `synwall rules`.
type runFlags struct {
	policy      string
	hook        string
	queues      string
	backend     string
	fail        string
	fanout      bool
	conntrack   bool
	mark        uint
	statsFile   string
	metricsAddr string
	pidFile     string
	logFormat   string
	logLevel    string
	stateDir    string
	handoff     bool

	controlSocket  string
	conntrackDelay time.Duration
	pcap           daemon.PcapConfig
	logSummary     time.Duration

	synStage   string
	synStageIf string
}

func (f *runFlags) register(fs *flag.FlagSet, run bool) {
	fs.StringVar(&f.policy, "policy", "", "policy `FILE` (YAML); the embedded default when empty (see `synwall check`)")
	fs.StringVar(&f.hook, "hook", "forward", "where guarded traffic passes: `forward` (a gateway in front of servers), input (this host is the server), or both")
	fs.StringVar(&f.queues, "queues", "", "NFQUEUE numbers as `A-B` or N; overrides the policy's queue.numbers (half of them then take the clients' SYNs)")
	fs.StringVar(&f.fail, "fail", "", "what happens to traffic synwall cannot take: `closed` (dropped; the default) or open (accepted unexamined); overrides the policy's queue.fail")
	fs.BoolVar(&f.fanout, "cpu-fanout", false, "spread packets over the queues by CPU (--queue-cpu-fanout) instead of by address hash")
	fs.UintVar(&f.mark, "mark", firewall.DefaultMark, "firewall `mark` of packets synwall injects (exempted from the queue and conntrack)")
	fs.BoolVar(&f.conntrack, "conntrack", true, "hand each proxied connection to conntrack once its handshake is done, so that the kernel translates it (sets net.netfilter.nf_conntrack_tcp_loose=0 while running; off by itself, with a log line, where the kernel cannot)")
	if !run {
		return
	}
	fs.StringVar(&f.backend, "backend", "raw", "queue receive path: `raw` (zero-allocation netlink loop) or nfq (go-nfqueue)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://`ADDR`/metrics; loopback recommended (127.0.0.1:9474); off when empty")
	fs.StringVar(&f.statsFile, "stats-file", "", "write counters as JSON to `FILE` when ready, every second and at exit")
	fs.StringVar(&f.pidFile, "pid-file", daemon.DefaultPidFile, "write the daemon's PID to `FILE` when ready (synwall reload and restart read it); empty disables")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: `text` or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.stateDir, "state-dir", daemon.DefaultStateDir, "`DIR` of the state file a graceful restart (SIGUSR2, synwall restart) hands to the next process; empty disables restoring")
	fs.BoolVar(&f.handoff, "handoff", true, "on a graceful restart, hand the bound queue sockets to the next process (raw backend): the queues never unbind")
	fs.DurationVar(&f.conntrackDelay, "conntrack-delay", 0, "hold each hand-off to conntrack back this `long` (tests and demonstrations of a hand-off during a transfer; leave 0)")
	fs.StringVar(&f.controlSocket, "control-socket", daemon.DefaultControlSocket, "serve the status (synwall status) on this unix `SOCKET`; its directory is created 0750, the socket is 0660; empty disables")
	fs.StringVar(&f.pcap.File, "pcap-file", "", "write a sample of dropped packets to this pcapng `FILE` (rotated to FILE.1, FILE.2, ...; 0600); off when empty")
	fs.Float64Var(&f.pcap.Rate, "pcap-rate", observe.DefaultSampleRate, "most dropped packets sampled per `second` for --pcap-file")
	fs.Int64Var(&f.pcap.MaxBytes, "pcap-max-bytes", observe.DefaultMaxBytes, "rotate --pcap-file at this size in `bytes`")
	fs.IntVar(&f.pcap.Files, "pcap-files", observe.DefaultFiles, "keep at most this many pcap `files`, the current one included")
	fs.DurationVar(&f.logSummary, "log-summary", 10*time.Second, "log one summary line per drop reason every `INTERVAL` (count, distinct sources); 0 disables")
	fs.StringVar(&f.synStage, "syn-stage", "auto", "BPF SYN stage on the --syn-stage-if interfaces: `auto` (tcx when it loads, else NFQUEUE alone), tc, xdp (native XDP; fail to start without it) or off")
	fs.StringVar(&f.synStageIf, "syn-stage-if", "", "comma-separated `INTERFACES` that face clients, where the SYN stage answers SYNs; none (or off) for no interface; empty (the default) selects them: every interface that is up and not loopback, less, with --hook forward or both, those the kernel routes a guarded service's addresses through (they face the servers); the choice and reasons are logged")
}

// parseQueues reads "N" or "A-B".
func parseQueues(s string) (daemon.QueueRange, error) {
	lo, hi, found := strings.Cut(s, "-")
	a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	if err != nil {
		return daemon.QueueRange{}, fmt.Errorf("--queues %q: want N or A-B with numbers 0..65535", s)
	}
	b := a
	if found {
		if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 16); err != nil || b < a {
			return daemon.QueueRange{}, fmt.Errorf("--queues %q: want A-B with A <= B <= 65535", s)
		}
	}
	return daemon.QueueRange{First: uint16(a), Last: uint16(b)}, nil
}

// traffic turns the flags shared by run and rules into daemon.Traffic.
func (f *runFlags) traffic() (daemon.Traffic, error) {
	t := daemon.Traffic{CPUFanout: f.fanout, Mark: uint32(f.mark), Conntrack: f.conntrack}
	switch f.hook {
	case "forward":
		t.Hooks = []firewall.Hook{firewall.HookForward}
	case "input":
		t.Hooks = []firewall.Hook{firewall.HookInput}
	case "both":
		t.Hooks = []firewall.Hook{firewall.HookForward, firewall.HookInput}
	default:
		return t, fmt.Errorf("--hook %q: want forward, input or both", f.hook)
	}
	if f.queues != "" {
		q, err := parseQueues(f.queues)
		if err != nil {
			return t, err
		}
		t.Queues = &q
	}
	switch f.fail {
	case "":
	case "closed", "open":
		open := f.fail == "open"
		t.FailOpen = &open
	default:
		return t, fmt.Errorf("--fail %q: want closed or open", f.fail)
	}
	return t, nil
}

// config turns synwall run's flags into the daemon's configuration.
func (f *runFlags) config(log *slog.Logger) (daemon.Config, error) {
	t, err := f.traffic()
	if err != nil {
		return daemon.Config{}, err
	}
	backend, err := queue.ParseBackend(f.backend)
	if err != nil {
		return daemon.Config{}, err
	}
	if f.logSummary < 0 {
		return daemon.Config{}, fmt.Errorf("--log-summary %v: want a positive interval or 0", f.logSummary)
	}
	if f.conntrackDelay < 0 {
		return daemon.Config{}, fmt.Errorf("--conntrack-delay %v: want 0 or more", f.conntrackDelay)
	}
	mode, err := daemon.ParseSynStageMode(f.synStage)
	if err != nil {
		return daemon.Config{}, err
	}
	ifs, autoIfs, err := daemon.ParseSynStageIf(f.synStageIf)
	if err != nil {
		return daemon.Config{}, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return daemon.Config{
		PolicyFile: f.policy, Traffic: t, Backend: backend,
		StatsFile: f.statsFile, PidFile: f.pidFile, StateDir: f.stateDir, Handoff: f.handoff,
		ControlSocket: f.controlSocket, Pcap: f.pcap, LogSummary: f.logSummary, ConntrackDelay: f.conntrackDelay,
		MetricsAddr: f.metricsAddr, Registry: reg,
		SynStage: daemon.SynStageConfig{Mode: mode, Interfaces: ifs, Auto: autoIfs},
		Log:      log, Version: version,
	}, nil
}

func cmdRules(_ context.Context, args []string, stdout, stderr io.Writer) int {
	var f runFlags
	fs := newFlags("rules", "[flags]", `Prints the firewall rules synwall run would install for the policy, as
iptables-restore and ip6tables-restore input and as an nftables ruleset, and
touches nothing. For operators who manage their own firewall: install these,
then run synwall with the same policy and queue numbers.`, stderr)
	f.register(fs, false)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	p, err := daemon.LoadPolicy(f.policy)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	t, err := f.traffic()
	if err != nil {
		fmt.Fprintln(stderr, "synwall rules:", err)
		return exitUsage
	}
	r, err := t.Rules(p)
	if err != nil {
		fmt.Fprintln(stderr, "synwall rules:", err)
		return exitUsage
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		text, err := r.IPTables(fam)
		if err != nil {
			fmt.Fprintln(stderr, "synwall rules:", err)
			return exitFailure
		}
		tool := "iptables-restore --noflush"
		if fam == firewall.IPv6 {
			tool = "ip6tables-restore --noflush"
		}
		fmt.Fprintf(stdout, "# %s: feed to %s\n%s\n", fam, tool, text)
	}
	nft, err := r.NFTables()
	if err != nil {
		fmt.Fprintln(stderr, "synwall rules:", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "# nftables: feed to nft -f -\n%s", nft)
	return exitOK
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func cmdRun(ctx context.Context, args []string, _, stderr io.Writer) int {
	var f runFlags
	fs := newFlags("run", "[flags]", `Runs the gateway in the foreground: binds the NFQUEUE queues, installs its
firewall rules (its own chains, tagged "synwall", stale ones from an earlier
run replaced), and answers SYNs to the guarded services as a SYN proxy until
SIGINT or SIGTERM, when it removes its rules and exits 0. SIGHUP (or synwall
reload) re-reads the policy file: a valid one is swapped in without losing
flows or the SYN cache; an invalid one is refused, logged and counted, and
the old policy stays. SIGUSR2 (or synwall restart) is a graceful restart:
what was read is verdicted, cookie keys and flows saved to --state-dir,
the rules left in place (and the queue sockets handed over, see
--handoff), and the binary on disk re-executed with the same PID; it
restores the flows and takes over. Needs
CAP_NET_ADMIN and CAP_NET_RAW.`, stderr)
	f.register(fs, true)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	log, err := newLogger(f.logFormat, f.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "synwall run:", err)
		return exitUsage
	}
	cfg, err := f.config(log)
	if err != nil {
		fmt.Fprintln(stderr, "synwall run:", err)
		return exitUsage
	}
	// Caught from the start, so that a request during setup is served
	// once running rather than killing the process.
	restart, reload := make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(restart, daemon.RestartSignal)
	signal.Notify(reload, syscall.SIGHUP)
	defer signal.Stop(reload)
	cfg.Restart, cfg.Reload = restart, reload
	cfg.Inherited, cfg.InheritedErr = queue.HandoffFromEnv()
	d, err := daemon.New(cfg)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitSetup
	}
	if err := d.Run(ctx); errors.Is(err, daemon.ErrRestart) {
		log.Info("re-executing for a graceful restart")
		err = d.Reexec()
		log.Error("graceful restart: cannot re-execute; exiting with the state saved and the rules in place", "err", err)
		return exitFailure
	} else if err != nil {
		log.Error("stopped", "err", err)
		if errors.Is(err, daemon.ErrSetup) {
			return exitSetup
		}
		return exitFailure
	}
	return exitOK
}
