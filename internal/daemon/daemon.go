package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/firewall"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/policy"
	"github.com/synwall/synwall/internal/probe"
	"github.com/synwall/synwall/internal/queue"
)

// Defaults of the paths synwall run uses (the systemd unit's
// RuntimeDirectory is /run/synwall).
const (
	// DefaultPidFile is where synwall run writes its PID and where
	// synwall reload and synwall restart look for it.
	DefaultPidFile = "/run/synwall/synwall.pid"
	// DefaultStateDir is where the state file of a graceful restart is
	// kept.
	DefaultStateDir = "/run/synwall"
	// DefaultControlSocket is where synwall run serves its status.
	DefaultControlSocket = "/run/synwall/control.sock"
)

// Config is what the daemon is given: synwall run's flags, the logger and
// the metrics registry. The zero value of a field means off or empty
// unless its comment says otherwise.
type Config struct {
	PolicyFile string  // policy file (YAML); the embedded default when empty
	Traffic    Traffic // how guarded traffic reaches the queues
	Backend    queue.Backend

	StatsFile string // counters as JSON, rewritten every second
	PidFile   string // the daemon's PID, written when ready
	StateDir  string // state file of a graceful restart; empty disables restoring
	// Handoff hands the bound queue sockets to the next process on a
	// graceful restart (raw backend). Inherited (or InheritedErr) are the
	// sockets the previous process handed to this one
	// (queue.HandoffFromEnv).
	Handoff      bool
	Inherited    *queue.Handoff
	InheritedErr error

	ControlSocket string        // unix socket of the status; empty disables
	Pcap          PcapConfig    // sample of dropped packets; off without File
	LogSummary    time.Duration // interval of the drop summaries in the log; 0 disables

	// MetricsAddr serves Registry at http://MetricsAddr/metrics; off when
	// empty. The daemon registers its collector in Registry (a registry of
	// its own when nil).
	MetricsAddr string
	Registry    *prometheus.Registry

	// SynStage configures the BPF SYN stage; off when its Mode is empty.
	SynStage SynStageConfig

	Log     *slog.Logger // required
	Version string       // reported in the status and synwall_build_info

	// Reload and Restart deliver the requests for a policy reload (SIGHUP)
	// and a graceful restart (SIGUSR2); nil channels deliver none.
	Reload  <-chan os.Signal
	Restart <-chan os.Signal
}

// PcapConfig is where and how much of the dropped packets is sampled.
type PcapConfig struct {
	File     string
	Rate     float64 // packets per second
	MaxBytes int64   // rotate at this size
	Files    int     // files kept
}

// Traffic says how guarded traffic is steered into the queues: the flags
// synwall run and synwall rules share.
type Traffic struct {
	Hooks     []firewall.Hook // at least one
	Queues    *QueueRange     // nil: the policy's queue.numbers
	FailOpen  *bool           // nil: the policy's queue.fail
	CPUFanout bool
	Mark      uint32 // of what synwall sends itself; firewall.DefaultMark when 0
}

// QueueRange is a contiguous range of NFQUEUE numbers, First <= Last.
type QueueRange struct{ First, Last uint16 }

// queueRange returns the queue numbers from the override or the policy.
// The firewall balances over a contiguous range, so the policy's numbers
// must be one.
func (t Traffic) queueRange(p *policy.Policy) (first, last uint16, err error) {
	if t.Queues != nil {
		if t.Queues.First > t.Queues.Last {
			return 0, 0, fmt.Errorf("queues %d-%d: want A-B with A <= B", t.Queues.First, t.Queues.Last)
		}
		return t.Queues.First, t.Queues.Last, nil
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

// synQueues is how many of the queues first..last take the clients' SYNs:
// the policy's queue.syn_queues, or half of an overriding --queues range.
func (t Traffic) synQueues(p *policy.Policy, first, last uint16) uint16 {
	if t.Queues != nil {
		return uint16(policy.ResolveSYNQueues(policy.SYNQueuesHalf, int(last)-int(first)+1))
	}
	return uint16(p.Queue.SYNQueues)
}

func (t Traffic) failOpen(p *policy.Policy) bool {
	if t.FailOpen != nil {
		return *t.FailOpen
	}
	return p.Queue.FailOpen
}

func (t Traffic) mark() uint32 {
	if t.Mark == 0 {
		return firewall.DefaultMark
	}
	return t.Mark
}

// Rules turns the policy's services into firewall rules.
func (t Traffic) Rules(p *policy.Policy) (firewall.Rules, error) {
	first, last, err := t.queueRange(p)
	if err != nil {
		return firewall.Rules{}, err
	}
	r := firewall.Rules{Hooks: t.Hooks, QueueFirst: first, QueueLast: last, SYNQueues: t.synQueues(p, first, last), CPUFanout: t.CPUFanout, FailOpen: t.failOpen(p), Mark: t.mark()}
	for _, s := range p.Services {
		for _, pfx := range s.Prefixes {
			for _, pr := range s.Ports {
				r.Services = append(r.Services, firewall.Service{Prefix: pfx, Ports: firewall.PortRange{Lo: pr.Lo, Hi: pr.Hi}})
			}
		}
	}
	return r, r.Validate()
}

// LoadPolicy reads path, or returns the embedded default when path is empty.
func LoadPolicy(path string) (*policy.Policy, error) {
	if path == "" {
		return policy.Default()
	}
	return policy.Load(path)
}

// ErrSetup marks the errors of Run that happen before the gateway protects
// anything (privileges, queue binding, firewall rules, ...).
var ErrSetup = errors.New("setup")

// Daemon is synwall run: the engine fed by the kernel queues, the firewall
// rules, reloads, graceful restarts and what operators see (metrics,
// status, stats file, log summaries).
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	engine  *gateway.Engine
	rules   firewall.Rules // rewritten by reloads, on the reload task only
	qcfg    queue.Config   // fixed before the queue workers start
	queue   queue.Queue
	inj     *queue.RawInjector
	reloads struct{ ok, failed atomic.Uint64 } // written by the reload task, read by stats and scrapes
	started time.Time
	ready   chan struct{}

	restoring  *gateway.State // the state this process started from, if any
	restarting atomic.Bool    // stopping for a graceful restart

	ops *ops // observer, pcap sampler, rates (ops.go)

	syn *synStage // the BPF SYN stage, or why it is off (synstage.go)

	// Seams for tests: the backend prober of discover, the clock of flow
	// expiry, and the housekeeping period.
	probe  probe.Func
	now    func() time.Time
	period time.Duration
}

// New loads the policy, probes the backends of services with
// advertise.discover, restores the state of a graceful restart (if
// Config.StateDir holds one) and builds the engine. It binds nothing:
// that is Run's.
func New(cfg Config) (*Daemon, error) {
	return newDaemon(cfg, nil)
}

func newDaemon(cfg Config, prober probe.Func) (_ *Daemon, err error) {
	if cfg.Log == nil {
		return nil, errors.New("daemon: Config.Log is nil")
	}
	if len(cfg.Traffic.Hooks) == 0 {
		cfg.Traffic.Hooks = []firewall.Hook{firewall.HookForward}
	}
	if cfg.LogSummary < 0 {
		return nil, fmt.Errorf("--log-summary %v: want a positive interval or 0", cfg.LogSummary)
	}
	log := cfg.Log
	d := &Daemon{cfg: cfg, log: log, ready: make(chan struct{}), probe: prober, now: time.Now, period: time.Second}
	defer func() {
		if err != nil && d.syn != nil {
			d.syn.off("not started")
		}
	}()
	p, err := LoadPolicy(cfg.PolicyFile)
	if err != nil {
		return nil, err
	}
	p = d.discover(context.Background(), p)
	r, err := cfg.Traffic.Rules(p)
	if err != nil {
		return nil, err
	}
	backend := cfg.Backend
	if backend == queue.BackendInvalid {
		backend = queue.BackendRaw
	}
	var secret []byte
	if p.Cookies.KeyFile != "" {
		if secret, err = cookies.ReadSecretFile(p.Cookies.KeyFile); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	st := loadState(cfg.StateDir, now, log)
	jar, err := restoredJar(cookies.Config{Period: p.Cookies.Period, Secret: secret}, st, now, log)
	if err != nil {
		return nil, err
	}
	// The stage before the engine: the engine keeps its SYN cache in the
	// stage's maps.
	if d.syn, err = d.loadSynStage(p); err != nil {
		return nil, fmt.Errorf("SYN stage: %w", err)
	}
	mem, err := d.syn.cacheMemory()
	if err != nil {
		return nil, fmt.Errorf("SYN stage: %w", err)
	}
	eng, err := gateway.New(gateway.Config{Policy: p, Cookies: jar, CacheMemory: mem, FlowSeed: d.syn.cacheSeed(),
		FlowTagMemory: d.syn.flowTagMemory(), SynAckLimiter: d.syn.synAckBudget()})
	if err != nil {
		return nil, err
	}
	if err := d.syn.start(eng, p, now, mem != nil); err != nil {
		return nil, fmt.Errorf("SYN stage: %w", err)
	}
	if st != nil {
		n := eng.Restore(st, time.Now())
		log.Info("state restored", "flows", n, "saved_flows", st.Flows(), "saved", st.Saved, "cookie_keys", jar.Keys() == st.Keys)
	}
	var qs []uint16
	for q := int(r.QueueFirst); q <= int(r.QueueLast); q++ {
		qs = append(qs, uint16(q))
	}
	d.engine, d.rules, d.restoring = eng, r, st
	d.qcfg = queue.Config{Backend: backend, Queues: qs, MaxQueueLen: p.Queue.MaxLen, FailOpen: r.FailOpen}
	if d.ops, err = newOps(cfg.Pcap, cfg.LogSummary, eng); err != nil {
		return nil, err
	}
	if cfg.Registry == nil {
		d.cfg.Registry = prometheus.NewRegistry()
	}
	if err := d.cfg.Registry.Register(newCollector(d)); err != nil {
		return nil, fmt.Errorf("daemon: metrics: %w", err)
	}
	d.setupHandoff(cfg.Inherited, cfg.InheritedErr)
	return d, nil
}

// discover probes the backends of p's services with advertise.discover.
func (d *Daemon) discover(ctx context.Context, p *policy.Policy) *policy.Policy {
	np, _ := probe.Discoverer{Mark: d.cfg.Traffic.mark(), Log: d.log, Probe: d.probe}.Discover(ctx, p)
	return np
}

// Ready is closed once the queues are bound, the rules installed and the
// pid file written.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Run binds the queues, installs the firewall rules and runs the gateway
// until ctx ends (then it unbinds the queues, removes the rules and
// returns nil) or a graceful restart is requested (then it saves the state,
// leaves the rules and returns ErrRestart: the caller calls Reexec). Errors
// before the gateway protects anything wrap ErrSetup. Run is called once.
func (d *Daemon) Run(ctx context.Context) (err error) {
	d.started = time.Now()
	inj, err := queue.NewRawInjector(queue.InjectorConfig{Mark: d.cfg.Traffic.mark()})
	if err != nil {
		return fmt.Errorf("%w: raw sockets for injection: %v", ErrSetup, err)
	}
	d.inj = inj
	defer inj.Close()
	q, err := queue.Open(d.qcfg, func() engine.Processor { return d.ops.processor(d.engine) }, inj)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSetup, err)
	}
	d.queue = q

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// The queues are bound before the rules send traffic to them, and the
	// rules are removed (below) after the queue workers stopped.
	g.Go(func() error { return q.Run(gctx) })
	if d.cfg.MetricsAddr != "" {
		g.Go(func() error { return serveMetrics(gctx, d.cfg.MetricsAddr, d.cfg.Registry, d.log) })
	}
	if err := d.ops.run(gctx, g, d); err != nil {
		cancel()
		g.Wait()
		return fmt.Errorf("%w: %v", ErrSetup, err)
	}

	fw := &firewall.Installer{Rules: d.rules}
	if err := waitBound(gctx, q, 10*time.Second); err != nil {
		cancel()
		if werr := g.Wait(); werr != nil {
			err = werr
		}
		return fmt.Errorf("%w: binding queues %d-%d: %v", ErrSetup, d.rules.QueueFirst, d.rules.QueueLast, err)
	}
	bound := time.Now()
	if err := fw.Install(gctx); err != nil {
		cancel()
		g.Wait()
		return fmt.Errorf("%w: installing firewall rules: %v", ErrSetup, err)
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
	// The stage once the rules are in place: the handshake ACKs of the
	// SYNs it answers go to the queues.
	if err := d.syn.attach(); err != nil {
		return fmt.Errorf("%w: SYN stage: %v", ErrSetup, err)
	}
	defer d.closeStage()
	d.startStageSampling(gctx, g)
	d.logStage()
	stageMode, _ := d.syn.describe()
	d.log.Info("ready", "syn_stage", stageMode, "queues", fmt.Sprintf("%d-%d", d.rules.QueueFirst, d.rules.QueueLast),
		"backend", d.qcfg.Backend, "fail_open", d.qcfg.FailOpen, "hooks", hooksName(d.cfg.Traffic.Hooks),
		"services", len(d.rules.Services), "policy", policyName(d.cfg.PolicyFile))
	if d.cfg.PidFile != "" {
		if err := os.WriteFile(d.cfg.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			d.log.Warn("writing pid file", "err", err)
		} else {
			defer func() {
				if !d.restarting.Load() {
					os.Remove(d.cfg.PidFile)
				}
			}()
		}
	}
	d.writeStats()
	close(d.ready)

	d.startTasks(gctx, g, cancel)
	err = g.Wait()
	d.writeStats()
	if d.restarting.Load() && err == nil {
		return d.saveForRestart()
	}
	d.restarting.Store(false) // a failed run removes its rules as usual
	d.log.Info("stopping")
	return err
}

// startTasks starts, in g, the tasks of a running daemon: flow expiry and
// the stats file, reloads (Config.Reload) and the wait for a graceful
// restart (Config.Restart), which calls stop. They are separate tasks so
// that a reload, whose probes take up to probe.DiscoverTimeout each, never
// delays expiry or the counters.
func (d *Daemon) startTasks(ctx context.Context, g *errgroup.Group, stop context.CancelFunc) {
	g.Go(func() error { d.housekeep(ctx); return nil })
	g.Go(func() error { d.reloadLoop(ctx, d.cfg.Reload); return nil })
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-d.cfg.Restart:
			d.log.Info("graceful restart requested: draining the queues")
			d.restarting.Store(true)
			d.qcfg.Handoff.Keep()
			stop()
		}
		return nil
	})
}

// housekeep expires idle flows and rewrites the stats file every period
// until ctx ends.
func (d *Daemon) housekeep(ctx context.Context) {
	tick := time.NewTicker(d.period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			d.rotateStage(time.Now())
			if d.inj != nil {
				// Both ends of a flow expired for idleness are told.
				d.engine.ExpireAndTell(d.now(), func(pkts [][]byte) { d.inj.Send(pkts) })
			} else {
				d.engine.Expire(d.now())
			}
			d.writeStats()
		}
	}
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

// ours reports whether q is one of the queues the daemon binds.
func (d *Daemon) ours(q uint16) bool {
	for _, n := range d.qcfg.Queues {
		if n == q {
			return true
		}
	}
	return false
}

func policyName(path string) string {
	if path == "" {
		return "embedded default"
	}
	return path
}

// hooksName is the --hook spelling of hooks: forward, input or both.
func hooksName(hooks []firewall.Hook) string {
	if len(hooks) == 2 {
		return "both"
	}
	if len(hooks) == 1 {
		return hooks[0].String()
	}
	return "none"
}
