package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/synwall/synwall/bench/internal/host"
	"github.com/synwall/synwall/deploy/lab"
)

const counterComment = "loadtest: SYN-ACKs at the attacker"

// point is one defense at one flood rate.
type point struct {
	Defense string
	Rate    int // the generator's target, pps

	Elapsed    time.Duration // the flood's wall time
	Sent       int           // SYNs the generator sent
	SynAcks    uint64        // the defense's own counter
	AtAttacker uint64        // SYN-ACKs that reached the attacker namespace
	Load       lab.LoadResult
	Busy       float64       // machine CPU busy share during the flood
	SynwallCPU time.Duration // synwall's CPU time during the flood
	RSSkB      uint64        // synwall's VmRSS after the flood
	Drops      uint64        // synwall: kernel queue drops
	HasSynwall bool
}

func perSecond(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// SentPPS is the flood rate the generator reached.
func (p point) SentPPS() float64 { return perSecond(uint64(p.Sent), p.Elapsed) }

// SynAckPPS is the defense's SYN-ACKs per second.
func (p point) SynAckPPS() float64 { return perSecond(p.SynAcks, p.Elapsed) }

// sweep runs every rate against defense d and returns a point per rate,
// and the SYNPROXY rules for the report.
func sweep(ctx context.Context, e *env, d string) (pts []point, rules []string, err error) {
	var sw *lab.Synwall
	switch d {
	case defSynproxy:
		undo, lines, err := e.l.InstallSynproxy(ctx)
		if err != nil {
			return nil, nil, err
		}
		rules = lines
		defer func() { err = errors.Join(err, undo()) }()
	case defSynwall:
		sw, err = e.l.StartSynwall(ctx, lab.SynwallConfig{Binary: e.synwall})
		if err != nil {
			return nil, nil, err
		}
		defer func() { err = errors.Join(err, sw.Stop()) }()
	}
	target := netip.AddrPortFrom(lab.ServerV4, lab.HTTPPort)
	// The defense must let a client through before it is measured.
	if chk, err := e.l.Connect(ctx, lab.Load{Addr: target, N: 3, Concurrency: 1, Timeout: 3 * time.Second}); err != nil {
		return nil, rules, err
	} else if chk.OK != chk.Attempts {
		return nil, rules, fmt.Errorf("without a flood only %s", chk)
	}
	for _, rate := range e.o.rates {
		fmt.Fprintf(e.log, "== %s at %d pps (load average %s)\n", d, rate, loadAvg())
		p, err := measure(ctx, e, d, sw, rate)
		if err != nil {
			return pts, rules, fmt.Errorf("%d pps: %w", rate, err)
		}
		fmt.Fprintf(e.log, "   sent %d in %v (%.0f pps); SYN-ACKs %.0f/s; legit %s; CPU busy %.0f%%; drops %d\n",
			p.Sent, p.Elapsed.Round(time.Millisecond), p.SentPPS(), p.SynAckPPS(), p.Load, 100*p.Busy, p.Drops)
		pts = append(pts, p)
		// Let the half-open state of the point expire from the server
		// and the SYN-ACK retransmissions end before the next one.
		if err := host.Sleep(ctx, time.Second); err != nil {
			return pts, rules, err
		}
	}
	return pts, rules, nil
}

// counters is what a point reads before and after its flood.
type counters struct {
	synAcks, atAttacker, drops uint64
	swCPU                      time.Duration
}

func read(ctx context.Context, e *env, d string, sw *lab.Synwall) (counters, error) {
	var c counters
	var err error
	if c.atAttacker, err = ruleCounter(ctx, e.l, e.l.Attacker, "raw", "PREROUTING", counterComment); err != nil {
		return c, err
	}
	switch d {
	case defSynproxy:
		st, err := e.l.ReadSynproxy(ctx)
		if err != nil {
			return c, err
		}
		c.synAcks = st.SynReceived
	case defSynwall:
		st, err := sw.Stats()
		if err != nil {
			return c, err
		}
		c.synAcks = st.Events["syn_answered"]
		c.drops = st.Queue["queue_dropped"] + st.Queue["user_dropped"]
		if c.swCPU, err = procCPU(sw.PID()); err != nil {
			return c, err
		}
	}
	return c, nil
}

func procCPU(pid int) (time.Duration, error) {
	u, s, err := host.ProcCPU(pid)
	return u + s, err
}

// ruleCounter is the packet counter of the first rule of chain whose line
// in `iptables -L -v -x -n` contains match.
func ruleCounter(ctx context.Context, l *lab.Lab, ns, table, chain, match string) (uint64, error) {
	out, err := l.Exec(ctx, ns, "iptables", "-w", "10", "-t", table, "-L", chain, "-v", "-x", "-n")
	if err != nil {
		return 0, err
	}
	lines := strings.Split(out, "\n")
	for _, line := range lines[min(2, len(lines)):] {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(line, match) {
			return strconv.ParseUint(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no rule matching %q in %s %s of %s:\n%s", match, table, chain, ns, out)
}

var genSentRE = regexp.MustCompile(`sent (\d+) packets in`)

// flood runs the generator in the attacker namespace; args come after the
// destination. It returns the packets sent.
func flood(ctx context.Context, e *env, limit time.Duration, args ...string) (int, error) {
	gctx, cancel := context.WithTimeout(ctx, limit+10*time.Second)
	defer cancel()
	target := netip.AddrPortFrom(lab.ServerV4, lab.HTTPPort)
	args = append([]string{"-dst", target.String(), "-sources", lab.SpoofPrefix.String()}, args...)
	out, err := e.l.Cmd(gctx, e.l.Attacker, e.synflood, args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("synflood: %w: %s", err, strings.TrimSpace(string(out)))
	}
	m := genSentRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("synflood: no packet count in %q", out)
	}
	return strconv.Atoi(string(m[1]))
}

func measure(ctx context.Context, e *env, d string, sw *lab.Synwall, rate int) (p point, err error) {
	p = point{Defense: d, Rate: rate, HasSynwall: sw != nil}
	o := e.o
	c0, err := read(ctx, e, d, sw)
	if err != nil {
		return p, err
	}
	cpu0, err := host.ReadCPUTimes()
	if err != nil {
		return p, err
	}
	type floodDone struct {
		sent int
		end  time.Time
		err  error
	}
	fc := make(chan floodDone, 1)
	t0 := time.Now()
	go func() {
		count := int(float64(rate) * o.point.Seconds())
		n, err := flood(ctx, e, o.point, "-rate", strconv.Itoa(rate), "-duration", o.point.String(), "-count", strconv.Itoa(count))
		fc <- floodDone{n, time.Now(), err}
	}()
	// Legitimate connections spread over the flood, from half a second
	// after it starts to a second before it ends.
	if err := host.Sleep(ctx, 500*time.Millisecond); err != nil {
		<-fc
		return p, err
	}
	target := netip.AddrPortFrom(lab.ServerV4, lab.HTTPPort)
	p.Load, err = e.l.Connect(ctx, lab.Load{Addr: target, N: o.conns, Concurrency: 10, Timeout: 3 * time.Second,
		Spread: o.point - 1500*time.Millisecond})
	f := <-fc
	if err := errors.Join(err, f.err); err != nil {
		return p, err
	}
	p.Elapsed, p.Sent = f.end.Sub(t0), f.sent
	cpu1, err := host.ReadCPUTimes()
	if err != nil {
		return p, err
	}
	p.Busy = host.CPUShare(cpu0, cpu1).Busy()
	var swCPU1 time.Duration
	if sw != nil {
		if swCPU1, err = procCPU(sw.PID()); err != nil {
			return p, err
		}
		if err := host.Sleep(ctx, statsSettle); err != nil {
			return p, err
		}
		if p.RSSkB, err = host.ProcStatusKB(sw.PID(), "VmRSS"); err != nil {
			return p, err
		}
	}
	c1, err := read(ctx, e, d, sw)
	if err != nil {
		return p, err
	}
	diff := func(b, a uint64) uint64 { return b - min(a, b) }
	p.SynAcks = diff(c1.synAcks, c0.synAcks)
	p.AtAttacker = diff(c1.atAttacker, c0.atAttacker)
	p.Drops = diff(c1.drops, c0.drops)
	p.SynwallCPU = swCPU1 - c0.swCPU
	return p, nil
}
