package queue

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/synwall/synwall/internal/engine"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// worker runs one queue number until its context ends.
type worker interface {
	// run binds the queue, calls bound once it is bound, and processes
	// packets until ctx ends.
	run(ctx context.Context, bound func()) error
}

// multi runs one worker per queue number.
type multi struct {
	workers  []worker
	counters []*counters
	ready    chan struct{}
	pending  sync.WaitGroup
}

var _ Queue = (*multi)(nil)

func open(cfg Config, newProcessor func() engine.Processor, inj Injector) (Queue, error) {
	m := &multi{ready: make(chan struct{})}
	for _, q := range cfg.Queues {
		c := &counters{queue: q}
		proc := newProcessor()
		if proc == nil {
			return nil, errors.New("queue: processor factory returned nil")
		}
		m.counters = append(m.counters, c)
		switch cfg.Backend {
		case BackendRaw:
			m.workers = append(m.workers, &rawWorker{cfg: cfg, queue: q, proc: proc, inj: inj, c: c})
		case BackendNFQ:
			m.workers = append(m.workers, &nfqWorker{cfg: cfg, queue: q, proc: proc, inj: inj, c: c})
		}
	}
	return m, nil
}

func (m *multi) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	m.pending.Add(len(m.workers))
	go func() {
		m.pending.Wait()
		close(m.ready)
	}()
	for _, w := range m.workers {
		g.Go(func() error {
			var once sync.Once
			return w.run(gctx, func() { once.Do(m.pending.Done) })
		})
	}
	err := g.Wait()
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (m *multi) Ready() <-chan struct{} { return m.ready }

func (m *multi) Stats() []Stats {
	s := make([]Stats, len(m.counters))
	for i, c := range m.counters {
		s[i] = c.snapshot()
	}
	return s
}

// inNetNS runs f on an OS thread that has entered the network namespace
// open as nsfd (f runs directly when nsfd is 0). Sockets f creates belong to
// that namespace for their lifetime. The thread is returned to the pool only
// when it is back in its own namespace; otherwise it ends with its
// goroutine.
func inNetNS(nsfd int, f func() error) error {
	if nsfd == 0 {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("queue: open own network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("queue: enter network namespace: %w", err)
			return
		}
		ferr := f()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}
