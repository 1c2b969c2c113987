package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/synwall/synwall/deploy/lab/synflood"
)

// The SYN-path measurement: a defense in the gateway, a fixed spoofed rate
// from the generator (package synflood) in the attacker namespace for a
// bounded time, and what it cost. SYN-ACKs are counted where they arrive,
// at the attacker's raw-table rule that drops them (whoever sent them: the
// server, SYNPROXY, synwall's queue path or its BPF stage); CPU is the
// whole machine's busy time from /proc/stat over the run; the defense's
// cost per SYN-ACK is its CPU above a baseline run with the same offered
// load in which the gateway simply drops the spoofed SYNs (DefenseDrop).
// Compare results of one lab run only: the machine is shared.

// DefenseKind is what a Defense puts in the gateway.
type DefenseKind int

const (
	_ DefenseKind = iota // invalid
	// DefenseDrop: an iptables DROP rule in the gateway's raw PREROUTING
	// for the spoofed prefixes' SYNs (IPv4 and IPv6): the baseline.
	DefenseDrop
	// DefenseNone: nothing in the gateway; the server answers what it can.
	DefenseNone
	// DefenseSynproxy: kernel SYNPROXY as InstallSynproxy sets it up.
	DefenseSynproxy
	// DefenseSynwall: `synwall run` with Defense.SynwallArgs.
	DefenseSynwall
	// DefenseCustom: Defense.Setup puts it in the gateway (the benchmarks'
	// bare bounce, the floor of a kernel SYN stage).
	DefenseCustom
)

// Defense is one row of the measurement.
type Defense struct {
	Name string
	Kind DefenseKind
	// SynwallArgs are added to `synwall run` (DefenseSynwall).
	SynwallArgs []string
	// Setup puts a DefenseCustom in the gateway and returns what removes
	// it.
	Setup func(ctx context.Context, l *Lab) (undo func() error, err error)
	// RequireFlag, if set, is a flag of `synwall run` the defense needs:
	// when `synwall run -h` does not list it, the row is not measured and
	// says NotAvailable.
	RequireFlag string
}

// SynStageFlag is the `synwall run` flag that chooses the BPF SYN stage
// (auto, tc, xdp or off); SynStageFlag+"-if" names the interfaces that face
// clients, where it answers (the gateway's IfClient and IfAttacker here).
const SynStageFlag = "syn-stage"

// NotAvailable is what a row says when the synwall binary lacks a flag its
// defense needs.
const NotAvailable = "not available in this build"

// Names of the standard defenses.
const (
	NameDrop     = "drop (baseline)"
	NameNone     = "no defense"
	NameSynproxy = "kernel SYNPROXY"
	NameNFQueue  = "synwall, NFQUEUE only"
	NameBPF      = "synwall + BPF SYN stage"
)

// StandardDefenses are the rows of the demo and the benchmark: the drop
// baseline, optionally no defense, kernel SYNPROXY, synwall on NFQUEUE
// alone and synwall with the BPF SYN stage. stage is the value of
// --syn-stage for the latter (the lab's veths want "tc"), on the gateway's
// client and attacker interfaces. hasStage (SynwallHasFlag) gives the
// NFQUEUE-only row "--syn-stage off", so that it stays off whatever the
// default.
func StandardDefenses(withNone bool, stage string, hasStage bool) []Defense {
	d := []Defense{{Name: NameDrop, Kind: DefenseDrop}}
	if withNone {
		d = append(d, Defense{Name: NameNone, Kind: DefenseNone})
	}
	nfq := Defense{Name: NameNFQueue, Kind: DefenseSynwall}
	if hasStage {
		nfq.SynwallArgs = []string{"--" + SynStageFlag, "off"}
	}
	return append(d,
		Defense{Name: NameSynproxy, Kind: DefenseSynproxy},
		nfq,
		Defense{Name: NameBPF, Kind: DefenseSynwall, RequireFlag: SynStageFlag,
			SynwallArgs: []string{"--" + SynStageFlag, stage, "--" + SynStageFlag + "-if", IfClient + "," + IfAttacker}},
	)
}

// SynwallHasFlag tells whether `bin run -h` lists flag (without dashes).
func SynwallHasFlag(ctx context.Context, bin, flag string) (bool, error) {
	out, err := exec.CommandContext(ctx, bin, "run", "-h").CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return false, fmt.Errorf("lab: %s run -h: %w", bin, err)
	}
	return regexp.MustCompile(`(?m)^\s+--?` + regexp.QuoteMeta(flag) + `\b`).Match(out), nil
}

// SynLoad is the offered load of one measurement.
type SynLoad struct {
	Target netip.AddrPort // ServerV4:80 or [ServerV6]:80
	// Generator is the command of the spoofed-SYN generator, run in the
	// attacker namespace with synflood's flags appended: `synwall-lab
	// synflood` or bench/synflood's binary.
	Generator  []string
	Rate       int // per generator, packets per second
	Generators int // generators side by side (default 1)
	// Hpings are `hping3 -S --flood` runs beside the generators, from the
	// attacker's own address (IPv4 targets only).
	Hpings   int
	Duration time.Duration // of every flood, at most synflood.MaxDuration
	// Connections, if positive, are legitimate HTTP connections from the
	// client (GET /small, Concurrency at once, Timeout each) spread over
	// the flood.
	Connections, Concurrency int
	Timeout                  time.Duration
	// InvalidSets, if positive, sends that many of InvalidFlagSets (50
	// packets each, hping3) after the floods: synwall counts them dropped.
	InvalidSets int
	// Repeat runs the floods this many times (default 1) and keeps the
	// run in which the machine was least busy: other work on a shared
	// machine only ever adds CPU time. Not with Connections or InvalidSets.
	Repeat int
	// QuietBelow, if positive, waits before each run (at most QuietWait)
	// until the machine's busy share over half a second is below it: a
	// shared machine's other work then less often lands in the run.
	QuietBelow float64
	QuietWait  time.Duration
	// Prepare, if set, runs before the load (the demo starts a fresh
	// listener, whose SYN queue an earlier flood has not filled).
	Prepare func() error
}

func (s SynLoad) validate() (SynLoad, error) {
	if len(s.Generator) == 0 {
		return s, errors.New("lab: no generator command")
	}
	if s.Generators <= 0 {
		s.Generators = 1
	}
	if s.Generators > 4 || s.Hpings < 0 || s.Hpings > 4 {
		return s, fmt.Errorf("lab: %d generators and %d hping3 floods: at most 4 of each", s.Generators, s.Hpings)
	}
	if s.Hpings > 0 && !s.Target.Addr().Is4() {
		return s, fmt.Errorf("lab: hping3 floods need an IPv4 target, not %v", s.Target)
	}
	if s.Concurrency <= 0 {
		s.Concurrency = 10
	}
	if s.Repeat <= 0 {
		s.Repeat = 1
	}
	if s.Repeat > 1 && (s.Connections > 0 || s.InvalidSets > 0) {
		return s, errors.New("lab: a repeated load has no legitimate connections or invalid packets")
	}
	if s.Timeout <= 0 {
		s.Timeout = 3 * time.Second
	}
	// The generator refuses the same; checking here fails before any
	// defense is set up.
	_, err := synflood.Config{Dst: s.Target, Sources: synflood.DefaultSources(s.Target.Addr()), Rate: s.Rate, Duration: s.Duration}.Validate()
	return s, err
}

// SynResult is one defense under one load.
type SynResult struct {
	Defense Defense
	// NotMeasured, if not empty, says why the row has no numbers
	// (NotAvailable).
	NotMeasured string

	Sent, HpingSent int           // packets the generators and hping3 sent
	Elapsed         time.Duration // the floods' wall time (to the last one's end)
	// SynAcks are the SYN-ACKs that reached the attacker addressed to the
	// generator's spoofed sources; AllSynAcks every SYN-ACK that reached it
	// (hping3's too, and late answers to earlier runs).
	SynAcks, AllSynAcks uint64
	// Busy is the CPU time every core of the machine spent not idle over
	// Window (from just before the floods to a moment after they ended).
	Busy, Window time.Duration
	CPUs         int
	// BusyShares are the busy shares of every repetition (SynLoad.Repeat),
	// the one kept among them.
	BusyShares  []float64
	Load        LoadResult // Attempts 0 without legitimate connections
	InvalidSent int        // packets with invalid flag sets (SynLoad.InvalidSets)
	// TaskCPU is the CPU time of the flood's tasks (see TaskCPU) in the
	// repetition of least CPU per packet, with that run's counts (other
	// work adds little to it, but the run kept for Busy need not be it).
	TaskCPU TaskCPU
	// Stats are synwall's counters before and after (DefenseSynwall).
	Before, After Stats
}

// Measured reports whether the row has numbers.
func (r SynResult) Measured() bool { return r.NotMeasured == "" }

// OfferedPPS is what the generators and hping3 sent per second.
func (r SynResult) OfferedPPS() float64 { return perSecond(float64(r.Sent+r.HpingSent), r.Elapsed) }

// SynAckPPS is SYN-ACKs to the spoofed sources per second.
func (r SynResult) SynAckPPS() float64 { return perSecond(float64(r.SynAcks), r.Elapsed) }

// AllSynAckPPS is every SYN-ACK at the attacker per second.
func (r SynResult) AllSynAckPPS() float64 { return perSecond(float64(r.AllSynAcks), r.Elapsed) }

// BusyShare is the machine's busy share over the window (1: every core).
func (r SynResult) BusyShare() float64 {
	if r.Window <= 0 || r.CPUs <= 0 {
		return 0
	}
	return r.Busy.Seconds() / (r.Window.Seconds() * float64(r.CPUs))
}

func perSecond(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

// ExtraCPUPerSynAck is r's whole-machine CPU time per SYN-ACK above what
// base, the drop baseline, spent for as many packets: base's busy CPU per
// packet sent times the packets r sent (the generator's own cost and the
// drop scale with the packets, and a saturated machine slows the
// generator), subtracted from r's busy CPU and divided by r's SYN-ACKs.
// False when r answered too little to say (under minShare of what it was
// offered) or either row has no numbers. It may be negative when the
// defense costs less than the noise of the machine.
func ExtraCPUPerSynAck(r, base SynResult, minShare float64) (time.Duration, bool) {
	sent, baseSent := float64(r.Sent+r.HpingSent), float64(base.Sent+base.HpingSent)
	if !r.Measured() || !base.Measured() || baseSent <= 0 || r.SynAcks == 0 || float64(r.SynAcks) < minShare*sent {
		return 0, false
	}
	extra := r.Busy.Seconds() - base.Busy.Seconds()*sent/baseSent
	return time.Duration(extra / float64(r.SynAcks) * float64(time.Second)), true
}

// ExtraTaskCPUPerSynAck is ExtraCPUPerSynAck on the flood's tasks' CPU
// time (TaskCPU, with the packet counts of the run it was measured in)
// instead of the machine's busy ticks. Only the generators' packets count
// (hping3's CPU is not measured).
func ExtraTaskCPUPerSynAck(r, base SynResult, minShare float64) (time.Duration, bool) {
	t, bt := r.TaskCPU, base.TaskCPU
	sent := float64(t.Sent)
	if !r.Measured() || !base.Measured() || bt.Sent <= 0 || r.HpingSent+base.HpingSent > 0 || t.SynAcks == 0 || float64(t.SynAcks) < minShare*sent {
		return 0, false
	}
	extra := t.Total().Seconds() - bt.perPacket()*sent
	return time.Duration(extra / float64(t.SynAcks) * float64(time.Second)), true
}

// attackerComment is the comment of the attacker's rule that drops the
// SYN-ACKs arriving there (see build); spoofComment that of the rule this
// file adds before it, which counts those addressed to the spoofed
// prefixes.
const (
	attackerComment = "lab: attacker stays silent"
	spoofComment    = "lab: SYN-ACKs to the spoofed sources"
)

// synAckCounters reads the attacker's SYN-ACK counters, IPv4 and IPv6
// together: to the spoofed prefixes, and all.
func (l *Lab) synAckCounters(ctx context.Context) (spoofed, all uint64, err error) {
	for _, ipt := range []string{"iptables", "ip6tables"} {
		out, err := l.Exec(ctx, l.Attacker, ipt, "-w", "10", "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n")
		if err != nil {
			return 0, 0, err
		}
		s, err := parseRuleCounter(out, spoofComment)
		if err != nil {
			return 0, 0, err
		}
		a, err := parseRuleCounter(out, attackerComment)
		if err != nil {
			return 0, 0, err
		}
		spoofed, all = spoofed+s, all+a
	}
	return spoofed, all, nil
}

// countSpoofed adds, once, the attacker's counting rules (no target) for
// SYN-ACKs to SpoofPrefix and SpoofPrefix6, before the rule that drops
// them.
func (l *Lab) countSpoofed(ctx context.Context) error {
	for _, f := range []struct {
		ipt string
		p   netip.Prefix
	}{{"iptables", SpoofPrefix}, {"ip6tables", SpoofPrefix6}} {
		rule := []string{"PREROUTING", "-d", f.p.String(), "-p", "tcp", "--tcp-flags", "SYN,ACK", "SYN,ACK", "-m", "comment", "--comment", spoofComment}
		if _, err := l.Exec(ctx, l.Attacker, f.ipt, append([]string{"-w", "10", "-t", "raw", "-C"}, rule...)...); err == nil {
			continue
		}
		if _, err := l.Exec(ctx, l.Attacker, f.ipt, append([]string{"-w", "10", "-t", "raw", "-I", rule[0], "1"}, rule[1:]...)...); err != nil {
			return err
		}
	}
	return nil
}

// parseRuleCounter is the packet counter of the first rule whose line in
// `iptables -L CHAIN -v -x -n` output contains match.
func parseRuleCounter(out, match string) (uint64, error) {
	lines := strings.Split(out, "\n")
	for _, line := range lines[min(2, len(lines)):] {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(line, match) {
			return strconv.ParseUint(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("lab: no rule matching %q in:\n%s", match, out)
}

// CPUTicks are the busy and total ticks (USER_HZ) of every CPU together,
// the first line of /proc/stat (proc(5)): busy is user, nice, system, irq,
// softirq and steal; total adds idle and iowait.
type CPUTicks struct{ Busy, Total uint64 }

// userHZ is the unit of /proc/stat (USER_HZ, 100 wherever Linux exports
// it to user space).
const userHZ = 100

// ReadCPUTicks reads /proc/stat.
func ReadCPUTicks() (CPUTicks, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return CPUTicks{}, err
	}
	defer f.Close()
	return parseCPUTicks(f)
}

func parseCPUTicks(r io.Reader) (CPUTicks, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || f[0] != "cpu" {
			continue
		}
		var v [8]uint64
		for i := range v {
			var err error
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return CPUTicks{}, fmt.Errorf("/proc/stat: %q: %w", sc.Text(), err)
			}
		}
		// user nice system idle iowait irq softirq steal
		busy := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
		return CPUTicks{Busy: busy, Total: busy + v[3] + v[4]}, nil
	}
	return CPUTicks{}, errors.New("/proc/stat: no cpu line")
}

// dropComment marks the baseline's rules in the gateway.
const dropComment = "lab: baseline drops the spoofed SYNs"

// setUp puts d in the gateway and returns what removes it.
func (l *Lab) setUp(ctx context.Context, d Defense, base SynwallConfig, sw **Synwall) (func() error, error) {
	switch d.Kind {
	case DefenseNone:
		return nil, nil
	case DefenseDrop:
		var added []string
		undo := func() error {
			var errs []error
			c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i, ipt := range added {
				p := []netip.Prefix{SpoofPrefix, SpoofPrefix6}[i]
				if _, err := l.Exec(c, l.Gateway, ipt, dropRule("-D", p)...); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		}
		for i, ipt := range []string{"iptables", "ip6tables"} {
			p := []netip.Prefix{SpoofPrefix, SpoofPrefix6}[i]
			if _, err := l.Exec(ctx, l.Gateway, ipt, dropRule("-I", p)...); err != nil {
				return nil, errors.Join(err, undo())
			}
			added = append(added, ipt)
		}
		return undo, nil
	case DefenseSynproxy:
		undo, _, err := l.InstallSynproxy(ctx)
		return undo, err
	case DefenseCustom:
		if d.Setup == nil {
			return nil, fmt.Errorf("lab: defense %q has no Setup", d.Name)
		}
		return d.Setup(ctx, l)
	case DefenseSynwall:
		if base.Binary == "" {
			return nil, errors.New("lab: no synwall binary")
		}
		base.Args = append(append([]string(nil), base.Args...), d.SynwallArgs...)
		s, err := l.StartSynwall(ctx, base)
		if err != nil {
			return nil, err
		}
		*sw = s
		return s.Stop, nil
	}
	return nil, fmt.Errorf("lab: defense %q of kind %d", d.Name, d.Kind)
}

func dropRule(op string, p netip.Prefix) []string {
	return []string{"-w", "10", "-t", "raw", op, "PREROUTING", "-s", p.String(), "-p", "tcp", "--syn",
		"-m", "comment", "--comment", dropComment, "-j", "DROP"}
}

// MeasureSyn sets up d in the gateway, offers each load in turn, and
// removes d again: one result per load. A synwall defense (started from
// base, with d.SynwallArgs appended) whose RequireFlag the binary lacks
// gives rows with NotMeasured set and no error.
func (l *Lab) MeasureSyn(ctx context.Context, d Defense, base SynwallConfig, loads ...SynLoad) (res []SynResult, err error) {
	for i := range loads {
		if loads[i], err = loads[i].validate(); err != nil {
			return nil, err
		}
		res = append(res, SynResult{Defense: d, CPUs: runtime.NumCPU()})
	}
	if d.RequireFlag != "" {
		ok, err := SynwallHasFlag(ctx, base.Binary, d.RequireFlag)
		if err != nil {
			return nil, err
		}
		if !ok {
			for i := range res {
				res[i].NotMeasured = NotAvailable
			}
			return res, nil
		}
	}
	var sw *Synwall
	undo, err := l.setUp(ctx, d, base, &sw)
	if undo != nil {
		defer func() {
			if uerr := undo(); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	for i, load := range loads {
		if err := l.measureOne(ctx, load, sw, &res[i]); err != nil {
			if sw != nil {
				err = fmt.Errorf("%w; synwall stderr:\n%s", err, shorten(sw.Stderr()))
			}
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
	}
	return res, nil
}

func (l *Lab) measureOne(ctx context.Context, load SynLoad, sw *Synwall, res *SynResult) error {
	if load.Prepare != nil {
		if err := load.Prepare(); err != nil {
			return err
		}
	}
	if load.Connections > 0 {
		// The defense must let a client through before it is measured.
		r, err := l.Connect(ctx, Load{Addr: load.Target, N: 3, Concurrency: 1, Timeout: 3 * time.Second})
		if err != nil {
			return err
		}
		if r.OK != r.Attempts {
			return fmt.Errorf("lab: the client cannot reach the server before the flood: %v", r)
		}
	}
	var err error
	if sw != nil {
		if res.Before, err = sw.Stats(); err != nil {
			return err
		}
	}
	for i := range load.Repeat {
		if err := waitQuiet(ctx, load.QuietBelow, load.QuietWait); err != nil {
			return err
		}
		r := SynResult{Defense: res.Defense, CPUs: res.CPUs, Before: res.Before}
		if err := l.offer(ctx, load, sw, &r); err != nil {
			return err
		}
		shares := append(res.BusyShares, r.BusyShare())
		task := r.TaskCPU
		if i > 0 {
			task = lessTaskCPU(res.TaskCPU, task)
		}
		if i == 0 || r.BusyShare() < res.BusyShare() {
			*res = r
		}
		res.BusyShares = shares
		res.TaskCPU = task
	}
	for _, flags := range InvalidFlagSets[:min(len(InvalidFlagSets), load.InvalidSets)] {
		r, err := l.Flood(ctx, Flood{Target: load.Target.Addr(), Port: load.Target.Port(), Flags: flags, Count: 50, Interval: "u200", Duration: 5 * time.Second})
		if err != nil {
			return err
		}
		res.InvalidSent += r.Sent
	}
	if sw != nil {
		// The stats file is written every second.
		if err := sleepCtx(ctx, 1100*time.Millisecond); err != nil {
			return err
		}
		if res.After, err = sw.Stats(); err != nil {
			return err
		}
	}
	return nil
}

// LessBusy is the one of two runs of the same load in which the machine
// was less busy, with the busy shares of both and the lesser TaskCPU.
func LessBusy(a, b SynResult) SynResult {
	shares := append(append([]float64(nil), a.BusyShares...), b.BusyShares...)
	task := lessTaskCPU(a.TaskCPU, b.TaskCPU)
	if b.BusyShare() < a.BusyShare() {
		a = b
	}
	a.BusyShares = shares
	a.TaskCPU = task
	return a
}

// waitQuiet samples the machine's busy share every half second until it
// is below share or wait has passed.
func waitQuiet(ctx context.Context, share float64, wait time.Duration) error {
	if share <= 0 {
		return nil
	}
	deadline := time.Now().Add(wait)
	for {
		a, err := ReadCPUTicks()
		if err != nil {
			return err
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
		b, err := ReadCPUTicks()
		if err != nil {
			return err
		}
		if b.Total <= a.Total || float64(b.Busy-a.Busy)/float64(b.Total-a.Total) < share || time.Now().After(deadline) {
			return nil
		}
	}
}

// Delta is how much synwall counter k of Events grew over the run.
func (r SynResult) Delta(k string) uint64 {
	return r.After.Events[k] - min(r.Before.Events[k], r.After.Events[k])
}

// Dropped is how many packets synwall dropped as invalid over the run.
func (r SynResult) Dropped() uint64 {
	return r.After.DropsTotal() - min(r.Before.DropsTotal(), r.After.DropsTotal())
}

func shorten(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var genSentRE = regexp.MustCompile(`sent (\d+) packets in`)

// settle is how long after the floods the counters are read: the last
// SYN-ACKs are on their way.
const settle = 300 * time.Millisecond

// offer runs load's floods (and legitimate connections) and fills res's
// counts.
func (l *Lab) offer(ctx context.Context, load SynLoad, sw *Synwall, res *SynResult) error {
	if err := l.countSpoofed(ctx); err != nil {
		return err
	}
	s0, a0, err := l.synAckCounters(ctx)
	if err != nil {
		return err
	}
	c0, err := ReadCPUTicks()
	if err != nil {
		return err
	}
	k0 := softirqThreadsCPU()
	var d0 time.Duration
	if sw != nil {
		var err error
		if d0, err = pidCPU(sw.PID()); err != nil {
			return err
		}
	}
	var genCPU atomic.Int64
	t0 := time.Now()
	type done struct {
		sent int
		end  time.Time
		err  error
	}
	n := load.Generators + load.Hpings
	dc := make(chan done, n)
	count := int(float64(load.Rate) * load.Duration.Seconds())
	for range load.Generators {
		go func() {
			gctx, cancel := context.WithTimeout(ctx, load.Duration+5*time.Second)
			defer cancel()
			args := append(append([]string(nil), load.Generator[1:]...),
				"-dst", load.Target.String(), "-sources", synflood.DefaultSources(load.Target.Addr()).String(),
				"-rate", strconv.Itoa(load.Rate), "-duration", load.Duration.String(), "-count", strconv.Itoa(count))
			cmd := l.Cmd(gctx, l.Attacker, load.Generator[0], args...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				dc <- done{0, time.Now(), fmt.Errorf("generator: %w: %s", err, strings.TrimSpace(string(out)))}
				return
			}
			genCPU.Add(int64(processCPU(cmd.ProcessState)))
			m := genSentRE.FindSubmatch(out)
			if m == nil {
				dc <- done{0, time.Now(), fmt.Errorf("generator: no packet count in %q", out)}
				return
			}
			k, _ := strconv.Atoi(string(m[1]))
			dc <- done{k, time.Now(), nil}
		}()
	}
	for range load.Hpings {
		go func() {
			f, err := l.Flood(ctx, Flood{Target: load.Target.Addr(), Port: load.Target.Port(), Flags: []string{"-S"}, Duration: load.Duration})
			dc <- done{-f.Sent - 1, time.Now(), err} // negative: hping3's
		}()
	}
	var lerr error
	if load.Connections > 0 {
		// From half a second after the floods start to a second before
		// they end.
		warm := min(500*time.Millisecond, load.Duration/5)
		if err := sleepCtx(ctx, warm); err == nil {
			res.Load, lerr = l.Connect(ctx, Load{Addr: load.Target, N: load.Connections, Concurrency: load.Concurrency,
				Timeout: load.Timeout, Spread: max(load.Duration-warm-time.Second, 0)})
		} else {
			lerr = err
		}
	}
	var end time.Time
	var errs []error
	for range n {
		d := <-dc
		if d.sent < 0 {
			res.HpingSent += -d.sent - 1
		} else {
			res.Sent += d.sent
		}
		if d.end.After(end) {
			end = d.end
		}
		errs = append(errs, d.err)
	}
	res.Elapsed = end.Sub(t0)
	if err := errors.Join(append(errs, lerr)...); err != nil {
		return err
	}
	if err := sleepCtx(ctx, settle); err != nil {
		return err
	}
	c1, err := ReadCPUTicks()
	if err != nil {
		return err
	}
	res.Window = time.Since(t0)
	s1, a1, err := l.synAckCounters(ctx)
	if err != nil {
		return err
	}
	res.SynAcks, res.AllSynAcks = s1-min(s0, s1), a1-min(a0, a1)
	res.Busy = time.Duration(c1.Busy-min(c0.Busy, c1.Busy)) * (time.Second / userHZ)
	res.TaskCPU = TaskCPU{Generators: time.Duration(genCPU.Load()), Softirqd: max(softirqThreadsCPU()-k0, 0), Sent: res.Sent, SynAcks: res.SynAcks}
	if sw != nil {
		d1, err := pidCPU(sw.PID())
		if err != nil {
			return err
		}
		res.TaskCPU.Synwall = max(d1-d0, 0)
	}
	return nil
}

// TaskCPU is the CPU time of the tasks that carry a spoofed flood, from
// the scheduler's runtime of each task rather than ticks (the generators'
// to the microsecond, from their exit status; the daemon's and the
// ksoftirqd threads' to the 10 ms of /proc/PID/stat): the
// generators, whose sends run the whole path of a veth lab inline (the
// gateway's tc and netfilter hooks, the SYN-ACK back into the attacker's
// namespace); the kernel's ksoftirqd threads, which take the softirq work
// a busy CPU defers; and the synwall daemon over the flood. Unlike the
// machine's busy ticks (CPUTicks: the kernel here samples busy time at each
// 4 ms tick), it holds little of other work on a shared machine. It
// relies on softirq work being charged to the task it interrupts, as on
// kernels without CONFIG_IRQ_TIME_ACCOUNTING (this one); with it, the
// inline packet path would be missing from the generators' time.
type TaskCPU struct {
	Generators, Softirqd, Synwall time.Duration
	// Sent and SynAcks are the generators' packets and the SYN-ACKs of
	// the run these times were measured in (SynResult keeps another run's
	// counts when the least busy run is not the least costly).
	Sent    int
	SynAcks uint64
}

// perPacket is the tasks' CPU time per packet sent, 0 without packets.
func (t TaskCPU) perPacket() float64 {
	if t.Sent <= 0 {
		return 0
	}
	return t.Total().Seconds() / float64(t.Sent)
}

// lessTaskCPU is the one of a and b with less CPU per packet sent.
func lessTaskCPU(a, b TaskCPU) TaskCPU {
	if b.Sent > 0 && (a.Sent <= 0 || b.perPacket() < a.perPacket()) {
		return b
	}
	return a
}

// Total is the sum of the three.
func (t TaskCPU) Total() time.Duration { return t.Generators + t.Softirqd + t.Synwall }

// processCPU is the user and system time of an ended process (the kernel
// scales the ticks' split so that the two add up to its exact runtime).
func processCPU(ps *os.ProcessState) time.Duration {
	if ps == nil {
		return 0
	}
	return ps.UserTime() + ps.SystemTime()
}

// pidCPU is the user and system time of process pid so far (to the
// 10 ms of USER_HZ).
func pidCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("lab: CPU time of process %d: %w", pid, err)
	}
	if strings.LastIndexByte(string(b), ')') < 0 {
		return 0, fmt.Errorf("lab: CPU time of process %d: no command in %q", pid, b)
	}
	return parseStatCPU(string(b)), nil
}

// parseStatCPU reads utime and stime (fields 14 and 15, USER_HZ) of a
// /proc/PID/stat line.
func parseStatCPU(line string) time.Duration {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(line[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+st) * (time.Second / userHZ)
}

// softirqThreadsCPU is the CPU time of the ksoftirqd threads so far.
func softirqThreadsCPU() time.Duration {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var t time.Duration
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil || !strings.Contains(string(b), "(ksoftirqd/") {
			continue
		}
		t += parseStatCPU(string(b))
	}
	return t
}
