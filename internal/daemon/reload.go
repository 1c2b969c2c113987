package daemon

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/synwall/synwall/internal/firewall"
	"github.com/synwall/synwall/internal/policy"
)

// reloadLoop runs a reload for every request on reqs until ctx ends. It is
// a task of its own: a reload probes backends (advertise.discover, up to
// probe.DiscoverTimeout each) and runs iptables-restore, and neither may
// delay flow expiry or the stats file. A request that arrives during a
// reload is served after it (signal.Notify keeps one pending).
func (d *Daemon) reloadLoop(ctx context.Context, reqs <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-reqs:
			d.reload(ctx)
		}
	}
}

// reload re-reads the policy file. A policy that does not validate, whose
// limits the engine cannot build, or whose firewall rules cannot be
// installed is refused, and the running one stays. A reload that ctx ends
// while it probes is abandoned (the daemon is stopping).
func (d *Daemon) reload(ctx context.Context) {
	refuse := func(err error) {
		d.reloads.failed.Add(1)
		d.log.Error("policy reload refused; keeping the running policy", "err", err)
	}
	p, err := LoadPolicy(d.cfg.PolicyFile)
	if err != nil {
		refuse(err)
		return
	}
	p = d.discover(ctx, p)
	if ctx.Err() != nil {
		d.log.Warn("policy reload abandoned: the daemon is stopping")
		return
	}
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
	d.setStagePolicy(p)
	d.reloads.ok.Add(1)
	d.log.Info("policy reloaded", "policy", policyName(d.cfg.PolicyFile), "services", len(p.Services),
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
func (d *Daemon) rulesFor(p *policy.Policy) (firewall.Rules, error) {
	r, err := d.cfg.Traffic.Rules(p)
	if err != nil {
		return r, err
	}
	r.QueueFirst, r.QueueLast, r.SYNQueues, r.FailOpen = d.rules.QueueFirst, d.rules.QueueLast, d.rules.SYNQueues, d.rules.FailOpen
	return r, r.Validate()
}

func sameRules(a, b firewall.Rules) bool {
	x, _ := a.IPTables(firewall.IPv4)
	y, _ := b.IPTables(firewall.IPv4)
	x6, _ := a.IPTables(firewall.IPv6)
	y6, _ := b.IPTables(firewall.IPv6)
	return x == y && x6 == y6
}
