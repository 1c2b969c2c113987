package probe

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/synwall/synwall/internal/policy"
)

// Discover's limits.
const (
	DiscoverTimeout  = 2 * time.Second // per probe
	DiscoverParallel = 8               // probes at once
)

// Func probes one backend; Probe is the real one (tests pass others).
type Func func(ctx context.Context, target netip.AddrPort, mark uint32, timeout time.Duration) (Result, error)

// Discoverer probes the backends of the services with advertise.discover.
type Discoverer struct {
	Mark  uint32       // SO_MARK of the probe sockets (the rules exempt it)
	Log   *slog.Logger // one line per probe and per failure; required
	Probe Func         // Probe when nil
}

// Discover probes the backend of every service of p with
// advertise.discover (in parallel, at most DiscoverParallel at once, each
// bounded by DiscoverTimeout; targets from policy.ProbeTargets) and returns
// a policy whose services advertise what their backends' SYN-ACKs said
// (policy.Advertise.Learn), with how many services' probes failed, in
// whole or for one address family. A service whose probe fails keeps the
// policy's explicit values, and the failure is logged. p is not changed;
// when nothing was learned p itself is returned.
func (d Discoverer) Discover(ctx context.Context, p *policy.Policy) (*policy.Policy, int) {
	probe := d.Probe
	if probe == nil {
		probe = Probe
	}
	log := d.Log
	type job struct {
		svc    *policy.Service
		target netip.AddrPort
		res    Result
		err    error
	}
	var jobs []*job
	failed := map[string]bool{}
	for _, s := range p.Services {
		if !s.Advertise.Discover {
			continue
		}
		targets, err := policy.ProbeTargets(s)
		if err != nil {
			log.Warn("discover failed; keeping the policy's advertise values", "service", s.Name, "err", err)
			failed[s.Name] = true
			continue
		}
		for _, t := range targets {
			jobs = append(jobs, &job{svc: s, target: t})
		}
	}
	if len(jobs) == 0 {
		return p, len(failed)
	}
	var g errgroup.Group
	g.SetLimit(DiscoverParallel)
	for _, j := range jobs {
		g.Go(func() error {
			j.res, j.err = probe(ctx, j.target, d.Mark, DiscoverTimeout)
			return nil
		})
	}
	_ = g.Wait()

	learned := map[string]policy.Advertise{}
	for _, j := range jobs {
		name := j.svc.Name
		if j.err != nil {
			log.Warn("discover failed; keeping the policy's advertise values", "service", name, "target", j.target, "err", j.err)
			failed[name] = true
			continue
		}
		r := j.res
		a, ok := learned[name]
		if !ok {
			a = j.svc.Advertise
		}
		learned[name] = a.Learn(r.Learned(j.target))
		log.Info("discovered", "service", name, "target", j.target, "mss", r.MSS, "wscale", r.WScale,
			"sack", r.SACK, "ts", r.Timestamps, "ecn", r.ecnString(), "window", r.Window)
	}
	if len(learned) == 0 {
		return p, len(failed)
	}
	np, err := p.WithAdvertises(learned)
	if err != nil {
		log.Error("discovered values rejected; keeping the policy's advertise values", "err", err)
		return p, len(learned) + len(failed)
	}
	return np, len(failed)
}

// Learned converts a probe of target into what the policy learns.
func (r Result) Learned(target netip.AddrPort) policy.Learned {
	return policy.Learned{
		IPv6:       target.Addr().Unmap().Is6(),
		MSS:        r.MSS,
		WScale:     r.WScale,
		SACK:       r.SACK,
		Timestamps: r.Timestamps,
		ECN:        r.ECN,
		ECNKnown:   r.ECNAsked,
		Window:     r.Window,
	}
}

func (r Result) ecnString() string {
	if !r.ECNAsked {
		return "not asked"
	}
	return fmt.Sprint(r.ECN)
}
