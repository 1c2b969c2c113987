package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/synwall/synwall/internal/firewall"

	"github.com/synwall/synwall/internal/engine"

	"golang.org/x/sync/errgroup"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/policy"
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
	mark        uint
	statsFile   string
	metricsAddr string
	pidFile     string
	logFormat   string
	logLevel    string
	stateDir    string
	handoff     bool
	ops         opsFlags // status, pcap sampling and log summaries (observe.go)
}

func (f *runFlags) register(fs interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
	UintVar(*uint, string, uint, string)
}, daemon bool) {
	fs.StringVar(&f.policy, "policy", "", "policy `FILE` (YAML); the embedded default when empty (see `synwall check`)")
	fs.StringVar(&f.hook, "hook", "forward", "where guarded traffic passes: `forward` (a gateway in front of servers), input (this host is the server), or both")
	fs.StringVar(&f.queues, "queues", "", "NFQUEUE numbers as `A-B` or N; overrides the policy's queue.numbers")
	fs.StringVar(&f.fail, "fail", "", "what happens to traffic synwall cannot take: `closed` (dropped; the default) or open (accepted unexamined); overrides the policy's queue.fail")
	fs.BoolVar(&f.fanout, "cpu-fanout", false, "spread packets over the queues by CPU (--queue-cpu-fanout) instead of by address hash")
	fs.UintVar(&f.mark, "mark", queue.DefaultMark, "firewall `mark` of packets synwall injects (exempted from the queue and conntrack)")
	if daemon {
		fs.StringVar(&f.backend, "backend", "raw", "queue receive path: `raw` (zero-allocation netlink loop) or nfq (go-nfqueue)")
		fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://`ADDR`/metrics; loopback recommended (127.0.0.1:9474); off when empty")
		fs.StringVar(&f.statsFile, "stats-file", "", "write counters as JSON to `FILE` when ready, every second and at exit")
		fs.StringVar(&f.pidFile, "pid-file", "", "write the daemon's PID to `FILE` (for synwall reload)")
		fs.StringVar(&f.logFormat, "log-format", "text", "log format: `text` or json")
		fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
		fs.StringVar(&f.stateDir, "state-dir", defaultStateDir, "`DIR` of the state file a graceful restart (SIGUSR2, synwall restart) hands to the next process; empty disables restoring")
		fs.BoolVar(&f.handoff, "handoff", true, "on a graceful restart, hand the bound queue sockets to the next process (raw backend): the queues never unbind")
	}
}

// parseQueues reads "N" or "A-B".
func parseQueues(s string) (first, last uint16, err error) {
	lo, hi, found := strings.Cut(s, "-")
	a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("--queues %q: want N or A-B with numbers 0..65535", s)
	}
	b := a
	if found {
		if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 16); err != nil || b < a {
			return 0, 0, fmt.Errorf("--queues %q: want A-B with A <= B <= 65535", s)
		}
	}
	return uint16(a), uint16(b), nil
}

// queueRange returns the queue numbers from the flag or the policy. The
// firewall balances over a contiguous range, so the policy's numbers must
// be one.
func (f *runFlags) queueRange(p *policy.Policy) (first, last uint16, err error) {
	if f.queues != "" {
		return parseQueues(f.queues)
	}
	n := p.Queue.Numbers
	if len(n) == 0 {
		return 0, 0, nil
	}
	for i := 1; i < len(n); i++ {
		if n[i] != n[i-1]+1 {
			return 0, 0, fmt.Errorf("policy queue.numbers %v: synwall balances over a contiguous range (e.g. 0-3)", n)
		}
	}
	return n[0], n[len(n)-1], nil
}

func (f *runFlags) failOpen(p *policy.Policy) (bool, error) {
	switch f.fail {
	case "":
		return p.Queue.FailOpen, nil
	case "closed":
		return false, nil
	case "open":
		return true, nil
	}
	return false, fmt.Errorf("--fail %q: want closed or open", f.fail)
}

func (f *runFlags) hooks() ([]firewall.Hook, error) {
	switch f.hook {
	case "forward":
		return []firewall.Hook{firewall.HookForward}, nil
	case "input":
		return []firewall.Hook{firewall.HookInput}, nil
	case "both":
		return []firewall.Hook{firewall.HookForward, firewall.HookInput}, nil
	}
	return nil, fmt.Errorf("--hook %q: want forward, input or both", f.hook)
}

// rules turns the policy's services into firewall rules.
func (f *runFlags) rules(p *policy.Policy) (firewall.Rules, error) {
	hooks, err := f.hooks()
	if err != nil {
		return firewall.Rules{}, err
	}
	first, last, err := f.queueRange(p)
	if err != nil {
		return firewall.Rules{}, err
	}
	open, err := f.failOpen(p)
	if err != nil {
		return firewall.Rules{}, err
	}
	r := firewall.Rules{Hooks: hooks, QueueFirst: first, QueueLast: last, CPUFanout: f.fanout, FailOpen: open, Mark: uint32(f.mark)}
	for _, s := range p.Services {
		for _, pfx := range s.Prefixes {
			for _, pr := range s.Ports {
				r.Services = append(r.Services, firewall.Service{Prefix: pfx, Ports: firewall.PortRange{Lo: pr.Lo, Hi: pr.Hi}})
			}
		}
	}
	return r, r.Validate()
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
	p, err := loadPolicy(f.policy)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	r, err := f.rules(p)
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
	f.ops.register(fs)
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
	// Caught from the start, so that a restart request during setup is
	// served once running rather than killing the process.
	restartReq := make(chan os.Signal, 1)
	signal.Notify(restartReq, restartSignal)
	inherited, herr := queue.HandoffFromEnv()
	d, err := newDaemon(&f, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitSetup
	}
	d.restartReq = restartReq
	d.setupHandoff(inherited, herr)
	if err := d.run(ctx); errors.Is(err, errRestart) {
		log.Info("re-executing for a graceful restart")
		err = reexec(d.handoffEnv())
		log.Error("graceful restart: cannot re-execute; exiting with the state saved and the rules in place", "err", err)
		return exitFailure
	} else if err != nil {
		log.Error("stopped", "err", err)
		if errors.Is(err, errSetup) {
			return exitSetup
		}
		return exitFailure
	}
	return exitOK
}

// errSetup marks errors that happen before the gateway protects anything.
var errSetup = errors.New("setup")

type daemon struct {
	flags   *runFlags
	log     *slog.Logger
	engine  *gateway.Engine
	rules   firewall.Rules
	qcfg    queue.Config
	queue   queue.Queue
	inj     *queue.RawInjector
	reloads struct{ ok, failed atomic.Uint64 } // written by the reload loop, read by stats and scrapes
	started time.Time

	restartReq chan os.Signal // graceful restart requests (SIGUSR2)
	restoring  *gateway.State // the state this process started from, if any
	restarting atomic.Bool    // stopping for a graceful restart

	ops *ops // observer, pcap sampler, rates and control socket (observe.go)
}

func newDaemon(f *runFlags, log *slog.Logger) (*daemon, error) {
	p, err := loadPolicy(f.policy)
	if err != nil {
		return nil, err
	}
	p = discoverAll(context.Background(), p, uint32(f.mark), log)
	r, err := f.rules(p)
	if err != nil {
		return nil, err
	}
	backend, err := queue.ParseBackend(f.backend)
	if err != nil {
		return nil, err
	}
	var secret []byte
	if p.Cookies.KeyFile != "" {
		if secret, err = cookies.ReadSecretFile(p.Cookies.KeyFile); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	st := loadState(f.stateDir, now, log)
	jar, err := restoredJar(cookies.Config{Period: p.Cookies.Period, Secret: secret}, st, now, log)
	if err != nil {
		return nil, err
	}
	eng, err := gateway.New(gateway.Config{Policy: p, Cookies: jar})
	if err != nil {
		return nil, err
	}
	if st != nil {
		n := eng.Restore(st, time.Now())
		log.Info("state restored", "flows", n, "saved_flows", st.Flows(), "saved", st.Saved, "cookie_keys", jar.Keys() == st.Keys)
	}
	open, _ := f.failOpen(p)
	var qs []uint16
	for q := int(r.QueueFirst); q <= int(r.QueueLast); q++ {
		qs = append(qs, uint16(q))
	}
	return &daemon{
		flags:     f,
		log:       log,
		engine:    eng,
		rules:     r,
		qcfg:      queue.Config{Backend: backend, Queues: qs, MaxQueueLen: p.Queue.MaxLen, FailOpen: open},
		restoring: st,
	}, nil
}

func (d *daemon) run(ctx context.Context) (err error) {
	d.started = time.Now()
	inj, err := queue.NewRawInjector(queue.InjectorConfig{Mark: uint32(d.flags.mark)})
	if err != nil {
		return fmt.Errorf("%w: raw sockets for injection: %v", errSetup, err)
	}
	d.inj = inj
	defer inj.Close()
	if d.ops, err = newOps(&d.flags.ops, d.engine); err != nil {
		return fmt.Errorf("%w: %v", errSetup, err)
	}
	q, err := queue.Open(d.qcfg, func() engine.Processor { return d.ops.processor(d.engine) }, inj)
	if err != nil {
		return fmt.Errorf("%w: %v", errSetup, err)
	}
	d.queue = q

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// The queues are bound before the rules send traffic to them, and the
	// rules are removed (below) after the queue workers stopped.
	g.Go(func() error { return q.Run(gctx) })
	if d.flags.metricsAddr != "" {
		reg := newMetrics(d)
		g.Go(func() error { return serveMetrics(gctx, d.flags.metricsAddr, reg, d.log) })
	}
	if err := d.ops.run(gctx, g, d); err != nil {
		cancel()
		g.Wait()
		return fmt.Errorf("%w: %v", errSetup, err)
	}

	fw := &firewall.Installer{Rules: d.rules}
	if err := waitBound(gctx, q, 10*time.Second); err != nil {
		cancel()
		if werr := g.Wait(); werr != nil {
			err = werr
		}
		return fmt.Errorf("%w: binding queues %d-%d: %v", errSetup, d.rules.QueueFirst, d.rules.QueueLast, err)
	}
	bound := time.Now()
	if err := fw.Install(gctx); err != nil {
		cancel()
		g.Wait()
		return fmt.Errorf("%w: installing firewall rules: %v", errSetup, err)
	}
	d.logRestartDone(bound)
	defer func() {
		if d.restarting.Load() {
			if err == nil {
				d.log.Info("firewall rules left in place for the next process")
			}
			return
		}
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer rcancel()
		if rerr := fw.Remove(rctx); rerr != nil {
			d.log.Error("removing firewall rules", "err", rerr)
			if err == nil {
				err = rerr
			}
		} else {
			d.log.Info("firewall rules removed")
		}
	}()
	d.log.Info("ready", "queues", fmt.Sprintf("%d-%d", d.rules.QueueFirst, d.rules.QueueLast),
		"backend", d.qcfg.Backend, "fail_open", d.qcfg.FailOpen, "hooks", d.flags.hook,
		"services", len(d.rules.Services), "policy", policyName(d.flags.policy))
	if d.flags.pidFile != "" {
		if err := os.WriteFile(d.flags.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			d.log.Warn("writing pid file", "err", err)
		} else {
			defer func() {
				if !d.restarting.Load() {
					os.Remove(d.flags.pidFile)
				}
			}()
		}
	}
	d.writeStats()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	g.Go(func() error {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case now := <-tick.C:
				d.engine.Expire(now)
				d.writeStats()
			case <-hup:
				d.reload()
			case <-d.restartReq:
				d.log.Info("graceful restart requested: draining the queues")
				d.restarting.Store(true)
				d.qcfg.Handoff.Keep()
				cancel()
				return nil
			}
		}
	})
	err = g.Wait()
	d.writeStats()
	if d.restarting.Load() && err == nil {
		return d.saveForRestart()
	}
	d.restarting.Store(false) // a failed run removes its rules as usual
	d.log.Info("stopping")
	return err
}

// waitBound waits until every queue is bound, Run failed, or the timeout.
func waitBound(ctx context.Context, q queue.Queue, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-q.Ready():
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return fmt.Errorf("not bound after %v", timeout)
	}
}

func policyName(path string) string {
	if path == "" {
		return "embedded default"
	}
	return path
}

// reload re-reads the policy file. A policy that does not validate, whose
// limits the engine cannot build, or whose firewall rules cannot be
// installed is refused, and the running one stays.
func (d *daemon) reload() {
	refuse := func(err error) {
		d.reloads.failed.Add(1)
		d.log.Error("policy reload refused; keeping the running policy", "err", err)
	}
	p, err := loadPolicy(d.flags.policy)
	if err != nil {
		refuse(err)
		return
	}
	p = discoverAll(context.Background(), p, uint32(d.flags.mark), d.log)
	r, err := d.rulesFor(p)
	if err != nil {
		refuse(err)
		return
	}
	old := d.engine.Policy()
	if err := d.engine.SetPolicy(p); err != nil {
		refuse(err)
		return
	}
	if !sameRules(r, d.rules) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := (&firewall.Installer{Rules: r}).Install(ctx)
		cancel()
		if err != nil {
			if rerr := d.engine.SetPolicy(old); rerr != nil {
				d.log.Error("restoring the running policy", "err", rerr)
			}
			refuse(err)
			return
		}
		d.rules = r
	}
	d.reloads.ok.Add(1)
	d.log.Info("policy reloaded", "policy", policyName(d.flags.policy), "services", len(p.Services),
		"changes", strings.Join(policy.Diff(old, p), "; "))
	if later := policy.NeedsRestart(old, p); len(later) > 0 {
		d.log.Warn("some changes take effect only after a restart", "changes", strings.Join(later, "; "))
	}
}

// rulesFor turns a reloaded policy into firewall rules for this process:
// the services come from p, but the queue numbers and the fail mode stay
// those the running process bound. A change of queue.numbers or queue.fail
// takes effect at the next (graceful) restart, as the reload's log says;
// rules naming queues nobody reads would drop, or pass, all guarded
// traffic.
func (d *daemon) rulesFor(p *policy.Policy) (firewall.Rules, error) {
	r, err := d.flags.rules(p)
	if err != nil {
		return r, err
	}
	r.QueueFirst, r.QueueLast, r.FailOpen = d.rules.QueueFirst, d.rules.QueueLast, d.rules.FailOpen
	return r, r.Validate()
}

func sameRules(a, b firewall.Rules) bool {
	x, _ := a.IPTables(firewall.IPv4)
	y, _ := b.IPTables(firewall.IPv4)
	x6, _ := a.IPTables(firewall.IPv6)
	y6, _ := b.IPTables(firewall.IPv6)
	return x == y && x6 == y6
}
