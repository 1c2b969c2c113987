package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/synwall/synwall/internal/policy"
	"github.com/synwall/synwall/internal/queue"
)

// Probing limits of discoverAll.
const (
	discoverTimeout  = 2 * time.Second // per probe
	discoverParallel = 8               // probes at once
)

// discoverAll probes the backend of every service with advertise.discover
// (in parallel, at most discoverParallel at once, each bounded by
// discoverTimeout) and returns a policy whose services advertise what their
// backends' SYN-ACKs said. A service whose probe fails keeps the policy's
// explicit values, and the failure is logged. p is not changed; when nothing
// was learned p itself is returned.
func discoverAll(ctx context.Context, p *policy.Policy, mark uint32, log *slog.Logger) *policy.Policy {
	np, _ := discover(ctx, p, mark, log)
	return np
}

// discover is discoverAll that also returns how many services' probes
// failed (in whole or for one address family).
func discover(ctx context.Context, p *policy.Policy, mark uint32, log *slog.Logger) (*policy.Policy, int) {
	type job struct {
		svc    *policy.Service
		target netip.AddrPort
		res    queue.ProbeResult
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
	g.SetLimit(discoverParallel)
	for _, j := range jobs {
		g.Go(func() error {
			j.res, j.err = queue.Probe(ctx, j.target, mark, discoverTimeout)
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
		learned[name] = a.Learn(learnedFrom(j.target, r))
		log.Info("discovered", "service", name, "target", j.target, "mss", r.MSS, "wscale", r.WScale,
			"sack", r.SACK, "ts", r.Timestamps, "ecn", ecnString(r), "window", r.Window)
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

// learnedFrom converts a probe of target into what the policy learns.
func learnedFrom(target netip.AddrPort, r queue.ProbeResult) policy.Learned {
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

func ecnString(r queue.ProbeResult) string {
	if !r.ECNAsked {
		return "not asked"
	}
	return fmt.Sprint(r.ECN)
}

func cmdDiscover(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("discover", "[--policy FILE]", `Probes the backend of every service with advertise.discover: connects to
it (the first address of the service, at its lowest port) with a marked
socket, reads what the server's SYN-ACK negotiated (MSS, window scale, SACK,
timestamps, ECN, window) and resets the connection. Prints each probe and the
advertise values that result. Changes nothing.
Exit status 0 when every probe succeeded, 1 when one failed.`, stderr)
	path := fs.String("policy", "", "policy `FILE` (YAML); the embedded default when empty")
	mark := fs.Uint("mark", uint(queue.DefaultMark), "firewall `mark` of the probe sockets (exempted by synwall's rules)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "synwall discover: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	p, err := loadPolicy(*path)
	if err != nil {
		fmt.Fprintf(stderr, "synwall discover: %v\n", err)
		return exitSetup
	}
	np, failed := discover(ctx, p, uint32(*mark), slog.New(slog.NewTextHandler(stdout, nil)))
	n := 0
	for _, s := range np.Services {
		if !s.Advertise.Discover {
			continue
		}
		n++
		a := s.Advertise
		ws := fmt.Sprint(a.WScale)
		if a.WScale == policy.NoWScale {
			ws = "none"
		}
		fmt.Fprintf(stdout, "service %q: mss %d, mss6 %d, wscale %s, sack %t, timestamps %t, ecn %t, window %d\n",
			s.Name, a.MSS4, a.MSS6, ws, a.SACK, a.Timestamps, a.ECN, a.Window)
	}
	if n == 0 {
		fmt.Fprintln(stdout, "no service has advertise.discover set")
	}
	if failed > 0 {
		return exitFailure
	}
	return exitOK
}
