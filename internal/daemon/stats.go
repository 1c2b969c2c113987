package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/queue"
)

// statsDoc is the stats file: counters by section, names in snake_case.
type statsDoc struct {
	Time   time.Time         `json:"time"`
	Uptime float64           `json:"uptime_seconds"`
	Events map[string]uint64 `json:"events"`
	// Directions counts packets by "direction/verdict" (e.g. to_server/drop).
	Directions map[string]uint64 `json:"directions"`
	Drops      map[string]uint64 `json:"drops"`
	Engine     map[string]uint64 `json:"engine"`
	Queue      map[string]uint64 `json:"queue"`
	Kernel     map[string]uint64 `json:"kernel_queue"`
	Inject     map[string]uint64 `json:"inject"`
	Reloads    map[string]uint64 `json:"reloads"`
	// Conntrack counts the hand-off to the kernel: created, queue_full,
	// failed_<reason>, and flows (entries at the last count; absent when
	// unknown or off).
	Conntrack map[string]uint64 `json:"conntrack"`
	// SynStage holds the BPF SYN stage's counters (drop_<reason> for its
	// drops), absent while it is off.
	SynStage map[string]uint64 `json:"syn_stage,omitempty"`
}

func (d *Daemon) snapshot() statsDoc {
	now := time.Now()
	es := d.engine.Stats()
	doc := statsDoc{
		Time:   now,
		Uptime: now.Sub(d.started).Seconds(),
		Events: map[string]uint64{}, Directions: map[string]uint64{}, Drops: map[string]uint64{}, Engine: map[string]uint64{},
		Queue: map[string]uint64{}, Kernel: map[string]uint64{}, Inject: map[string]uint64{},
		Reloads:   map[string]uint64{"ok": d.reloads.ok.Load(), "failed": d.reloads.failed.Load()},
		Conntrack: map[string]uint64{},
	}
	if cs := d.conntrackStatus(); cs.On {
		doc.Conntrack["created"], doc.Conntrack["queue_full"] = cs.Created, cs.QueueFull
		for k, v := range cs.Failed {
			doc.Conntrack["failed_"+k] = v
		}
		if cs.Flows >= 0 {
			doc.Conntrack["flows"] = uint64(cs.Flows)
		}
		for k, v := range cs.Engine {
			doc.Conntrack["engine_"+k] = v
		}
		doc.Conntrack["rst_translated"], doc.Conntrack["stale_removed"] = cs.RSTTranslated, cs.StaleRemoved
		doc.Conntrack["icmp_translated"] = cs.ICMPTranslated
	}
	for e := engine.Event(1); e < engine.NumEvents; e++ {
		doc.Events[e.String()] = es.Events[e]
	}
	if st := d.syn.current(); st != nil {
		if ss, err := st.Stats(); err == nil {
			counters, drops := stageStats(ss)
			doc.SynStage = counters
			for k, v := range drops {
				doc.SynStage["drop_"+k] = v
			}
		}
	}
	for dir := engine.Direction(0); dir < engine.NumDirections; dir++ {
		for _, v := range []engine.Verdict{engine.Accept, engine.Drop} {
			doc.Directions[dir.String()+"/"+v.String()] = es.Packets[dir][v]
		}
	}
	for r := header.OK + 1; r < header.NumReasons; r++ {
		doc.Drops[r.String()] = es.Drops[r]
	}
	for k, v := range map[string]uint64{
		"cache_hits": es.CacheHits, "cache_misses": es.CacheMisses, "cache_evictions": es.CacheEvictions,
		"cache_retransmits": es.CacheRetransmits, "flows_active": uint64(max(es.FlowsActive, 0)),
		"flows_created": es.FlowsCreated, "flows_expired": es.FlowsExpired, "flows_evicted": es.FlowsEvicted,
		"pending_held": es.PendingHeld, "pending_dropped": es.PendingDropped, "syn_retransmits": es.SynRetransmits,
		"cache_full": es.CacheFull, "flows_evicted_closing": es.FlowsEvictedClosing,
		"flows_evicted_handshake": es.FlowsEvictedHandshake, "flows_evicted_established": es.FlowsEvictedEstablished,
		"flows_evicted_outbound": es.FlowsEvictedOutbound, "handshakes_limited": es.HandshakesLimited,
		"flow_quota_refused": es.FlowQuotaRefused, "resets_out_of_window": es.ResetsOutOfWindow,
		"resets_in_window": es.ResetsInWindow, "resets_exact": es.ResetsExact,
		"server_resyncs": es.ServerResyncs, "outbound_flows": es.OutboundFlows, "idle_resets": es.IdleResets, "icmp_translated": es.ICMPTranslated,
		"server_lacks_timestamps": es.ServerLacks[gateway.LackTimestamps], "server_lacks_wscale": es.ServerLacks[gateway.LackWScale],
		"server_lacks_sack": es.ServerLacks[gateway.LackSACK], "server_lacks_ecn": es.ServerLacks[gateway.LackECN],
	} {
		doc.Engine[k] = v
	}
	if d.queue != nil {
		for _, s := range d.queue.Stats() {
			for k, v := range map[string]uint64{
				"packets": s.Packets, "accepted": s.Accepted, "accepted_altered": s.AcceptedAltered,
				"dropped": s.Dropped, "verdict_msgs": s.VerdictMsgs, "batches": s.Batches, "sends": s.Sends,
				"injected": s.Injected, "inject_errors": s.InjectErrors, "enobufs": s.ENOBUFS,
				"parse_errors": s.ParseErrors, "kernel_errors": s.KernelErrors, "truncated": s.Truncated,
				"bad_verdicts": s.BadVerdicts,
			} {
				doc.Queue[k] += v
			}
		}
	}
	if ks, err := queue.ReadKernelQueueStats(); err == nil {
		for _, k := range ks {
			if !d.ours(k.Queue) { // d.rules is the reload task's
				continue
			}
			doc.Kernel["waiting"] += uint64(k.Waiting)
			doc.Kernel["queue_dropped"] += uint64(k.Dropped)
			doc.Kernel["user_dropped"] += uint64(k.UserDropped)
		}
		doc.Queue["queue_dropped"] = doc.Kernel["queue_dropped"]
		doc.Queue["user_dropped"] = doc.Kernel["user_dropped"]
	}
	if d.inj != nil {
		is := d.inj.Stats()
		doc.Inject["sent"] = is.Sent
		doc.Inject["errors"] = is.Errors
	}
	return doc
}

// writeStats replaces the stats file atomically (write, then rename).
func (d *Daemon) writeStats() {
	path := d.cfg.StatsFile
	if path == "" {
		return
	}
	b, err := json.MarshalIndent(d.snapshot(), "", "  ")
	if err != nil {
		return
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		d.log.Warn("writing stats file", "err", err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		d.log.Warn("writing stats file", "err", err)
	}
}
