package daemon

import (
	"fmt"
	"time"

	"github.com/synwall/synwall/internal/observe"
	"github.com/synwall/synwall/internal/queue"
)

// StatusVersion is the version of Status; a change that removes or
// renames a field increments it.
const StatusVersion = 1

// Status is the status document: what GET /v1/status on the control
// socket returns (as JSON) and what synwall status decodes.
type Status struct {
	Version int       `json:"version"`
	Synwall string    `json:"synwall"` // the daemon's version
	Time    time.Time `json:"time"`
	Uptime  float64   `json:"uptime_seconds"`
	Mode    struct {
		Backend  string `json:"backend"`
		Queues   string `json:"queues"`
		FailOpen bool   `json:"fail_open"`
		Hooks    string `json:"hooks"`
		Policy   string `json:"policy"`
		Services int    `json:"services"`
	} `json:"mode"`
	// Rates per second over the last second and the last 10 seconds
	// (absent in the daemon's first second).
	Rate1s  *Rate `json:"rate_1s,omitempty"`
	Rate10s *Rate `json:"rate_10s,omitempty"`
	// Window is the observer's current window: drops by class with
	// distinct sources, and the heavy hitters (decayed over windows).
	Window     observe.WindowReport  `json:"window"`
	LastWindow *observe.WindowReport `json:"last_window,omitempty"`
	Capacity   struct {
		SynCache TableUse `json:"syn_cache"`
		Flows    TableUse `json:"flows"`
		Pending  TableUse `json:"pending"`
	} `json:"capacity"`
	Kernel struct {
		Waiting     uint64 `json:"waiting"`
		QueueFull   uint64 `json:"queue_dropped"`
		SocketFull  uint64 `json:"user_dropped"`
		Unavailable string `json:"unavailable,omitempty"`
	} `json:"kernel_queue"`
	Queue struct {
		ENOBUFS      uint64 `json:"enobufs"`
		InjectErrors uint64 `json:"inject_errors"`
	} `json:"queue"`
	Reloads struct {
		OK     uint64 `json:"ok"`
		Failed uint64 `json:"failed"`
	} `json:"reloads"`
	Pcap *PcapStatus `json:"pcap,omitempty"`
	// SynStage is the BPF SYN stage: its mode (tc, xdp, or off and why)
	// and counters.
	SynStage SynStageStatus `json:"syn_stage"`
}

// TableUse is how full a fixed-size table is.
type TableUse struct {
	Used     int64 `json:"used"`
	Capacity int64 `json:"capacity"`
}

// PcapStatus is the pcap sampler's file and counters.
type PcapStatus struct {
	File string `json:"file"`
	observe.SamplerStats
}

// status builds the status document.
func (d *Daemon) status(now time.Time) Status {
	var s Status
	s.Version, s.Synwall, s.Time = StatusVersion, d.cfg.Version, now
	if !d.started.IsZero() {
		s.Uptime = now.Sub(d.started).Seconds()
	}
	s.Mode.Backend = d.qcfg.Backend.String()
	// The queues bound (qcfg is fixed before the workers start); d.rules is
	// rewritten by reloads, on another goroutine.
	qs := d.qcfg.Queues
	s.Mode.Queues = fmt.Sprintf("%d-%d", qs[0], qs[len(qs)-1])
	s.Mode.FailOpen = d.qcfg.FailOpen
	s.Mode.Hooks = hooksName(d.cfg.Traffic.Hooks)
	s.Mode.Policy = policyName(d.cfg.PolicyFile)
	if p := d.engine.Policy(); p != nil {
		s.Mode.Services = len(p.Services)
	}
	if o := d.ops; o != nil {
		if r, ok := o.rates.over(1); ok {
			s.Rate1s = &r
		}
		if r, ok := o.rates.over(10); ok {
			s.Rate10s = &r
		}
		snap := o.obs.Snapshot(now)
		s.Window, s.LastWindow = snap.Current, snap.Last
		if snap.Sampler != nil {
			s.Pcap = &PcapStatus{File: o.pcap.File, SamplerStats: *snap.Sampler}
		}
	}
	c := d.engine.Capacity()
	s.Capacity.SynCache = TableUse{int64(c.CacheEntries), int64(c.CacheCapacity)}
	s.Capacity.Flows = TableUse{c.Flows, int64(c.FlowsCapacity)}
	s.Capacity.Pending = TableUse{int64(c.PendingUsed), int64(c.PendingSlots)}
	if ks, err := queue.ReadKernelQueueStats(); err == nil {
		for _, k := range ks {
			if !d.ours(k.Queue) {
				continue
			}
			s.Kernel.Waiting += uint64(k.Waiting)
			s.Kernel.QueueFull += k.Dropped
			s.Kernel.SocketFull += k.UserDropped
		}
	} else {
		s.Kernel.Unavailable = err.Error()
	}
	if d.queue != nil {
		for _, q := range d.queue.Stats() {
			s.Queue.ENOBUFS += q.ENOBUFS
			s.Queue.InjectErrors += q.InjectErrors
		}
	}
	s.Reloads.OK, s.Reloads.Failed = d.reloadCounts()
	s.SynStage = d.synStageStatus()
	return s
}
