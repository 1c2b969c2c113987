package daemon

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/synwall/synwall/internal/conntrack"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/firewall"
)

// The hand-off of established flows to conntrack (package conntrack): the
// daemon opens the ctnetlink sockets in its namespace, probes the kernel,
// runs the Handoff's batching goroutine, and counts the kernel's entries
// that carry synwall's mark for the status, the metrics and the stats
// file. Without support (no ctnetlink, no permission, a kernel that drops
// the sequence adjustment) it runs every flow in user space, with the
// rules that go with that, and says so in the log, the status and the
// metrics.

// conntrackCountEvery is how often the entries are counted (a dump the
// kernel filters by mark): the status and the metrics read the last count.
const conntrackCountEvery = 5 * time.Second

// kernelFlows is the daemon's side of the hand-off.
type kernelFlows struct {
	h   *conntrack.Handoff // nil: off
	off string             // why it is off ("" when on)
	// offLate is why it was turned off after the workers started (the
	// hand-off's rules were refused); nil while on.
	offLate atomic.Pointer[string]

	flows     atomic.Int64 // entries with synwall's mark at the last count; -1 before
	lastCount time.Time    // housekeeping's own

	path kernelPathStats // the queue workers' side (kernelpath.go)

	// The summary line's state (housekeeping's own).
	lastSummary time.Time
	lastLogged  ConntrackStatus
}

// conntrackRules is the firewall side of the hand-off with conntrack's
// default mark.
func conntrackRules() *firewall.Conntrack {
	return &firewall.Conntrack{Mark: conntrack.DefaultMark, Mask: conntrack.DefaultMarkMask}
}

// openConntrack opens and probes the hand-off if the rules ask for it,
// and loads what the kernel already carries for synwall (the connections
// of the process before a graceful restart). On failure it turns the
// hand-off off: d.rules loses its Conntrack part before the rules are
// installed. It runs before the queue workers are made, which wrap their
// processors in the kernel path when the hand-off is on.
func (d *Daemon) openConntrack() {
	d.kflows.flows.Store(-1)
	if d.rules.Conntrack == nil {
		d.kflows.off = "disabled (--conntrack=false)"
		return
	}
	fail := func(err error) {
		d.kflows.off = err.Error()
		d.rules.Conntrack = nil
		d.log.Warn("conntrack hand-off unavailable: every flow stays in user space", "err", err)
	}
	h, err := conntrack.New(conntrack.Config{
		Mark: d.rules.Conntrack.Mark, MarkMask: d.rules.Conntrack.Mask,
		Logger: d.log, Done: d.handoffDone, Delay: d.cfg.ConntrackDelay,
	})
	if err != nil {
		fail(err)
		return
	}
	if err := h.Probe(); err != nil {
		h.Close()
		fail(err)
		return
	}
	n, err := h.Load()
	if err != nil {
		d.log.Warn("reading the connections conntrack carries for synwall", "err", err)
	}
	d.kflows.h = h
	d.engine.SetHandoff(true)
	d.log.Info("conntrack hand-off on: the kernel carries proxied connections once their handshake is done",
		"mark", conntrack.DefaultMark, "mask", conntrack.DefaultMarkMask, "carried_already", n)
}

// disableConntrack turns the hand-off off after it was opened: no more
// records, and the rules without it. The workers' kernel path stays but
// has nothing to do.
func (d *Daemon) disableConntrack(why string) {
	d.engine.SetHandoff(false)
	d.rules.Conntrack = nil
	d.kflows.offLate.Store(&why)
}

// on reports whether flows are handed off.
func (k *kernelFlows) on() bool { return k.h != nil && k.offLate.Load() == nil }

// runConntrack runs the hand-off's goroutine in g until ctx ends.
func (d *Daemon) runConntrack(ctx context.Context, g *errgroup.Group) {
	h := d.kflows.h
	if h == nil {
		return
	}
	g.Go(func() error {
		err := h.Run(ctx)
		h.Close()
		return err
	})
}

// processor is a queue worker's Processor: the engine's worker wrapped by
// the observer, and by the kernel path when the hand-off is on.
func (d *Daemon) processor() engine.Processor {
	p := d.ops.processor(d.engine)
	if d.kflows.h != nil {
		return newKernelPath(p, d.kflows.h, &d.kflows.path)
	}
	return p
}

// handoffDone receives the outcome of each hand-off request, on the
// hand-off's goroutine. A created entry lets the engine drop the flow
// after gateway.HandoffGrace; a failed one leaves it in user space, as
// it is (counted and logged by the Handoff).
func (d *Daemon) handoffDone(r conntrack.Result) {
	if r.Op == conntrack.OpCreate && r.Err == nil {
		d.engine.HandedOff(r.Flow.Client, r.Flow.Server, d.now())
	}
}

// countKernelFlows refreshes the count of synwall's entries (housekeeping).
func (d *Daemon) countKernelFlows(now time.Time) {
	k := &d.kflows
	if !k.on() || now.Sub(k.lastCount) < conntrackCountEvery {
		return
	}
	k.lastCount = now
	n, err := k.h.Count()
	if err != nil {
		d.log.Warn("counting conntrack entries", "err", err)
		k.flows.Store(-1)
		return
	}
	k.flows.Store(int64(n))
}

// summarizeConntrack logs, every --log-summary interval in which anything
// happened, one line on the hand-off: the connections the kernel carries
// and what was handed off, kept in user space or failed meanwhile.
func (d *Daemon) summarizeConntrack(now time.Time) {
	k := &d.kflows
	every := d.cfg.LogSummary
	if !k.on() || every <= 0 || now.Sub(k.lastSummary) < every {
		return
	}
	first := k.lastSummary.IsZero()
	k.lastSummary = now
	cur := d.conntrackStatus()
	last := k.lastLogged
	k.lastLogged = cur
	if first { // the counters to compare with
		return
	}
	sum := func(m map[string]uint64, skip string) uint64 {
		var n uint64
		for key, v := range m {
			if key != skip {
				n += v
			}
		}
		return n
	}
	created, failed := cur.Created-last.Created, sum(cur.Failed, "")-sum(last.Failed, "")
	kept := sum(cur.Engine, "handed_off") - sum(last.Engine, "handed_off")
	refused, rst, stale := cur.QueueFull-last.QueueFull, cur.RSTTranslated-last.RSTTranslated, cur.StaleRemoved-last.StaleRemoved
	if created+failed+kept+refused+rst+stale == 0 && cur.Flows == last.Flows {
		return
	}
	d.log.Info("conntrack hand-off", "kernel_flows", cur.Flows, "handed_off", created, "kept_in_user_space", kept,
		"failed", failed, "queue_full", refused, "rst_translated", rst, "stale_removed", stale, "window", every)
}

// ConntrackStatus is the hand-off's part of the status document.
type ConntrackStatus struct {
	On bool `json:"on"`
	// Off says why the hand-off is off.
	Off string `json:"off,omitempty"`
	// Flows is the number of entries with synwall's mark at the last count
	// (every few seconds): the connections the kernel carries; -1 before
	// the first count or when counting failed.
	Flows     int64             `json:"flows"`
	Created   uint64            `json:"created"`
	QueueFull uint64            `json:"queue_full"`
	Failed    map[string]uint64 `json:"failed,omitempty"`
	// Known is how many handed-off connections this process knows of
	// (for stale entries and server RSTs).
	Known int `json:"known"`
	// RSTTranslated counts server RSTs of handed-off connections synwall
	// translated itself; StaleRemoved the entries of ended connections
	// (TIME_WAIT, CLOSE) synwall removed, when they got there or before a
	// SYN-ACK on their tuple.
	RSTTranslated uint64 `json:"rst_translated"`
	StaleRemoved  uint64 `json:"stale_removed"`
	// ICMPTranslated counts ICMP errors toward servers, quoting a
	// handed-off connection's segment, that synwall translated.
	ICMPTranslated uint64 `json:"icmp_translated"`
	// Engine is what the engine decided when handshakes completed:
	// handed_off (a record for the kernel), or kept in user space by
	// reason (wscale, sack, timestamps, mss).
	Engine map[string]uint64 `json:"engine"`
}

func (d *Daemon) conntrackStatus() ConntrackStatus {
	k := &d.kflows
	s := ConntrackStatus{On: k.on(), Off: k.off, Flows: k.flows.Load()}
	if why := k.offLate.Load(); why != nil {
		s.Off = *why
	}
	if !s.On {
		s.Flows = -1
		return s
	}
	es := d.engine.HandoffStats()
	s.Engine = map[string]uint64{"handed_off": es.Emitted}
	for r := engine.HandoffSkip(1); r < engine.NumHandoffSkips; r++ {
		s.Engine[r.String()] = es.Skipped[r]
	}
	st := k.h.Stats()
	s.Created, s.QueueFull, s.Known = st.Created, st.QueueFull, st.Known
	s.RSTTranslated, s.StaleRemoved = k.path.rstTranslated.Load(), st.StaleRemoved
	s.ICMPTranslated = k.path.icmpTranslated.Load()
	for r := conntrack.FailReason(1); r < conntrack.NumFailReasons; r++ {
		if st.Failed[r] > 0 {
			if s.Failed == nil {
				s.Failed = map[string]uint64{}
			}
			s.Failed[r.String()] = st.Failed[r]
		}
	}
	return s
}
