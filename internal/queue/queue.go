package queue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/synwall/synwall/internal/firewall"

	"github.com/synwall/synwall/internal/engine"
)

// Injector sends complete IP packets (checksums set) to the network. Send
// must be safe for concurrent use; it must not keep pkts after it returns.
type Injector interface {
	Send(pkts [][]byte) (sent int, err error)
}

// Queue is a set of running queue workers.
type Queue interface {
	// Run binds the queues and processes packets until ctx is cancelled or
	// a worker fails. It unbinds the queues before it returns. A cancelled
	// context is a clean stop and returns nil.
	Run(ctx context.Context) error
	// Stats returns a snapshot of the counters of every queue, in the
	// order of Config.Queues.
	Stats() []Stats
	// Ready is closed once every queue is bound, so that firewall rules
	// steering traffic to the queues can go in without a packet meeting an
	// unbound queue.
	Ready() <-chan struct{}
}

// Backend selects the receive implementation. The zero value is invalid;
// Config.Backend left zero means BackendRaw.
type Backend uint8

const (
	BackendInvalid Backend = iota
	BackendRaw             // hand-written zero-allocation nfnetlink_queue loop (default)
	BackendNFQ             // github.com/florianl/go-nfqueue (reference)
)

// String returns the command-line spelling of b.
func (b Backend) String() string {
	switch b {
	case BackendRaw:
		return "raw"
	case BackendNFQ:
		return "nfq"
	}
	return "invalid"
}

// ParseBackend is the inverse of Backend.String.
func ParseBackend(s string) (Backend, error) {
	switch s {
	case "raw":
		return BackendRaw, nil
	case "nfq":
		return BackendNFQ, nil
	}
	return BackendInvalid, fmt.Errorf("queue: unknown backend %q (want raw or nfq)", s)
}

// Defaults used by Config.withDefaults.
const (
	DefaultMaxQueueLen   = 4096
	DefaultRcvBuf        = 32 << 20
	DefaultFlushInterval = time.Millisecond
	DefaultMark          = firewall.DefaultMark // marks injected packets; the rules exempt them
)

// Config describes the queue workers. The zero value of each field means its
// default.
type Config struct {
	Backend Backend  // BackendRaw when zero
	Queues  []uint16 // queue numbers, one worker each; at least one
	// MaxQueueLen is the kernel queue length per queue (NFQA_CFG_QUEUE_MAXLEN).
	MaxQueueLen uint32
	// FailOpen binds with NFQA_CFG_F_FAIL_OPEN: the kernel accepts what the
	// full queue cannot take. See the package documentation.
	FailOpen bool
	// RcvBuf is the netlink receive buffer in bytes (SO_RCVBUFFORCE, falling
	// back to SO_RCVBUF).
	RcvBuf int
	// FlushInterval bounds how long a verdict may wait in a batch.
	FlushInterval time.Duration
	// NetNS, when non-zero, is an open file descriptor of the network
	// namespace to bind the queues in (the process stays where it is).
	NetNS int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Handoff, when non-nil, hands the bound queue sockets of BackendRaw
	// to the next process of a graceful restart and adopts those handed
	// over by the previous one. See Handoff.
	Handoff *Handoff
}

// ErrNoQueues is returned by Open for a Config without queue numbers.
var ErrNoQueues = errors.New("queue: no queue numbers configured")

func (c Config) withDefaults() (Config, error) {
	if len(c.Queues) == 0 {
		return c, ErrNoQueues
	}
	seen := make(map[uint16]bool, len(c.Queues))
	for _, q := range c.Queues {
		if seen[q] {
			return c, fmt.Errorf("queue: queue number %d configured twice", q)
		}
		seen[q] = true
	}
	c.Queues = append([]uint16(nil), c.Queues...)
	switch c.Backend {
	case BackendInvalid:
		c.Backend = BackendRaw
	case BackendRaw, BackendNFQ:
	default:
		return c, fmt.Errorf("queue: invalid backend %d", c.Backend)
	}
	if c.MaxQueueLen == 0 {
		c.MaxQueueLen = DefaultMaxQueueLen
	}
	if c.RcvBuf <= 0 {
		c.RcvBuf = DefaultRcvBuf
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Open validates cfg and prepares one worker per queue number, each with a
// Processor from newProcessor. inj may be nil when the processors never ask
// for injection (injected packets are then counted as errors). Nothing is
// bound until Run.
func Open(cfg Config, newProcessor func() engine.Processor, inj Injector) (Queue, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if newProcessor == nil {
		return nil, errors.New("queue: nil processor factory")
	}
	if inj == nil {
		inj = noInjector{}
	}
	return open(cfg, newProcessor, inj)
}

// ErrNoInjector is counted when a processor asks for injection and no
// Injector was given.
var ErrNoInjector = errors.New("queue: no injector configured")

type noInjector struct{}

func (noInjector) Send(pkts [][]byte) (int, error) { return 0, ErrNoInjector }

// Stats are the counters of one queue.
type Stats struct {
	Queue           uint16
	Packets         uint64 // packets received from the kernel
	Accepted        uint64 // ACCEPT verdicts without a payload
	AcceptedAltered uint64 // ACCEPT verdicts with an altered packet
	Dropped         uint64 // DROP verdicts
	VerdictMsgs     uint64 // single verdict messages sent
	Batches         uint64 // batch verdict messages sent
	Sends           uint64 // write/sendmsg calls carrying verdicts
	Injected        uint64 // packets sent through the injector
	InjectErrors    uint64 // packets the injector failed to send
	ENOBUFS         uint64 // receive buffer overruns reported by the kernel
	ParseErrors     uint64 // malformed messages from the kernel
	KernelErrors    uint64 // error replies from the kernel (e.g. unknown packet id)
	Truncated       uint64 // packets larger than the copy range, dropped
	BadVerdicts     uint64 // Results with an invalid verdict, dropped
}

// counters is the live form of Stats, updated by one worker and read by
// anyone.
type counters struct {
	queue                                                   uint16
	packets, accepted, acceptedAltered, dropped             atomic.Uint64
	verdictMsgs, batches, sends, injected, injectErrors     atomic.Uint64
	enobufs, parseErrors, kernelErrors, truncated, badVerds atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Queue:           c.queue,
		Packets:         c.packets.Load(),
		Accepted:        c.accepted.Load(),
		AcceptedAltered: c.acceptedAltered.Load(),
		Dropped:         c.dropped.Load(),
		VerdictMsgs:     c.verdictMsgs.Load(),
		Batches:         c.batches.Load(),
		Sends:           c.sends.Load(),
		Injected:        c.injected.Load(),
		InjectErrors:    c.injectErrors.Load(),
		ENOBUFS:         c.enobufs.Load(),
		ParseErrors:     c.parseErrors.Load(),
		KernelErrors:    c.kernelErrors.Load(),
		Truncated:       c.truncated.Load(),
		BadVerdicts:     c.badVerds.Load(),
	}
}
