package daemon

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
	"github.com/synwall/synwall/internal/synstage"
)

// SynStageConfig configures the BPF SYN stage (internal/synstage): a
// program on the ingress of the interfaces that face clients which answers
// SYNs with the engine's cookies before they reach NFQUEUE.
type SynStageConfig struct {
	// Mode is "auto" (tcx when it loads and attaches, else NFQUEUE alone,
	// said in the log, status and metrics), "tc", "xdp" (native XDP; the
	// daemon fails to start when the stage cannot run) or "off" (also the
	// empty string).
	Mode string
	// Interfaces are the interfaces that face clients. Without any the
	// stage is off.
	Interfaces []string
}

// ParseSynStageMode checks the --syn-stage spelling.
func ParseSynStageMode(s string) (string, error) {
	switch s {
	case "auto", "tc", "xdp", "off":
		return s, nil
	}
	return "", fmt.Errorf("--syn-stage %q: want auto, tc, xdp or off", s)
}

// synStage is the daemon's view of the stage: the stage when it runs, else
// why it does not.
type synStage struct {
	cfg SynStageConfig

	mu     sync.Mutex
	stage  *synstage.Stage // nil when off
	mode   synstage.AttachMode
	reason string // why the stage is off ("" when it runs)
	keyErr bool   // a key rotation failed (logged once)
}

// strict reports whether the configured mode must run or fail the daemon.
func (s *synStage) strict() bool { return s.cfg.Mode == "tc" || s.cfg.Mode == "xdp" }

// off records why the stage does not run and releases it.
func (s *synStage) off(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stage != nil {
		s.stage.Close()
		s.stage = nil
	}
	s.reason = reason
}

// current returns the running stage, or nil.
func (s *synStage) current() *synstage.Stage {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stage
}

// loadSynStage loads the stage for policy p, before the engine is built
// (the engine keeps its SYN cache in the stage's maps). With mode auto, a
// stage that cannot load is off with the reason; with tc or xdp it is an
// error.
func (d *Daemon) loadSynStage(p *policy.Policy) (*synStage, error) {
	ss := &synStage{cfg: d.cfg.SynStage}
	switch ss.cfg.Mode {
	case "", "off":
		ss.reason = "off (--syn-stage off)"
		return ss, nil
	case "auto", "tc":
		ss.mode = synstage.AttachTCX
	case "xdp":
		ss.mode = synstage.AttachXDP
	default:
		return nil, fmt.Errorf("--syn-stage %q: want auto, tc, xdp or off", ss.cfg.Mode)
	}
	if len(ss.cfg.Interfaces) == 0 {
		if ss.strict() {
			return nil, fmt.Errorf("--syn-stage %s: no interfaces (--syn-stage-if)", ss.cfg.Mode)
		}
		ss.reason = "off: no client-facing interfaces given (--syn-stage-if)"
		return ss, nil
	}
	st, err := synstage.Load(synstage.Options{CacheBuckets: p.Tables.CacheBuckets, CacheEntries: p.Tables.CacheEntries})
	if err != nil {
		if ss.strict() {
			return nil, err
		}
		ss.reason = "unavailable: " + err.Error()
		return ss, nil
	}
	ss.stage = st
	return ss, nil
}

// cacheMemory returns the stage's SYN cache for the engine, or nil.
func (s *synStage) cacheMemory() (*gateway.CacheMemory, error) {
	st := s.current()
	if st == nil {
		return nil, nil
	}
	mem, err := st.CacheMemory()
	if err != nil {
		if s.strict() {
			return nil, err
		}
		s.off("unavailable: " + err.Error())
		return nil, nil
	}
	return mem, nil
}

// start gives the stage the engine's cache seed, the policy and the keys.
func (s *synStage) start(eng *gateway.Engine, p *policy.Policy, now time.Time, cacheShared bool) error {
	st := s.current()
	if st == nil {
		return nil
	}
	err := st.SetPolicy(p)
	if err == nil {
		err = st.Rotate(eng.Jar(), now)
	}
	if err == nil && cacheShared {
		err = st.ShareCache(eng.FlowSeed())
	}
	if err != nil {
		if s.strict() {
			return err
		}
		s.off("unavailable: " + err.Error())
	}
	return nil
}

// attach attaches the stage to its interfaces (in Run, once the rules
// are in place: the handshake ACKs of the SYNs it answers go to the
// queues). A failure leaves NFQUEUE alone in auto mode.
func (s *synStage) attach() error {
	if s == nil {
		return nil
	}
	st := s.current()
	if st == nil {
		return nil
	}
	for _, ifname := range s.cfg.Interfaces {
		if err := st.Attach(ifname, s.mode); err != nil {
			if s.strict() {
				return err
			}
			s.off("unavailable: " + err.Error())
			return nil
		}
	}
	return nil
}

// describe returns the mode in force ("tc", "xdp" or "off") and the reason
// it is off.
func (s *synStage) describe() (mode, reason string) {
	if s == nil {
		return "off", "not configured"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stage == nil {
		return "off", s.reason
	}
	return s.mode.String(), ""
}

// logStage says whether the stage runs.
func (d *Daemon) logStage() {
	mode, reason := d.syn.describe()
	if mode == "off" {
		d.log.Warn("SYN stage off: SYNs go through NFQUEUE", "reason", reason)
		return
	}
	d.log.Info("SYN stage attached: SYNs to guarded services are answered in the kernel", "mode", mode,
		"interfaces", strings.Join(d.cfg.SynStage.Interfaces, ","))
}

// rotate gives the stage the keys of now (every housekeeping tick; the
// stage writes only what changed).
func (d *Daemon) rotateStage(now time.Time) {
	st := d.syn.current()
	if st == nil {
		return
	}
	if err := st.Rotate(d.engine.Jar(), now); err != nil && !d.syn.keyErr {
		d.syn.keyErr = true
		d.log.Error("SYN stage: writing the cookie keys failed; SYNs it cannot key pass to NFQUEUE", "err", err)
	}
}

// setStagePolicy follows a reload. A stage that cannot take the new policy
// is detached, so that it never answers for a policy the engine no longer
// has.
func (d *Daemon) setStagePolicy(p *policy.Policy) {
	st := d.syn.current()
	if st == nil {
		return
	}
	if err := st.SetPolicy(p); err != nil {
		d.syn.off("detached: the reloaded policy could not be loaded: " + err.Error())
		d.log.Error("SYN stage detached: SYNs go through NFQUEUE", "err", err)
	}
}

// closeStage detaches the stage.
func (d *Daemon) closeStage() {
	if st := d.syn.current(); st != nil {
		d.syn.off("stopped")
		d.log.Info("SYN stage detached")
	}
}

// SynStageStatus is the stage's part of the status document.
type SynStageStatus struct {
	Mode       string            `json:"mode"` // tc, xdp or off
	Reason     string            `json:"reason,omitempty"`
	Interfaces []string          `json:"interfaces,omitempty"`
	Counters   map[string]uint64 `json:"counters,omitempty"`
	Drops      map[string]uint64 `json:"drops,omitempty"`
}

// stageStats returns the stage's counters by name, and its drops by reason.
func stageStats(st synstage.Stats) (counters, drops map[string]uint64) {
	counters = map[string]uint64{
		"answered": st.Answered, "unguarded": st.Unguarded, "unparsed": st.Unparsed, "pass_mode": st.PassMode,
		"not_syn": st.NotSYN, "invalid_counted": st.InvalidCounted, "no_key": st.NoKey, "bad_ip_checksum": st.BadIPChecksum,
		"martian": st.Martian, "other_host": st.OtherHost, "too_many_ranges": st.TooManyRanges, "errors": st.Errors,
		"denied": st.Denied, "policy_drop": st.PolicyDrops, "syn_limited": st.SynLimited, "synack_limited": st.SynAckLimited,
	}
	drops = map[string]uint64{}
	for r := header.OK + 1; r < header.NumReasons; r++ {
		drops[r.String()] = st.Drops[r]
	}
	return counters, drops
}

// synStageStatus builds the stage's status.
func (d *Daemon) synStageStatus() SynStageStatus {
	mode, reason := d.syn.describe()
	s := SynStageStatus{Mode: mode, Reason: reason}
	if st := d.syn.current(); st != nil {
		s.Interfaces = d.cfg.SynStage.Interfaces
		if stats, err := st.Stats(); err == nil {
			s.Counters, s.Drops = stageStats(stats)
		}
	}
	return s
}

var (
	descStageUp = desc("syn_stage_up",
		"1 when the BPF SYN stage is attached (mode tc or xdp), 0 when SYNs go through NFQUEUE alone (mode off; the reason is in the log and the status).", "mode")
	descStagePackets = desc("syn_stage_packets_total",
		"Packets the BPF SYN stage handled, by outcome: answered (SYN answered with a cookie SYN-ACK), denied, policy_drop, syn_limited, synack_limited (dropped), or passed on (unguarded, unparsed, not_syn, ...).", "outcome")
	descStageDrops = desc("syn_stage_invalid_packets_total",
		"Malformed and invalid-flag packets the BPF SYN stage dropped, by the engine's reason.", "reason")
)

// collectStage adds the stage's metrics.
func (c *collector) collectStage(ch chan<- prometheus.Metric) {
	mode, _ := c.d.syn.describe()
	up := 0.0
	if mode != "off" {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descStageUp, prometheus.GaugeValue, up, mode)
	st := c.d.syn.current()
	if st == nil {
		return
	}
	stats, err := st.Stats()
	if err != nil {
		return
	}
	counters, drops := stageStats(stats)
	for k, v := range counters {
		ch <- prometheus.MustNewConstMetric(descStagePackets, prometheus.CounterValue, float64(v), k)
	}
	for k, v := range drops {
		ch <- prometheus.MustNewConstMetric(descStageDrops, prometheus.CounterValue, float64(v), k)
	}
}
