package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/observe"
)

// ops is what synwall run keeps for operators: the observer wrapping every
// queue worker, the pcap sampler, and the rates behind synwall status.
type ops struct {
	pcap     PcapConfig
	interval time.Duration // of the log summaries; 0: none
	obs      *observe.Observer
	sampler  *observe.Sampler
	rates    rates
}

// newOps builds the observer and the pcap sampler.
func newOps(pcap PcapConfig, interval time.Duration, eng *gateway.Engine) (*ops, error) {
	o := &ops{pcap: pcap, interval: interval}
	if interval < 0 {
		return nil, fmt.Errorf("--log-summary %v: want a positive interval or 0", interval)
	}
	if pcap.File != "" {
		s, err := observe.NewSampler(observe.SamplerConfig{Path: pcap.File, Rate: pcap.Rate, MaxBytes: pcap.MaxBytes, Files: pcap.Files})
		if err != nil {
			return nil, fmt.Errorf("--pcap-*: %w", err)
		}
		o.sampler = s
	}
	obs, err := observe.New(observe.Config{
		Sampler: o.sampler,
		// Rate-limited SYNs by the policy's service index: looked up
		// again only for packets that were refused.
		ServiceOf: func(addr []byte, port uint16) int {
			if s := eng.Policy().LookupIP(addr, port); s != nil {
				return s.ID
			}
			return -1
		},
	}, time.Now())
	if err != nil {
		return nil, err
	}
	o.obs = obs
	return o, nil
}

// processor returns a queue worker's processor: an engine worker wrapped
// by the observer.
func (o *ops) processor(eng *gateway.Engine) engine.Processor {
	w, err := o.obs.Wrap(eng.NewWorker())
	if err != nil { // only for a nil processor
		panic(err)
	}
	return w
}

// run starts the operator tasks in g: the pcap writer, the window
// summaries, the rates and the control socket (Config.ControlSocket).
func (o *ops) run(ctx context.Context, g *errgroup.Group, d *Daemon) error {
	if o.sampler != nil {
		if err := os.MkdirAll(filepath.Dir(o.pcap.File), 0o750); err != nil {
			return fmt.Errorf("--pcap-file: %w", err)
		}
		// The first file is created here, so that a bad path stops the
		// start rather than a running gateway.
		if err := o.sampler.Open(); err != nil {
			return fmt.Errorf("--pcap-file: %w", err)
		}
		g.Go(func() error {
			if err := o.sampler.Run(ctx); err != nil {
				d.log.Error("pcap sampling stopped", "err", err)
			}
			return nil
		})
		d.log.Info("sampling dropped packets", "file", o.pcap.File, "rate", o.sampler.Config().Rate,
			"max_bytes", o.sampler.Config().MaxBytes, "files", o.sampler.Config().Files)
	}
	interval := o.interval
	log := d.log
	if interval == 0 {
		interval, log = 10*time.Second, nil // windows still end, for status
	}
	g.Go(func() error {
		o.obs.Summarize(ctx, interval, time.Now, log)
		return nil
	})
	o.rates.add(time.Now(), d.engine.Stats())
	g.Go(func() error {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case now := <-t.C:
				o.rates.add(now, d.engine.Stats())
			}
		}
	})
	if sock := d.cfg.ControlSocket; sock != "" {
		// Another synwall on the socket (a second instance, a lab) costs
		// this one its status, not its start: protection comes first.
		switch ln, err := listenControl(sock); {
		case errors.Is(err, errSocketBusy):
			d.log.Warn("control socket in use; synwall status will not reach this daemon", "socket", sock)
		case err != nil:
			return fmt.Errorf("--control-socket: %w", err)
		default:
			g.Go(func() error { return serveControl(ctx, ln, d) })
		}
	}
	return nil
}

// counts are the engine counters a rate is computed from.
type counts struct {
	t          time.Time
	packets    uint64
	answered   uint64
	handshakes uint64
	drops      [observe.NumClasses]uint64
}

func countsOf(now time.Time, s gateway.Stats) counts {
	c := counts{t: now, answered: s.Events[engine.EventSynAnswered], handshakes: s.Events[engine.EventHandshake]}
	for _, n := range s.Events {
		c.packets += n
	}
	for r := header.OK + 1; r < header.NumReasons; r++ {
		c.drops[observe.Class(r)] = s.Drops[r]
	}
	c.drops[observe.ClassPolicyDrop] = s.Events[engine.EventPolicyDrop]
	c.drops[observe.ClassRateLimited] = s.Events[engine.EventSynLimited]
	c.drops[observe.ClassBadCookie] = s.Events[engine.EventBadCookie]
	c.drops[observe.ClassExpiredCookie] = s.Events[engine.EventExpiredCookie]
	c.drops[observe.ClassNoFlow] = s.Events[engine.EventUnknown]
	return c
}

// rates keeps the last 11 one-second samples of the engine's counters.
type rates struct {
	mu   sync.Mutex
	ring [11]counts
	n    int // samples taken
}

func (r *rates) add(now time.Time, s gateway.Stats) {
	r.mu.Lock()
	r.ring[r.n%len(r.ring)] = countsOf(now, s)
	r.n++
	r.mu.Unlock()
}

// Rate is per-second rates over one span.
type Rate struct {
	Seconds    float64            `json:"seconds"`
	Packets    float64            `json:"packets"`
	Answered   float64            `json:"syn_answered"`
	Handshakes float64            `json:"handshakes"`
	Drops      map[string]float64 `json:"drops"` // classes with drops only
}

// over returns the rate over the last `back` samples (fewer when the
// daemon is younger), and false before two samples exist.
func (r *rates) over(back int) (Rate, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n < 2 {
		return Rate{}, false
	}
	back = min(back, r.n-1, len(r.ring)-1)
	a, b := r.ring[(r.n-1-back)%len(r.ring)], r.ring[(r.n-1)%len(r.ring)]
	dt := b.t.Sub(a.t).Seconds()
	if dt <= 0 {
		return Rate{}, false
	}
	per := func(x, y uint64) float64 { return float64(y-x) / dt }
	out := Rate{Seconds: dt, Packets: per(a.packets, b.packets), Answered: per(a.answered, b.answered),
		Handshakes: per(a.handshakes, b.handshakes), Drops: map[string]float64{}}
	for c := range b.drops {
		if b.drops[c] > a.drops[c] {
			out.Drops[observe.Class(c).String()] = per(a.drops[c], b.drops[c])
		}
	}
	return out, true
}
