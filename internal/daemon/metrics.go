package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/synwall/synwall/internal/conntrack"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/observe"
	"github.com/synwall/synwall/internal/queue"
)

// Prometheus metrics of the daemon. The collector reads the counters the
// engine, the queues and the injector keep anyway (plain atomics) when
// Prometheus scrapes, so the packet path pays nothing for them.

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("synwall_"+name, help, labels, nil)
}

var (
	descPackets = desc("packets_total",
		"Packets the engine handled, by what it did with them.", "event")
	descDirection = desc("packets_by_direction_total",
		"Packets the engine handled, by direction (to_server: from clients; to_client: from guarded services; none: dropped before the direction was known, or unguarded) and verdict.", "direction", "verdict")
	descInvalid = desc("invalid_packets_total",
		"Packets that failed the header checks, by reason (dropped, or only counted under invalid_flags: count).", "reason")
	descSynCache = desc("syncache_total",
		"SYN cache outcomes: hit and miss for handshake ACKs, eviction of live entries from full buckets, retransmit for repeated SYNs answered from the cache, full for SYNs answered without an entry (every entry of the bucket pinned: a client without timestamps is then offered no window scaling, SACK or ECN).", "result")
	descFlows = desc("flows",
		"Flows in the flow table.", "state")
	descFlowsTotal = desc("flows_total",
		"Flow table events: created, expired (idle, lingering or handshake timed out), evicted (pushed out of a full bucket).", "event")
	descPending = desc("pending_segments_total",
		"Client segments that arrived during the handshake with the server: held, or dropped for want of room (the client resends).", "result")
	descServerSynRetransmits = desc("server_syn_retransmits_total",
		"SYNs resent to a server.")
	descFlowsEvicted = desc("flows_evicted_total",
		"Flows pushed out of a full flow-table bucket, by kind, in the order they go: closing, handshake, established (both ends get an RST), outbound.", "kind")
	descHandshakesRefused = desc("handshakes_refused_total",
		"Valid handshake ACKs refused: rate_limit (per-source or global handshake limit), flow_quota (the source holds its share of the flow table).", "reason")
	descResets = desc("resets_total",
		"RSTs of established flows by how they fit the receiver's window (RFC 5961): out_of_window (dropped), in_window (passed on; the flow reopens if the receiver answers), exact (passed on; the flow closes).", "result")
	descServerResyncs = desc("server_resyncs_total",
		"Servers that answered the engine's SYN with an ACK of an older connection on the tuple and got an RST and a new SYN.")
	descOutboundFlows = desc("outbound_flows_total",
		"Connections opened by guarded servers themselves, passed untouched.")
	descIdleResets = desc("idle_resets_total",
		"RSTs sent to the ends of flows expired for idleness, each at the sequence number the end named in its answer to the engine's probe.")
	descICMPTranslated = desc("icmp_translated_total",
		"ICMP errors toward a server whose quoted sequence number was moved back into the server's space (path MTU discovery beyond the gateway).")
	descServerLacks = desc("server_synack_lacks_total",
		"Server SYN-ACKs without an option the engine's SYN-ACK agreed to with the client on the server's behalf (the policy advertises more than the server does), by option: timestamps, wscale, sack, ecn.", "option")

	descQueueReceived = desc("queue_received_packets_total",
		"Packets received from the kernel, by NFQUEUE number.", "queue")
	descQueuePackets = desc("queue_packets_total",
		"Verdicts given, by NFQUEUE number and verdict.", "queue", "verdict")
	descQueueVerdictMsgs = desc("queue_verdict_messages_total",
		"Verdict messages sent to the kernel, by NFQUEUE number and kind (single or batch).", "queue", "kind")
	descQueueSends = desc("queue_sends_total",
		"Write calls carrying verdicts, by NFQUEUE number.", "queue")
	descQueueInjected = desc("queue_injected_total",
		"Packets the queue workers handed to the injector, by NFQUEUE number and result.", "queue", "result")
	descQueueErrors = desc("queue_errors_total",
		"Queue errors by NFQUEUE number and kind: enobufs (receive buffer overrun), parse (malformed kernel message), kernel (error reply), truncated (packet past the copy range, dropped), bad_verdict.", "queue", "kind")
	descKernelDropped = desc("queue_kernel_dropped_total",
		"Packets the kernel dropped before synwall saw them, by NFQUEUE number and reason: queue_full (queue_maxlen reached) or socket_full (netlink receive buffer full). Fail-open queues accept instead of dropping, and still count here.", "queue", "reason")
	descKernelWaiting = desc("queue_kernel_waiting",
		"Packets queued in the kernel awaiting a verdict, by NFQUEUE number.", "queue")

	descInject = desc("inject_total",
		"Packets sent through the raw injection sockets, by result (sent or error).", "result")
	descInjectCalls = desc("inject_calls_total",
		"sendmmsg calls of the injector.")

	descReloads = desc("policy_reloads_total",
		"Policy reloads (SIGHUP), by result: ok, or failed (the running policy stayed).", "result")
	descServices = desc("policy_services",
		"Services in the running policy.")
	descStart = desc("start_time_seconds",
		"When the gateway started, in seconds since the Unix epoch.")
	descBuild = desc("build_info",
		"Always 1; the labels carry the synwall version.", "version")

	descCookies = desc("cookies_total",
		"Handshake ACKs by cookie check: valid (flow created, SYN cache hit or cookie), invalid, expired.", "result")
	descRateLimited = desc("rate_limited_total",
		"SYNs dropped by a rate limit, by service of the running policy (other: a service outside the first 256, or one reordered away by a reload).", "service")
	descDropSources = desc("drop_sources",
		"Estimated distinct source addresses of the drops of the current summary window, by reason (linear counting; a lower bound past about 160,000).", "reason")
	descProcessing = desc("packet_processing_seconds",
		"Time the engine takes for one packet, sampled (1 packet in 64 per worker).")
	descPcap = desc("pcap_samples_total",
		"Dropped packets offered to the pcap sampler, by outcome: written, limited (over --pcap-rate), ring_full (writer behind), write_error.", "result")

	descConntrackOn = desc("conntrack_handoff_enabled",
		"1 when established flows are handed to conntrack (the kernel carries them), 0 when every flow stays in user space (disabled, or unsupported: see the log and the status).")
	descConntrackFlows = desc("conntrack_flows",
		"Conntrack entries carrying synwall's mark, counted every few seconds: the connections the kernel carries for synwall, in every TCP state.")
	descConntrackKernelPath = desc("conntrack_kernel_path_total",
		"What synwall still does for connections the kernel carries: rst_translated (a server's RST, which the kernel would mistranslate), icmp_translated (an ICMP error quoting a server's segment), stale_removed (entries of ended connections removed, so that a new connection on the same ports is not let through unproxied).", "kind")
	descEngineHandoffs = desc("engine_handoffs_total",
		"Completed proxied handshakes by what the engine did with the hand-off on: handed_off (a record for conntrack), or kept in user space because the server differs from what the SYN-ACK told the client (wscale, sack, timestamps, mss).", "result")
	descConntrackHandoffs = desc("conntrack_handoffs_total",
		"Hand-offs to conntrack by result: created, queue_full (refused before reaching the kernel), or the failure's reason (exists, table_full, bad_flow, kernel); a flow that was not handed off stays in user space.", "result")
)

// collector is a prometheus.Collector over a daemon's counters.
type collector struct {
	d *Daemon
	// kernelStats reads the kernel's per-queue counters; tests replace it.
	kernelStats func() ([]queue.KernelQueueStats, error)
}

var _ prometheus.Collector = (*collector)(nil)

func newCollector(d *Daemon) *collector {
	return &collector{d: d, kernelStats: queue.ReadKernelQueueStats}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descPackets, descDirection, descInvalid, descSynCache, descFlows, descFlowsTotal, descPending,
		descServerSynRetransmits, descFlowsEvicted, descHandshakesRefused, descResets, descServerResyncs, descOutboundFlows, descServerLacks, descIdleResets, descICMPTranslated,
		descQueueReceived, descQueuePackets, descQueueVerdictMsgs,
		descQueueSends, descQueueInjected, descQueueErrors, descKernelDropped, descKernelWaiting,
		descInject, descInjectCalls, descReloads, descServices, descStart, descBuild,
		descCookies, descRateLimited, descDropSources, descProcessing, descPcap,
		descConntrackOn, descConntrackFlows, descConntrackHandoffs, descEngineHandoffs, descConntrackKernelPath,
		descStageUp, descStagePackets, descStageDrops,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It runs at scrape time only.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}

	es := d.engine.Stats()
	for e := engine.Event(1); e < engine.NumEvents; e++ {
		counter(descPackets, es.Events[e], e.String())
	}
	for dir := engine.Direction(0); dir < engine.NumDirections; dir++ {
		for _, v := range []engine.Verdict{engine.Accept, engine.Drop} {
			counter(descDirection, es.Packets[dir][v], dir.String(), v.String())
		}
	}
	for r := header.OK + 1; r < header.NumReasons; r++ {
		counter(descInvalid, es.Drops[r], r.String())
	}
	counter(descSynCache, es.CacheHits, "hit")
	counter(descSynCache, es.CacheMisses, "miss")
	counter(descSynCache, es.CacheEvictions, "eviction")
	counter(descSynCache, es.CacheRetransmits, "retransmit")
	counter(descSynCache, es.CacheFull, "full")
	gauge(descFlows, float64(max(es.FlowsActive, 0)), "active")
	counter(descFlowsTotal, es.FlowsCreated, "created")
	counter(descFlowsTotal, es.FlowsExpired, "expired")
	counter(descFlowsTotal, es.FlowsEvicted, "evicted")
	counter(descPending, es.PendingHeld, "held")
	counter(descPending, es.PendingDropped, "dropped")
	counter(descServerSynRetransmits, es.SynRetransmits)
	counter(descFlowsEvicted, es.FlowsEvictedClosing, "closing")
	counter(descFlowsEvicted, es.FlowsEvictedHandshake, "handshake")
	counter(descFlowsEvicted, es.FlowsEvictedEstablished, "established")
	counter(descFlowsEvicted, es.FlowsEvictedOutbound, "outbound")
	counter(descHandshakesRefused, es.HandshakesLimited, "rate_limit")
	counter(descHandshakesRefused, es.FlowQuotaRefused, "flow_quota")
	counter(descResets, es.ResetsOutOfWindow, "out_of_window")
	counter(descResets, es.ResetsInWindow, "in_window")
	counter(descResets, es.ResetsExact, "exact")
	counter(descServerResyncs, es.ServerResyncs)
	counter(descOutboundFlows, es.OutboundFlows)
	counter(descIdleResets, es.IdleResets)
	counter(descICMPTranslated, es.ICMPTranslated)
	for i, name := range [gateway.NumServerLacks]string{gateway.LackTimestamps: "timestamps", gateway.LackWScale: "wscale", gateway.LackSACK: "sack", gateway.LackECN: "ecn"} {
		counter(descServerLacks, es.ServerLacks[i], name)
	}
	counter(descCookies, es.Events[engine.EventHandshake], "valid")
	counter(descCookies, es.Events[engine.EventBadCookie], "invalid")
	counter(descCookies, es.Events[engine.EventExpiredCookie], "expired")
	c.collectOps(ch)
	c.collectStage(ch)

	if d.queue != nil {
		for _, s := range d.queue.Stats() {
			q := strconv.Itoa(int(s.Queue))
			counter(descQueueReceived, s.Packets, q)
			counter(descQueuePackets, s.Accepted, q, "accept")
			counter(descQueuePackets, s.AcceptedAltered, q, "accept_altered")
			counter(descQueuePackets, s.Dropped, q, "drop")
			counter(descQueueVerdictMsgs, s.VerdictMsgs, q, "single")
			counter(descQueueVerdictMsgs, s.Batches, q, "batch")
			counter(descQueueSends, s.Sends, q)
			counter(descQueueInjected, s.Injected, q, "sent")
			counter(descQueueInjected, s.InjectErrors, q, "error")
			counter(descQueueErrors, s.ENOBUFS, q, "enobufs")
			counter(descQueueErrors, s.ParseErrors, q, "parse")
			counter(descQueueErrors, s.KernelErrors, q, "kernel")
			counter(descQueueErrors, s.Truncated, q, "truncated")
			counter(descQueueErrors, s.BadVerdicts, q, "bad_verdict")
		}
	}
	// The kernel lists every bound queue of the network namespace; report
	// only ours. The file is absent until a queue is bound.
	if ks, err := c.kernelStats(); err == nil {
		for _, k := range ks {
			if !d.ours(k.Queue) {
				continue
			}
			q := strconv.Itoa(int(k.Queue))
			counter(descKernelDropped, k.Dropped, q, "queue_full")
			counter(descKernelDropped, k.UserDropped, q, "socket_full")
			gauge(descKernelWaiting, float64(k.Waiting), q)
		}
	}
	if d.inj != nil {
		is := d.inj.Stats()
		counter(descInject, is.Sent, "sent")
		counter(descInject, is.Errors, "error")
		counter(descInjectCalls, is.Calls)
	}

	ok, failed := d.reloadCounts()
	counter(descReloads, ok, "ok")
	counter(descReloads, failed, "failed")
	if p := d.engine.Policy(); p != nil {
		gauge(descServices, float64(len(p.Services)))
	}
	if !d.started.IsZero() {
		gauge(descStart, float64(d.started.UnixNano())/1e9)
	}
	gauge(descBuild, 1, d.cfg.Version)

	cs := d.conntrackStatus()
	on := 0.0
	if cs.On {
		on = 1
		if cs.Flows >= 0 {
			gauge(descConntrackFlows, float64(cs.Flows))
		}
		counter(descConntrackHandoffs, cs.Created, "created")
		counter(descConntrackHandoffs, cs.QueueFull, "queue_full")
		for r := conntrack.FailReason(1); r < conntrack.NumFailReasons; r++ {
			counter(descConntrackHandoffs, cs.Failed[r.String()], r.String())
		}
		for k, v := range cs.Engine {
			counter(descEngineHandoffs, v, k)
		}
		counter(descConntrackKernelPath, cs.RSTTranslated, "rst_translated")
		counter(descConntrackKernelPath, cs.ICMPTranslated, "icmp_translated")
		counter(descConntrackKernelPath, cs.StaleRemoved, "stale_removed")
	}
	gauge(descConntrackOn, on)
}

// reloadCounts returns the reload counters. They are written by the
// reload task only.
func (d *Daemon) reloadCounts() (ok, failed uint64) {
	return d.reloads.ok.Load(), d.reloads.failed.Load()
}

// serveMetrics serves reg as /metrics on addr until ctx ends, then shuts
// the server down and returns nil. An empty addr serves nothing. The
// metrics tell an observer how well an attack is going, so a loopback
// address (127.0.0.1:9474) is recommended; anything else is logged as a
// warning.
func serveMetrics(ctx context.Context, addr string, reg prometheus.Gatherer, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr: %w", err)
	}
	if !loopback(ln.Addr()) {
		log.Warn("metrics served on a non-loopback address; firewall it or use 127.0.0.1:9474", "addr", ln.Addr().String())
	}
	return serveMetricsOn(ctx, ln, reg, log)
}

// serveMetricsOn serves reg on ln until ctx ends; it closes ln.
func serveMetricsOn(ctx context.Context, ln net.Listener, reg prometheus.Gatherer, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slogPromLogger{log},
		ErrorHandling:       promhttp.ContinueOnError,
		Timeout:             10 * time.Second,
		MaxRequestsInFlight: 4,
	}))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("serving metrics", "addr", ln.Addr().String(), "path", "/metrics")
	select {
	case err := <-done:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}

func loopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// slogPromLogger passes promhttp's error messages to the daemon's logger.
type slogPromLogger struct{ log *slog.Logger }

func (l slogPromLogger) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }

// collectOps reports what the observer keeps: rate limits by service,
// distinct sources of the window's drops, the sampled processing times and
// the pcap sampler.
func (c *collector) collectOps(ch chan<- prometheus.Metric) {
	o := c.d.ops
	if o == nil {
		return
	}
	snap := o.obs.Snapshot(time.Now())
	pol := c.d.engine.Policy()
	var other uint64
	for i, n := range snap.Limited {
		if i < len(pol.Services) {
			ch <- prometheus.MustNewConstMetric(descRateLimited, prometheus.CounterValue, float64(n), pol.Services[i].Name)
		} else {
			other += n
		}
	}
	if snap.Limited != nil {
		ch <- prometheus.MustNewConstMetric(descRateLimited, prometheus.CounterValue, float64(other), "other")
	}
	for _, cl := range snap.Current.Classes {
		ch <- prometheus.MustNewConstMetric(descDropSources, prometheus.GaugeValue, float64(cl.Sources.Value), cl.Class)
	}
	buckets := make(map[float64]uint64, observe.LatencyBuckets-1)
	var cum uint64
	for i := 0; i < observe.LatencyBuckets-1; i++ {
		cum += snap.Latency.Counts[i]
		buckets[observe.LatencyBound(i).Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(descProcessing, snap.Latency.Count(), snap.Latency.Sum.Seconds(), buckets)
	if p := snap.Sampler; p != nil {
		for _, v := range []struct {
			n uint64
			r string
		}{{p.Written, "written"}, {p.Limited, "limited"}, {p.RingFull, "ring_full"}, {p.WriteErrors, "write_error"}} {
			ch <- prometheus.MustNewConstMetric(descPcap, prometheus.CounterValue, float64(v.n), v.r)
		}
	}
}
