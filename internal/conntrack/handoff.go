package conntrack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of Config.
const (
	// DefaultMark is the conntrack mark of synwall's entries ("SW" in the
	// upper half), matched under DefaultMarkMask, so the lower half stays
	// free for other users of the mark.
	DefaultMark     = 0x53570000
	DefaultMarkMask = 0xffff0000
	// DefaultTimeout is the lifetime of a new entry until its first packet;
	// from then on the kernel applies its own per-state timeouts
	// (nf_conntrack_tcp_timeout_established, five days by default). It is
	// that same five days, so a connection that stays silent right after
	// its hand-off is kept as long as one the kernel had tracked itself.
	DefaultTimeout  = 5 * 24 * time.Hour
	DefaultQueueLen = 4096
	// DefaultMaxBatch bounds the create messages of one sendmsg. 64
	// acknowledgements fit the socket's receive buffer many times over.
	DefaultMaxBatch  = 64
	DefaultLogWindow = 10 * time.Second
)

// Config configures a Handoff. The zero value of every field but Done and
// Logger selects its default.
type Config struct {
	// Mark is set on every entry synwall creates; rules and Count match it
	// under MarkMask. Mark must have a bit inside MarkMask.
	Mark, MarkMask uint32
	// Timeout is the entry's lifetime until its first packet (whole
	// seconds).
	Timeout time.Duration
	// QueueLen bounds the requests waiting for the hand-off goroutine;
	// Submit fails (and counts) when it is full.
	QueueLen int
	// MaxBatch bounds the messages sent with one sendmsg.
	MaxBatch int
	// Done, if set, is called on the goroutine running Run with the outcome
	// of every request, in the order they were submitted. It must not
	// block for long: requests wait meanwhile.
	Done func(Result)
	// Logger receives failures, at most one line per LogWindow (with the
	// number of failures it stands for). Nil logs nothing.
	Logger    *slog.Logger
	LogWindow time.Duration
	// Now is the clock (for the log window); nil is time.Now.
	Now func() time.Time
	// MaxKnown bounds the registry of handed-off connections (Known).
	MaxKnown int
	// Delay holds every create back this long after Submit: for tests and
	// demonstrations of a hand-off in the middle of a transfer. Zero in
	// production.
	Delay time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Mark == 0 && c.MarkMask == 0 {
		c.Mark, c.MarkMask = DefaultMark, DefaultMarkMask
	}
	if c.MarkMask == 0 {
		c.MarkMask = 0xffffffff
	}
	if c.Mark&c.MarkMask == 0 {
		return c, fmt.Errorf("conntrack: mark %#x has no bit inside mask %#x", c.Mark, c.MarkMask)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < time.Second || c.Timeout/time.Second > 1<<31 {
		return c, fmt.Errorf("conntrack: timeout %v outside 1s..%ds", c.Timeout, 1<<31)
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.QueueLen < 1 || c.MaxBatch < 1 || c.MaxBatch > 1024 {
		return c, fmt.Errorf("conntrack: queue length %d and batch %d must be positive (batch at most 1024)", c.QueueLen, c.MaxBatch)
	}
	if c.LogWindow == 0 {
		c.LogWindow = DefaultLogWindow
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxKnown == 0 {
		c.MaxKnown = DefaultMaxKnown
	}
	if c.MaxKnown < 0 || c.Delay < 0 {
		return c, fmt.Errorf("conntrack: MaxKnown %d and Delay %v must not be negative", c.MaxKnown, c.Delay)
	}
	return c, nil
}

// Op is what a request asks for. Zero is invalid.
type Op uint8

const (
	OpInvalid     Op = iota
	OpCreate         // create the flow's entry
	OpRemoveStale    // delete the tuple's entry if it is in TIME_WAIT or CLOSE
)

// String returns "create", "remove_stale" or "invalid".
func (o Op) String() string {
	switch o {
	case OpCreate:
		return "create"
	case OpRemoveStale:
		return "remove_stale"
	}
	return "invalid"
}

// Result is the outcome of one request.
type Result struct {
	Op   Op
	Flow Flow // as submitted (for OpRemoveStale: Client, Server, Token)
	// Err is nil when the entry was created (OpCreate), or when no live
	// entry is left on the tuple (OpRemoveStale). Test with errors.Is
	// against ErrExists, ErrTableFull, ErrLiveEntry, or a syscall.Errno.
	Err error
	// Found and State tell, for OpRemoveStale, whether an entry existed
	// and in which state; Removed whether synwall deleted it.
	Found, Removed bool
	State          TCPState
}

// Errors reported in Result.Err.
var (
	// ErrExists: the tuple has a live entry (not TIME_WAIT or CLOSE), which
	// synwall never replaces.
	ErrExists = errors.New("conntrack: the tuple already has a live entry")
	// ErrTableFull: the kernel could not allocate the entry (ENOMEM: the
	// table is at nf_conntrack_max, or memory is short).
	ErrTableFull = errors.New("conntrack: conntrack table full")
	// ErrLiveEntry: OpRemoveStale found an entry that is not stale.
	ErrLiveEntry = errors.New("conntrack: the tuple's entry is not stale")
	// ErrClosed: the Handoff was closed.
	ErrClosed = errors.New("conntrack: hand-off closed")
	// ErrUnsupported: this system cannot create conntrack entries.
	ErrUnsupported = errors.New("conntrack: ctnetlink hand-off is not supported on this system")
)

// FailReason classifies failed creates for counters. Zero is invalid.
type FailReason uint8

const (
	FailInvalid   FailReason = iota
	FailExists               // a live entry on the tuple
	FailTableFull            // ENOMEM
	FailBadFlow              // Flow.Validate refused it
	FailKernel               // any other error from the kernel or the socket
	NumFailReasons
)

var failNames = [NumFailReasons]string{
	FailInvalid: "invalid", FailExists: "exists", FailTableFull: "table_full",
	FailBadFlow: "bad_flow", FailKernel: "kernel",
}

// String returns a snake_case name for metrics.
func (r FailReason) String() string {
	if r < NumFailReasons {
		return failNames[r]
	}
	return "invalid"
}

func failReason(err error) FailReason {
	switch {
	case errors.Is(err, ErrExists):
		return FailExists
	case errors.Is(err, ErrTableFull):
		return FailTableFull
	case errors.Is(err, ErrFamily), errors.Is(err, ErrPort), errors.Is(err, ErrWScale), errors.Is(err, ErrZone):
		return FailBadFlow
	}
	return FailKernel
}

// Stats are the Handoff's counters since it was made.
type Stats struct {
	Submitted uint64 // requests accepted by Submit and RemoveStale
	QueueFull uint64 // requests refused because the queue was full
	Created   uint64 // entries created
	Failed    [NumFailReasons]uint64
	Replaced  uint64 // stale entries deleted so that a create could go on
	// StaleChecked counts OpRemoveStale requests, StaleRemoved the entries
	// they deleted.
	StaleChecked, StaleRemoved uint64
	Batches                    uint64 // sendmsg calls carrying creates
	Messages                   uint64 // create messages sent
	// Known is the size of the registry of handed-off connections,
	// KnownFull the connections it had no room for; Destroyed counts the
	// kernel's DESTROY events of synwall's entries, Resyncs the dumps after
	// lost events, EventErrors failed reads of the events.
	Known                         int
	KnownFull, Destroyed, Resyncs uint64
	EventErrors                   uint64
}

// FailedTotal sums Failed.
func (s Stats) FailedTotal() uint64 {
	var n uint64
	for _, v := range s.Failed {
		n += v
	}
	return n
}

// transport is the kernel side of a Handoff: ctnetlink in one network
// namespace. The in-memory fake in the tests implements it too.
type transport interface {
	// create sends one create message per flow, all with one sendmsg, and
	// sets errs[i] to the outcome of flows[i] (nil: created; a
	// syscall.Errno otherwise). Its own error means no outcome is known.
	create(flows []*Flow, errs []error, status, timeout, mark uint32) error
	// get reads the entry whose original tuple is client → server.
	get(client, server netip.AddrPort) (e entry, found bool, err error)
	// remove deletes the entry of that tuple if its id is id. ENOENT
	// (gone already, or replaced) is not an error.
	remove(client, server netip.AddrPort, id uint32) error
	// countMark counts the entries whose mark matches mark under mask.
	countMark(mark, mask uint32) (int, error)
	// dumpMark calls fn with the original tuple and the offsets of each
	// such TCP entry.
	dumpMark(mark, mask uint32, fn func(tupleKey, Offsets)) error
	close() error
}

// event is one conntrack event of a TCP entry.
type event struct {
	k       tupleKey
	mark    uint32
	destroy bool     // DESTROY; else an UPDATE
	state   TCPState // of an UPDATE that carried it
}

// eventSource delivers the kernel's DESTROY and UPDATE events.
type eventSource interface {
	// read waits up to about a second for events and calls fn for each
	// event of a TCP entry. lost reports that the kernel dropped events
	// (the socket's buffer overflowed).
	read(fn func(ev *event)) (lost bool, err error)
	close() error
}

type request struct {
	op   Op
	flow Flow
	at   int64 // when it was queued (ns), with Config.Delay only
}

// Handoff creates conntrack entries for proxied connections, in batches, on
// its own goroutine (Run). It is safe for concurrent use.
type Handoff struct {
	cfg    Config
	q      chan request
	t      transport // used by Run only
	query  transport // Count, Probe and resynchronisation, under qmu
	qmu    sync.Mutex
	events eventSource // nil: no registry upkeep from the kernel
	known  *registry

	closeOnce sync.Once
	closeErr  error

	// Counters: Submit runs on the engine's goroutines, the rest on Run's.
	submitted, queueFull       atomic.Uint64
	created, replaced          atomic.Uint64
	failed                     [NumFailReasons]atomic.Uint64
	staleChecked, staleRemoved atomic.Uint64
	batches, messages          atomic.Uint64
	destroyed, resyncs         atomic.Uint64 // the events watcher's
	eventErrs                  atomic.Uint64

	// Run's own state.
	batch    []request
	flows    []*Flow
	errs     []error // outcome per sent flow
	bad      []error // Validate's verdict per request of a run
	status   uint32  // CTA_STATUS of creates (see createStatus)
	logLimit logLimiter
}

func newHandoff(cfg Config, t, query transport, events eventSource) (*Handoff, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Handoff{
		cfg:      cfg,
		q:        make(chan request, cfg.QueueLen),
		t:        t,
		query:    query,
		events:   events,
		known:    newRegistry(cfg.MaxKnown),
		batch:    make([]request, 0, cfg.MaxBatch),
		flows:    make([]*Flow, 0, cfg.MaxBatch),
		errs:     make([]error, cfg.MaxBatch),
		bad:      make([]error, cfg.MaxBatch),
		status:   createStatus,
		logLimit: logLimiter{window: cfg.LogWindow},
	}, nil
}

// Mark returns the mark and mask of synwall's entries.
func (h *Handoff) Mark() (mark, mask uint32) { return h.cfg.Mark, h.cfg.MarkMask }

// Submit queues the creation of f's entry. It never blocks and never
// allocates; it returns false, and counts, when the queue is full (the flow
// then stays in user space).
func (h *Handoff) Submit(f *Flow) bool {
	r := request{op: OpCreate, flow: *f}
	if h.cfg.Delay > 0 {
		r.at = h.cfg.Now().UnixNano()
	}
	return h.enqueue(r)
}

// RemoveStale queues the deletion of the entry whose original tuple is
// client → server, if that entry is in TIME_WAIT or CLOSE. Call it for a
// new SYN on a tuple synwall handed off before: with a stale entry left in
// place, the client's next ACK would match it and bypass synwall. token
// comes back in the Result.
func (h *Handoff) RemoveStale(client, server netip.AddrPort, token uint64) bool {
	return h.enqueue(request{op: OpRemoveStale, flow: Flow{Client: client, Server: server, Token: token}})
}

func (h *Handoff) enqueue(r request) bool {
	select {
	case h.q <- r:
		h.submitted.Add(1)
		return true
	default:
		h.queueFull.Add(1)
		return false
	}
}

// Pending returns the number of queued requests.
func (h *Handoff) Pending() int { return len(h.q) }

// Stats returns the counters.
func (h *Handoff) Stats() Stats {
	s := Stats{
		Submitted:    h.submitted.Load(),
		QueueFull:    h.queueFull.Load(),
		Created:      h.created.Load(),
		Replaced:     h.replaced.Load(),
		StaleChecked: h.staleChecked.Load(),
		StaleRemoved: h.staleRemoved.Load(),
		Batches:      h.batches.Load(),
		Messages:     h.messages.Load(),
		Known:        h.KnownCount(),
		KnownFull:    h.known.full.Load(),
		Destroyed:    h.destroyed.Load(),
		Resyncs:      h.resyncs.Load(),
		EventErrors:  h.eventErrs.Load(),
	}
	for i := range s.Failed {
		s.Failed[i] = h.failed[i].Load()
	}
	return s
}

// Count returns the number of entries in the kernel's table that carry
// synwall's mark: the connections the kernel carries for synwall now, in
// every TCP state. It dumps the table filtered by mark in the kernel and
// counts the messages without decoding them; call it per scrape, not per
// packet.
func (h *Handoff) Count() (int, error) {
	h.qmu.Lock()
	defer h.qmu.Unlock()
	if h.query == nil {
		return 0, ErrClosed
	}
	return h.query.countMark(h.cfg.Mark, h.cfg.MarkMask)
}

// Run creates the queued entries until ctx is done. Requests that arrive
// while the kernel works on a batch form the next one, so batches grow with
// the load and a lone request waits for nobody. Run must be called once.
func (h *Handoff) Run(ctx context.Context) error {
	if h.events != nil {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			h.watch(ctx)
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-h.q:
			h.batch = append(h.batch[:0], r)
		}
		if h.cfg.Delay > 0 {
			wait := time.Duration(h.batch[0].at + int64(h.cfg.Delay) - h.cfg.Now().UnixNano())
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	fill:
		for len(h.batch) < cap(h.batch) {
			select {
			case r := <-h.q:
				h.batch = append(h.batch, r)
			default:
				break fill
			}
		}
		h.process(h.batch)
	}
}

// process runs one batch: runs of creates go out with one sendmsg each,
// a stale check in between keeps its place in the order.
func (h *Handoff) process(batch []request) {
	start := 0
	for i := range batch {
		if batch[i].op == OpCreate {
			continue
		}
		h.createRun(batch[start:i])
		h.removeStale(&batch[i])
		start = i + 1
	}
	h.createRun(batch[start:])
}

func (h *Handoff) createRun(run []request) {
	if len(run) == 0 {
		return
	}
	// Flows Validate refuses are not sent; every outcome is reported in
	// the order of the run.
	h.flows = h.flows[:0]
	bad := h.bad[:len(run)]
	for i := range run {
		bad[i] = run[i].flow.Validate()
		if bad[i] == nil {
			h.flows = append(h.flows, &run[i].flow)
		}
	}
	errs := h.errs[:len(h.flows)]
	clear(errs)
	if len(h.flows) > 0 {
		h.batches.Add(1)
		h.messages.Add(uint64(len(h.flows)))
		if err := h.t.create(h.flows, errs, h.status, h.timeoutSeconds(), h.cfg.Mark); err != nil {
			for i := range errs {
				errs[i] = err
			}
		} else {
			for i, f := range h.flows {
				if errors.Is(errs[i], syscall.EBUSY) && h.status == createStatus {
					// This kernel confirms entries after CTA_STATUS.
					h.status = createStatusUnconfirmed
				}
				if errors.Is(errs[i], syscall.EBUSY) {
					errs[i] = h.createOne(f)
				}
				if errors.Is(errs[i], syscall.EEXIST) {
					errs[i] = h.replaceStale(f)
				}
			}
		}
	}
	j := 0
	for i := range run {
		err := bad[i]
		if err == nil {
			err = errs[j]
			j++
		}
		h.finishCreate(&run[i].flow, err)
	}
}

func (h *Handoff) timeoutSeconds() uint32 { return uint32(h.cfg.Timeout / time.Second) }

// replaceStale handles EEXIST: if the tuple's entry is stale it is deleted
// and the create tried once more; a live entry is left alone (ErrExists).
func (h *Handoff) replaceStale(f *Flow) error {
	e, found, err := h.t.get(f.Client, f.Server)
	if err != nil {
		return err
	}
	if found {
		if !e.State.Stale() {
			return fmt.Errorf("%w (%s)", ErrExists, e.State)
		}
		if err := h.t.remove(f.Client, f.Server, e.ID); err != nil {
			return err
		}
		h.replaced.Add(1)
	}
	err = h.createOne(f)
	if errors.Is(err, syscall.EEXIST) {
		return ErrExists
	}
	return err
}

// createOne creates one entry on its own (the retries of the rare paths).
func (h *Handoff) createOne(f *Flow) error {
	var one [1]error
	h.batches.Add(1)
	h.messages.Add(1)
	if err := h.t.create([]*Flow{f}, one[:], h.status, h.timeoutSeconds(), h.cfg.Mark); err != nil {
		return err
	}
	return one[0]
}

func (h *Handoff) finishCreate(f *Flow, err error) {
	if errors.Is(err, syscall.ENOMEM) {
		err = fmt.Errorf("%w: %w", ErrTableFull, err)
	}
	if err == nil {
		h.created.Add(1)
		h.known.add(f)
	} else {
		r := failReason(err)
		h.failed[r].Add(1)
		h.logFailure("conntrack hand-off failed; the flow stays in user space", f, err)
	}
	if h.cfg.Done != nil {
		h.cfg.Done(Result{Op: OpCreate, Flow: *f, Err: err})
	}
}

func (h *Handoff) removeStale(r *request) {
	h.staleChecked.Add(1)
	res := Result{Op: OpRemoveStale, Flow: r.flow}
	e, found, err := h.t.get(r.flow.Client, r.flow.Server)
	switch {
	case err != nil:
		res.Err = err
	case !found:
	case !e.State.Stale():
		res.Found, res.State = true, e.State
		res.Err = fmt.Errorf("%w (%s)", ErrLiveEntry, e.State)
	default:
		res.Found, res.State = true, e.State
		if res.Err = h.t.remove(r.flow.Client, r.flow.Server, e.ID); res.Err == nil {
			res.Removed = true
			h.staleRemoved.Add(1)
			h.known.remove(keyOf(r.flow.Client, r.flow.Server))
		}
	}
	if res.Err != nil && !errors.Is(res.Err, ErrLiveEntry) {
		h.logFailure("conntrack: removing a stale entry failed", &r.flow, res.Err)
	}
	if h.cfg.Done != nil {
		h.cfg.Done(res)
	}
}

func (h *Handoff) logFailure(msg string, f *Flow, err error) {
	if h.cfg.Logger == nil {
		return
	}
	ok, suppressed := h.logLimit.allow(h.cfg.Now())
	if !ok {
		return
	}
	h.cfg.Logger.Warn(msg, "flow", f.String(), "err", err,
		"suppressed_in_last_window", suppressed, "window", h.cfg.LogWindow)
}

// Close closes the netlink sockets. Run must have returned (or never have
// been called).
func (h *Handoff) Close() error {
	h.closeOnce.Do(func() {
		h.qmu.Lock()
		defer h.qmu.Unlock()
		var errs []error
		if h.t != nil {
			errs = append(errs, h.t.close())
		}
		if h.query != nil && h.query != h.t {
			errs = append(errs, h.query.close())
		}
		if h.events != nil {
			errs = append(errs, h.events.close())
		}
		h.query = nil
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}

// logLimiter lets one line through per window and counts the rest.
type logLimiter struct {
	window     time.Duration
	last       time.Time
	suppressed int
}

// allow reports whether a line may be logged now, and how many were
// suppressed since the last one that was.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	if !l.last.IsZero() && now.Sub(l.last) < l.window {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}

// Probe tells whether the kernel of the Handoff's namespace can carry
// flows: it creates an entry with a sequence offset and the synproxy
// extension for a tuple no connection uses (198.18.255.254:9 →
// 198.18.255.255:9, benchmarking space, RFC 2544; discard port), reads it
// back, requires IPS_SEQ_ADJUST and synwall's mark, and deletes it. It also
// learns which status bits this kernel accepts on a create. Call it before
// Run; a non-nil error means: keep every flow in user space, and say so.
func (h *Handoff) Probe() error {
	h.qmu.Lock()
	defer h.qmu.Unlock()
	if h.query == nil {
		return ErrClosed
	}
	f := Flow{
		Client:    netip.MustParseAddrPort("198.18.255.254:9"),
		Server:    netip.MustParseAddrPort("198.18.255.255:9"),
		Opts:      OptTimestamps,
		CookieISN: 0x10000, ServerISN: 0x20000, ITS: 1, ServerTSval: 2,
	}
	// A leftover of an interrupted probe would make the create fail.
	if e, found, err := h.query.get(f.Client, f.Server); err == nil && found {
		_ = h.query.remove(f.Client, f.Server, e.ID)
	}
	var errs [1]error
	status := uint32(createStatus)
	for {
		errs[0] = nil
		if err := h.query.create([]*Flow{&f}, errs[:], status, 1, h.cfg.Mark); err != nil {
			return fmt.Errorf("conntrack: probe: %w", err)
		}
		if errors.Is(errs[0], syscall.EBUSY) && status == createStatus {
			status = createStatusUnconfirmed
			continue
		}
		break
	}
	if errs[0] != nil {
		return fmt.Errorf("conntrack: probe: creating an entry: %w", errs[0])
	}
	h.status = status
	e, found, err := h.query.get(f.Client, f.Server)
	if err == nil && found {
		err = h.query.remove(f.Client, f.Server, e.ID)
	}
	switch {
	case err != nil:
		return fmt.Errorf("conntrack: probe: %w", err)
	case !found:
		return errors.New("conntrack: probe: the entry created is not there")
	case e.Status&ipsSeqAdjust == 0:
		return errors.New("conntrack: probe: the kernel dropped the sequence adjustment (no IPS_SEQ_ADJUST)")
	case e.Mark != h.cfg.Mark:
		return fmt.Errorf("conntrack: probe: the entry's mark is %#x, want %#x (no CONFIG_NF_CONNTRACK_MARK?)", e.Mark, h.cfg.Mark)
	}
	return nil
}

// watch keeps the registry in step with the kernel until ctx is done:
// every DESTROY event of an entry with synwall's mark removes its
// connection; after lost events a dump by mark decides. An UPDATE that
// moves one of synwall's entries to TIME_WAIT or CLOSE queues its removal
// (RemoveStale): the connection has ended, and a stale entry would accept
// the handshake ACK of a new connection on the same ports before synwall
// sees it (with the BPF SYN stage, synwall does not even see that
// connection's SYN).
func (h *Handoff) watch(ctx context.Context) {
	mask := h.cfg.MarkMask
	for ctx.Err() == nil {
		lost, err := h.events.read(func(ev *event) {
			if ev.mark&mask != h.cfg.Mark&mask {
				return
			}
			if ev.destroy {
				h.destroyed.Add(1)
				h.known.remove(ev.k)
				return
			}
			if ev.state.Stale() {
				c, s := ev.k.addrs()
				h.RemoveStale(c, s, 0)
			}
		})
		if err != nil {
			h.eventErrs.Add(1)
			h.logFailure("conntrack: reading destroy events", &Flow{}, err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if lost {
			h.resync()
		}
	}
}

// resync removes from the registry what the kernel no longer has.
func (h *Handoff) resync() {
	before := h.known.keys()
	live := map[tupleKey]struct{}{}
	h.qmu.Lock()
	var err error
	if h.query == nil {
		err = ErrClosed
	} else {
		err = h.query.dumpMark(h.cfg.Mark, h.cfg.MarkMask, func(k tupleKey, _ Offsets) { live[k] = struct{}{} })
	}
	h.qmu.Unlock()
	if err != nil {
		h.logFailure("conntrack: resynchronising after lost events", &Flow{}, err)
		return
	}
	h.resyncs.Add(1)
	h.known.forget(before, live)
}

// Load records in the registry every connection the kernel carries with
// synwall's mark, with its offsets: after a graceful restart, the
// connections the previous process handed off. Call it before Run.
func (h *Handoff) Load() (int, error) {
	h.qmu.Lock()
	defer h.qmu.Unlock()
	if h.query == nil {
		return 0, ErrClosed
	}
	n := 0
	err := h.query.dumpMark(h.cfg.Mark, h.cfg.MarkMask, func(k tupleKey, o Offsets) {
		if h.known.put(k, o) {
			n++
		}
	})
	return n, err
}

// RemoveStaleNow is RemoveStale done at once on the calling goroutine (a
// get and, for a stale entry, a delete: two round trips to the kernel),
// for a SYN whose tuple Known reports, before the SYN-ACK goes out: the
// client's ACK must not find the stale entry. For a SYN an entry in
// LAST_ACK is stale too: the client sent its FIN and now opens a new
// connection, so only the server's last ACK is missing (lost, or still on
// its way), and waiting for it would let the new connection's ACK match
// the old entry. Live states (ESTABLISHED, FIN_WAIT, CLOSE_WAIT: a side
// may still send data) are never touched, whoever sent the SYN.
func (h *Handoff) RemoveStaleNow(client, server netip.AddrPort) Result {
	h.qmu.Lock()
	defer h.qmu.Unlock()
	h.staleChecked.Add(1)
	res := Result{Op: OpRemoveStale, Flow: Flow{Client: client, Server: server}}
	if h.query == nil {
		res.Err = ErrClosed
		return res
	}
	e, found, err := h.query.get(client, server)
	switch {
	case err != nil:
		res.Err = err
	case !found:
		h.known.remove(keyOf(client, server))
	case !e.State.Stale() && e.State != StateLastAck:
		res.Found, res.State = true, e.State
		res.Err = fmt.Errorf("%w (%s)", ErrLiveEntry, e.State)
	default:
		res.Found, res.State = true, e.State
		if res.Err = h.query.remove(client, server, e.ID); res.Err == nil {
			res.Removed = true
			h.staleRemoved.Add(1)
			h.known.remove(keyOf(client, server))
		}
	}
	return res
}
