package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/observe"
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
	// Interfaces are the interfaces that face clients (--syn-stage-if).
	// Without any the stage is off, unless Auto.
	Interfaces []string
	// Auto selects the interfaces that face clients when Interfaces names
	// none (--syn-stage-if left empty, the default): every interface that
	// is up and not loopback, less, with the forward hook, those the
	// kernel routes a guarded service's addresses through (they face the
	// servers). The choice and the reasons are logged.
	Auto bool
}

// ParseSynStageIf reads the --syn-stage-if spelling: "" selects the
// client-facing interfaces automatically, "none" (or "off") names no
// interface, else a comma-separated list of interfaces.
func ParseSynStageIf(s string) (ifs []string, auto bool, err error) {
	switch strings.TrimSpace(s) {
	case "":
		return nil, true, nil
	case "none", "off":
		return nil, false, nil
	}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		switch n {
		case "":
			continue
		case "none", "off":
			return nil, false, fmt.Errorf("--syn-stage-if %q: %s stands alone", s, n)
		}
		ifs = append(ifs, n)
	}
	if len(ifs) == 0 {
		return nil, false, fmt.Errorf("--syn-stage-if %q: no interface named", s)
	}
	return ifs, false, nil
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
	// peersAt is when the veth peers were last checked (RecheckPeers).
	peersAt time.Time

	released []synstage.Attachment // handed-over attachments detached by attach
	handover string                // the environment entry handing the stage to the next process
	// inherited says what became of a stage handed over by the previous
	// process (status): "adopted", "new program: REASON", or "".
	inherited string
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
//
// After a graceful restart the stage the previous process handed over
// (synstage.HandoverEnv) is adopted: it never detached in between, and
// keeps its keys, policy, counters and SYN cache. Without a stage to run
// here (off, no interfaces, unavailable) the handed-over one is detached.
func (d *Daemon) loadSynStage(p *policy.Policy) (_ *synStage, err error) {
	ss := &synStage{cfg: d.cfg.SynStage}
	in, ierr := synstage.InheritFromEnv()
	if ierr != nil {
		d.log.Warn("handed-over SYN stage not used; loading and attaching afresh", "err", ierr)
	}
	defer func() {
		// Load consumes in; else nothing here runs the stage.
		if in != nil {
			d.log.Warn("handed-over SYN stage detached", "reason", ss.reason, "err", err)
			in.Close()
		}
	}()
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
	if len(ss.cfg.Interfaces) == 0 && ss.cfg.Auto {
		ss.cfg.Interfaces = d.selectStageInterfaces(p)
		if len(ss.cfg.Interfaces) == 0 {
			if ss.strict() {
				return nil, fmt.Errorf("--syn-stage %s: no client-facing interface found (see the log; name them with --syn-stage-if)", ss.cfg.Mode)
			}
			ss.reason = "off: no client-facing interface found by the automatic selection (see the log; name them with --syn-stage-if)"
			return ss, nil
		}
	}
	if len(ss.cfg.Interfaces) == 0 {
		if ss.strict() {
			return nil, fmt.Errorf("--syn-stage %s: no interfaces (--syn-stage-if)", ss.cfg.Mode)
		}
		ss.reason = "off: no client-facing interfaces given (--syn-stage-if)"
		return ss, nil
	}
	st, err := synstage.Load(synstage.Options{CacheBuckets: p.Tables.CacheBuckets, CacheEntries: p.Tables.CacheEntries, Flows: p.Tables.Flows, Inherited: in})
	handed := in != nil
	in = nil
	if handed && err == nil {
		if ok, aerr := st.Adopted(); ok {
			ss.inherited = "adopted"
			d.log.Info("SYN stage adopted from the previous process: program, maps, keys and SYN cache kept, attachments never detached")
		} else {
			ss.inherited = fmt.Sprintf("new program: %v", aerr)
			d.log.Warn("handed-over SYN stage's program and maps not adopted; a new program runs on its attachments (never detached), the SYN cache starts empty", "err", aerr)
		}
	}
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

// flowTagMemory returns the stage's map of the engine's flow tags, or nil
// (the stage then answers SYNs on the tuples of live flows too, which the
// engine translates into the old flow).
func (s *synStage) flowTagMemory() []byte {
	st := s.current()
	if st == nil {
		return nil
	}
	mem, err := st.FlowTagMemory()
	if err != nil {
		return nil
	}
	return mem
}

// cacheSeed returns the tuple-hash seed of an adopted SYN cache's entries
// (zero when there is none): the engine must hash tuples with it.
func (s *synStage) cacheSeed() [4]uint64 {
	st := s.current()
	if st == nil {
		return [4]uint64{}
	}
	seed, _ := st.CacheSeed()
	return seed
}

// synAckBudget returns the stage's global SYN-ACK budget for the engine
// to charge (one limit for both), or nil.
func (s *synStage) synAckBudget() gateway.SynAckLimiter {
	st := s.current()
	if st == nil {
		return nil
	}
	b, err := st.SynAckBudget()
	if err != nil {
		// The engine keeps its own bucket: together they may send up
		// to twice the limit.
		return nil
	}
	return b
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
		err = st.ShareCache(eng.FlowSeed(), eng.CachePinMs())
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
	// Attachments handed over for interfaces or a mode no longer
	// configured.
	rel, err := st.ReleaseInherited()
	s.released = rel
	return err
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

// startStageSampling feeds the frames the stage drops to the pcap sampler
// (--pcap-file), as the engine's drops are: the program samples them at
// the sampler's rate into a ring buffer, read here until ctx ends. Without
// a pcap file the stage samples nothing (it may have been sampling for
// the process before a graceful restart).
func (d *Daemon) startStageSampling(ctx context.Context, g *errgroup.Group) {
	st := d.syn.current()
	if st == nil {
		return
	}
	smp := d.ops.sampler
	rate := 0.0
	if smp != nil {
		rate = smp.Config().Rate
	}
	if err := st.SetSampling(rate); err != nil {
		d.log.Warn("SYN stage: its drops are not sampled to the pcap file", "err", err)
		return
	}
	if smp == nil {
		return
	}
	g.Go(func() error {
		err := st.ReadSamples(ctx, func(s *synstage.Sample) {
			smp.Offer(s.Packet, stageSampleClass(s), time.Now())
		})
		if err != nil && !errors.Is(err, synstage.ErrClosed) {
			d.log.Warn("SYN stage: sampling its drops to the pcap file stopped", "err", err)
		}
		return nil
	})
}

// stageSampleClass is the pcap comment's class of a drop of the stage, as
// observe.ClassOf names the engine's.
func stageSampleClass(s *synstage.Sample) observe.Class {
	switch {
	case s.PolicyDrop:
		return observe.ClassPolicyDrop
	case s.Limited:
		return observe.ClassRateLimited
	}
	return observe.Class(s.Reason)
}

// logStage says whether the stage runs.
func (d *Daemon) logStage() {
	for _, a := range d.syn.released {
		d.log.Info("handed-over SYN stage attachment detached: no longer configured", "interface", a.Interface, "mode", a.Mode)
	}
	mode, reason := d.syn.describe()
	if mode == "off" {
		d.log.Warn("SYN stage off: SYNs go through NFQUEUE", "reason", reason)
		return
	}
	var peers []string
	if st := d.syn.current(); st != nil {
		for _, a := range st.Attachments() {
			if a.Peer {
				peers = append(peers, a.Interface)
			}
		}
	}
	d.log.Info("SYN stage attached: SYNs to guarded services are answered in the kernel", "mode", mode,
		"interfaces", strings.Join(d.syn.cfg.Interfaces, ","),
		"via_veth_peer", strings.Join(peers, ","))
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
	if now.Sub(d.syn.peersAt) >= peerCheckEvery {
		d.syn.peersAt = now
		for _, a := range st.RecheckPeers() {
			d.log.Info("SYN stage: the veth peer of an attachment changed namespace", "interface", a.Interface, "via_veth_peer", a.Peer)
		}
	}
}

// peerCheckEvery is how often the stage's veth attachments are checked
// for a peer that moved between namespaces.
const peerCheckEvery = 5 * time.Second

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

// closeStage detaches the stage, or, on a graceful restart, hands it over
// to the next process (Reexec passes the entry on): it stays attached and
// keeps answering SYNs with the same keys while the next process starts.
func (d *Daemon) closeStage() {
	st := d.syn.current()
	if st == nil {
		return
	}
	if d.restarting.Load() {
		env, err := st.Handover()
		if err == nil {
			d.syn.handover = env
			d.syn.off("handed over to the next process")
			d.log.Info("SYN stage handed over to the next process: it stays attached", "interfaces", strings.Join(d.syn.cfg.Interfaces, ","))
			return
		}
		d.log.Error("SYN stage not handed over: it detaches and the next process attaches its own", "err", err)
	}
	d.syn.off("stopped")
	d.log.Info("SYN stage detached")
}

// stageHandoverEnv returns the environment entry handing the stage to the
// next process, "" when none.
func (d *Daemon) stageHandoverEnv() string {
	if d.syn == nil {
		return ""
	}
	return d.syn.handover
}

// SynStageStatus is the stage's part of the status document.
type SynStageStatus struct {
	Mode       string   `json:"mode"` // tc, xdp or off
	Reason     string   `json:"reason,omitempty"`
	Interfaces []string `json:"interfaces,omitempty"`
	// Inherited says, after a graceful restart, what became of the stage
	// the previous process handed over: "adopted" (its program, maps and
	// SYN cache run on) or "new program: REASON" (its attachments run
	// this binary's program).
	Inherited string            `json:"inherited,omitempty"`
	Counters  map[string]uint64 `json:"counters,omitempty"`
	Drops     map[string]uint64 `json:"drops,omitempty"`
}

// stageStats returns the stage's counters by name, and its drops by reason.
func stageStats(st synstage.Stats) (counters, drops map[string]uint64) {
	counters = map[string]uint64{
		"answered": st.Answered, "unguarded": st.Unguarded, "unparsed": st.Unparsed, "pass_mode": st.PassMode,
		"not_syn": st.NotSYN, "invalid_counted": st.InvalidCounted, "no_key": st.NoKey, "bad_ip_checksum": st.BadIPChecksum,
		"martian": st.Martian, "other_host": st.OtherHost, "too_many_ranges": st.TooManyRanges, "errors": st.Errors,
		"denied": st.Denied, "policy_drop": st.PolicyDrops, "syn_limited": st.SynLimited, "synack_limited": st.SynAckLimited,
		"live_flow": st.LiveFlow,
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
		s.Interfaces = d.syn.cfg.Interfaces
		s.Inherited = d.syn.inherited
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
