package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/synwall/synwall/bench/internal/host"
	"github.com/synwall/synwall/deploy/lab"
)

// The weak server of every defense but syncookies (which only turns cookies
// on): the values of `synwall-lab demo`.
const (
	synBacklog    = 64
	listenBacklog = 16
)

// statsSettle is how long to wait after a flood for synwall's stats file,
// written every second, to include it.
const statsSettle = 1500 * time.Millisecond

type options struct {
	short   bool
	rate    int
	conns   int
	out     string
	synwall string
	hpings  int
	flood   time.Duration
}

func main() {
	var o options
	flag.BoolVar(&o.short, "short", false, "3 s floods instead of 10 s, fewer connections")
	flag.IntVar(&o.rate, "rate", 100_000, "rate of the synflood generator, `pps`")
	flag.IntVar(&o.conns, "conns", 0, "legitimate connections per defense (default 200, 60 with -short)")
	flag.StringVar(&o.out, "out", "COMPARE.md", "write the markdown report to `FILE` (empty: only print it; run from bench/, the default is bench/COMPARE.md)")
	flag.StringVar(&o.synwall, "synwall", "", "synwall `BINARY`; empty builds the repository's ./cmd/synwall")
	flag.IntVar(&o.hpings, "hping", 1, "`N` hping3 -S --flood instances side by side, all from the attacker's own address (0..4; 0 leaves the generator alone at -rate, for CPU per SYN-ACK)")
	flag.Parse()
	o.flood = 10 * time.Second
	if o.short {
		o.flood = 3 * time.Second
	}
	if o.conns <= 0 {
		o.conns = 200
		if o.short {
			o.conns = 60
		}
	}
	if o.hpings < 0 || o.hpings > 4 {
		fmt.Fprintf(os.Stderr, "compare: -hping %d not in [0, 4]\n", o.hpings)
		os.Exit(2)
	}
	if o.rate < 1 || o.rate > 2_000_000 {
		fmt.Fprintf(os.Stderr, "compare: -rate %d not in [1, 2000000]\n", o.rate)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "compare: interrupted; lab removed, no results written")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "compare:", err)
		if errors.Is(err, lab.ErrPermission) || errors.Is(err, fs.ErrPermission) {
			os.Exit(77)
		}
		os.Exit(1)
	}
}

// result is one defense under the workload.
type result struct {
	Name, Setup string

	Elapsed             time.Duration // the flood's wall time
	HpingSent, GenSent  int
	SynAcks             uint64 // the defense's own counter; see SynAckSource
	SynAckSource        string
	AtAttacker          uint64 // SYN-ACKs that reached the attacker namespace
	Handshakes          uint64
	HandshakeSource     string
	Load                lab.LoadResult
	Busy                float64       // machine CPU busy share during the flood
	SynwallCPU          time.Duration // synwall's CPU time during the flood
	RSSkB, HWMkB        uint64        // synwall's VmRSS after the flood and VmHWM
	Limited             uint64        // synwall: SYNs refused by its policy's rate limits
	Drops               uint64
	DropSource          string
	HasSynAcks, Synwall bool
}

func (r result) rate(n uint64) float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(n) / r.Elapsed.Seconds()
}

// defense prepares the lab for one defense and returns what undoes it.
type defense struct {
	name, setup string
	prepare     func(ctx context.Context, e *env) (undo func() error, err error)
}

// env is what every phase shares.
type env struct {
	o         options
	l         *lab.Lab
	synwall   string // binary
	synflood  string // binary
	sw        *lab.Synwall
	ruleLines []string // SYNPROXY rules, for the report
}

func run(ctx context.Context, o options) (err error) {
	if err := lab.Require("ip", "iptables", "hping3", "timeout"); err != nil {
		return err
	}
	rep := &report{o: o, started: time.Now(), command: host.CommandLine("./compare", flag.CommandLine)}
	dir, err := os.MkdirTemp("", "synwall-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &env{o: o, synflood: filepath.Join(dir, "synflood"), synwall: o.synwall}
	if err := host.BuildSynflood(ctx, e.synflood, os.Stderr); err != nil {
		return err
	}
	if e.synwall == "" {
		e.synwall = filepath.Join(dir, "synwall")
		if err := host.BuildSynwall(ctx, e.synwall, os.Stderr); err != nil {
			return err
		}
	}

	l, err := lab.Up(ctx, lab.Config{})
	if err != nil {
		return err
	}
	e.l = l
	fmt.Fprintf(os.Stderr, "lab %s up\n", l.Prefix)
	defer func() {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, derr)
		}
		fmt.Fprintf(os.Stderr, "lab %s removed\n", l.Prefix)
	}()
	// Count every SYN-ACK that reaches the attacker, whoever sent it: a
	// rule without a target only counts. It goes before the lab's own
	// rule, which drops them.
	if _, err := l.Exec(ctx, l.Attacker, "iptables", "-w", "10", "-t", "raw", "-I", "PREROUTING", "1", "-p", "tcp",
		"--tcp-flags", "SYN,ACK", "SYN,ACK", "-m", "comment", "--comment", counterComment); err != nil {
		return err
	}

	for _, d := range defenses() {
		if err := ctx.Err(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "== %s: %s\n", d.name, d.setup)
		r, err := measure(ctx, e, d)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		fmt.Fprintf(os.Stderr, "   flood %d+%d in %v; SYN-ACKs %d (%.0f/s) own, %d at attacker; handshakes %d; legit %s; CPU busy %.0f%%\n",
			r.HpingSent, r.GenSent, r.Elapsed.Round(time.Millisecond), r.SynAcks, r.rate(r.SynAcks), r.AtAttacker, r.Handshakes, r.Load, 100*r.Busy)
		rep.results = append(rep.results, r)
	}
	rep.synproxyRules = e.ruleLines

	md := rep.markdown()
	fmt.Print(md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", o.out)
	}
	return nil
}

func defenses() []defense {
	weak := func(ctx context.Context, e *env) error { return e.l.WeakServer(synBacklog, listenBacklog) }
	return []defense{
		{dropBaseline, "the gateway drops the spoofed SYNs in raw PREROUTING: the cost of carrying the flood, for CPU per SYN-ACK",
			func(ctx context.Context, e *env) (func() error, error) {
				if err := weak(ctx, e); err != nil {
					return nil, err
				}
				rule := []string{"-t", "raw", "PREROUTING", "-s", lab.SpoofPrefix.String(), "-p", "tcp", "--syn", "-j", "DROP"}
				args := func(op string) []string {
					return append([]string{"-w", "10", "-t", "raw", op}, rule[2:]...)
				}
				if _, err := e.l.Exec(ctx, e.l.Gateway, "iptables", args("-I")...); err != nil {
					return nil, err
				}
				return func() error {
					_, err := e.l.Exec(context.Background(), e.l.Gateway, "iptables", args("-D")...)
					return err
				}, nil
			}},
		{"none", fmt.Sprintf("server tcp_syncookies=0, tcp_max_syn_backlog %d, listen backlog %d", synBacklog, listenBacklog),
			func(ctx context.Context, e *env) (func() error, error) { return nil, weak(ctx, e) }},
		{"kernel syncookies", fmt.Sprintf("server tcp_syncookies=1, tcp_max_syn_backlog %d, listen backlog %d", synBacklog, listenBacklog),
			func(ctx context.Context, e *env) (func() error, error) {
				if err := weak(ctx, e); err != nil {
					return nil, err
				}
				return nil, lab.SetSysctl(e.l.Server, "net.ipv4.tcp_syncookies", "1")
			}},
		{"netfilter SYNPROXY", "gateway SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460; weak server behind it",
			func(ctx context.Context, e *env) (func() error, error) {
				if err := weak(ctx, e); err != nil {
					return nil, err
				}
				return installSynproxy(ctx, e)
			}},
		{"synwall", "synwall run on the embedded default policy (hook forward, fail closed); weak server behind it",
			func(ctx context.Context, e *env) (func() error, error) {
				if err := weak(ctx, e); err != nil {
					return nil, err
				}
				sw, err := e.l.StartSynwall(ctx, lab.SynwallConfig{Binary: e.synwall})
				if err != nil {
					return nil, err
				}
				e.sw = sw
				return func() error {
					e.sw = nil
					return sw.Stop()
				}, nil
			}},
		{"synwall + SYN stage", "synwall run as above with the BPF SYN stage (--syn-stage tc) on the gateway's client and attacker interfaces; weak server behind it",
			func(ctx context.Context, e *env) (func() error, error) {
				if err := weak(ctx, e); err != nil {
					return nil, err
				}
				sw, err := e.l.StartSynwall(ctx, lab.SynwallConfig{Binary: e.synwall,
					Args: []string{"--syn-stage", "tc", "--syn-stage-if", lab.IfClient + "," + lab.IfAttacker}})
				if err != nil {
					return nil, err
				}
				e.sw = sw
				return func() error {
					e.sw = nil
					return sw.Stop()
				}, nil
			}},
	}
}

const counterComment = "compare: SYN-ACKs at the attacker"

// dropBaseline names the phase whose machine CPU the others are measured
// above.
const dropBaseline = "drop (baseline)"

func installSynproxy(ctx context.Context, e *env) (func() error, error) {
	undo, lines, err := e.l.InstallSynproxy(ctx)
	e.ruleLines = lines
	return undo, err
}

// snapshot holds every counter a phase reads before and after.
type snapshot struct {
	server     map[string]uint64
	synproxy   lab.SynproxyStat
	atAttacker uint64
	sw         lab.Stats
	swCPU      time.Duration
	dropRule   uint64
}

func (e *env) snapshot(ctx context.Context, d defense) (snapshot, error) {
	var s snapshot
	var err error
	l := e.l
	text, err := l.Exec(ctx, l.Server, "cat", "/proc/net/netstat", "/proc/net/snmp")
	if err != nil {
		return s, err
	}
	if s.server, err = parseProcNet(text); err != nil {
		return s, err
	}
	if s.atAttacker, err = ruleCounter(ctx, l, l.Attacker, "raw", "PREROUTING", counterComment); err != nil {
		return s, err
	}
	if d.name == "netfilter SYNPROXY" {
		if s.synproxy, err = l.ReadSynproxy(ctx); err != nil {
			return s, err
		}
		if s.dropRule, err = ruleCounter(ctx, l, l.Gateway, "filter", "FORWARD", "DROP"); err != nil {
			return s, err
		}
	}
	if e.sw != nil {
		if s.sw, err = e.sw.Stats(); err != nil {
			return s, err
		}
		if s.swCPU, err = procCPU(e.sw.PID()); err != nil {
			return s, err
		}
	}
	return s, nil
}

// ruleCounter is the packet counter of the first rule of chain whose line
// in `iptables -L -v -x -n` contains match.
func ruleCounter(ctx context.Context, l *lab.Lab, ns, table, chain, match string) (uint64, error) {
	out, err := l.Exec(ctx, ns, "iptables", "-w", "10", "-t", table, "-L", chain, "-v", "-x", "-n")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n")[2:] {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(line, match) {
			return strconv.ParseUint(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no rule matching %q in %s %s of %s:\n%s", match, table, chain, ns, out)
}

var genSentRE = regexp.MustCompile(`sent (\d+) packets in`)

func measure(ctx context.Context, e *env, d defense) (r result, err error) {
	r = result{Name: d.name, Setup: d.setup}
	l, o := e.l, e.o
	undo, err := d.prepare(ctx, e)
	if undo != nil {
		defer func() {
			if uerr := undo(); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}()
	}
	if err != nil {
		return r, err
	}
	r.Synwall = e.sw != nil
	srv, err := l.StartServers(lab.ServerConfig{Backlog: listenBacklog})
	if err != nil {
		return r, err
	}
	defer srv.Close()
	target := netip.AddrPortFrom(lab.ServerV4, lab.HTTPPort)
	// The defense must let a client through before it is measured.
	if chk, err := l.Connect(ctx, lab.Load{Addr: target, N: 3, Concurrency: 1, Timeout: 3 * time.Second}); err != nil {
		return r, err
	} else if chk.OK != chk.Attempts {
		return r, fmt.Errorf("without a flood only %s", chk)
	}

	s0, err := e.snapshot(ctx, d)
	if err != nil {
		return r, err
	}
	c0, err := host.ReadCPUTimes()
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	type floodDone struct {
		sent int
		end  time.Time
		err  error
	}
	hc, gc := make(chan floodDone, o.hpings), make(chan floodDone, 1)
	for range o.hpings {
		go func() {
			f, err := l.Flood(ctx, lab.Flood{Target: lab.ServerV4, Port: lab.HTTPPort, Flags: []string{"-S"}, Duration: o.flood})
			hc <- floodDone{f.Sent, time.Now(), err}
		}()
	}
	go func() {
		gctx, cancel := context.WithTimeout(ctx, o.flood+5*time.Second)
		defer cancel()
		count := int(float64(o.rate) * o.flood.Seconds())
		cmd := l.Cmd(gctx, l.Attacker, e.synflood, "-dst", target.String(), "-sources", lab.SpoofPrefix.String(),
			"-rate", strconv.Itoa(o.rate), "-duration", o.flood.String(), "-count", strconv.Itoa(count))
		out, err := cmd.CombinedOutput()
		if err != nil {
			gc <- floodDone{0, time.Now(), fmt.Errorf("synflood: %w: %s", err, strings.TrimSpace(string(out)))}
			return
		}
		m := genSentRE.FindSubmatch(out)
		if m == nil {
			gc <- floodDone{0, time.Now(), fmt.Errorf("synflood: no packet count in %q", out)}
			return
		}
		n, _ := strconv.Atoi(string(m[1]))
		gc <- floodDone{n, time.Now(), nil}
	}()
	// Legitimate connections spread over the flood, from half a second
	// after it starts to a second before it ends.
	if err := host.Sleep(ctx, 500*time.Millisecond); err != nil {
		return r, err
	}
	r.Load, err = l.Connect(ctx, lab.Load{Addr: target, N: o.conns, Concurrency: 10, Timeout: 3 * time.Second,
		Spread: o.flood - 1500*time.Millisecond})
	if err != nil {
		return r, err
	}
	var h floodDone
	for range o.hpings {
		f := <-hc
		h.sent += f.sent
		h.err = errors.Join(h.err, f.err)
		if f.end.After(h.end) {
			h.end = f.end
		}
	}
	g := <-gc
	if err := errors.Join(h.err, g.err); err != nil {
		return r, err
	}
	// Rates are over the flood's wall time, until the later generator
	// ended (the last connections may outlast it).
	r.Elapsed = max(h.end.Sub(t0), g.end.Sub(t0))
	r.HpingSent, r.GenSent = h.sent, g.sent
	c1, err := host.ReadCPUTimes()
	if err != nil {
		return r, err
	}
	r.Busy = host.CPUShare(c0, c1).Busy()
	var cpu1 time.Duration
	if e.sw != nil {
		if cpu1, err = procCPU(e.sw.PID()); err != nil {
			return r, err
		}
		if err := host.Sleep(ctx, statsSettle); err != nil {
			return r, err
		}
	}
	s1, err := e.snapshot(ctx, d)
	if err != nil {
		return r, err
	}
	r.AtAttacker = s1.atAttacker - s0.atAttacker
	dl := func(k string) uint64 { return s1.server[k] - min(s0.server[k], s1.server[k]) }
	switch {
	case e.sw != nil:
		sd := func(m1, m0 map[string]uint64, k string) uint64 { return m1[k] - min(m0[k], m1[k]) }
		r.SynAcks, r.SynAckSource, r.HasSynAcks = sd(s1.sw.Events, s0.sw.Events, "syn_answered"), "synwall events.syn_answered", true
		if st1 := s1.sw.Other["syn_stage"]; st1 != nil {
			r.SynAcks += sd(st1, s0.sw.Other["syn_stage"], "answered")
			r.Limited += sd(st1, s0.sw.Other["syn_stage"], "syn_limited") + sd(st1, s0.sw.Other["syn_stage"], "synack_limited")
			r.SynAckSource = "synwall events.syn_answered + syn_stage.answered"
		}
		r.Handshakes, r.HandshakeSource = sd(s1.sw.Events, s0.sw.Events, "handshake"), "synwall events.handshake"
		r.Limited += sd(s1.sw.Events, s0.sw.Events, "syn_limited")
		r.Drops = sd(s1.sw.Queue, s0.sw.Queue, "queue_dropped") + sd(s1.sw.Queue, s0.sw.Queue, "user_dropped")
		r.DropSource = "nfnetlink_queue queue_dropped + user_dropped"
		r.SynwallCPU = cpu1 - s0.swCPU
		if r.RSSkB, err = procStatusKB(e.sw.PID(), "VmRSS"); err != nil {
			return r, err
		}
		if r.HWMkB, err = procStatusKB(e.sw.PID(), "VmHWM"); err != nil {
			return r, err
		}
	case d.name == "netfilter SYNPROXY":
		r.SynAcks, r.SynAckSource, r.HasSynAcks = s1.synproxy.SynReceived-s0.synproxy.SynReceived, "/proc/net/stat/synproxy syn_received", true
		r.Handshakes, r.HandshakeSource = s1.synproxy.CookieValid-s0.synproxy.CookieValid, "/proc/net/stat/synproxy cookie_valid"
		r.Drops, r.DropSource = s1.dropRule-s0.dropRule, "FORWARD --ctstate INVALID -j DROP counter"
	default:
		r.SynAcks, r.SynAckSource = dl("TcpExtSyncookiesSent"), "server TcpExtSyncookiesSent"
		r.HasSynAcks = d.name == "kernel syncookies"
		r.Handshakes, r.HandshakeSource = dl("TcpPassiveOpens"), "server TcpPassiveOpens"
		// ListenDrops counts every SYN or ACK a listener dropped, request
		// queue and accept queue overflows included.
		r.Drops, r.DropSource = dl("TcpExtListenDrops"), "server TcpExtListenDrops"
	}
	return r, nil
}
