package lab

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

// End-to-end tests through a running synwall. Each builds its own lab.

// countWriter hashes and counts what passes through.
type countWriter struct {
	n int64
	h io.Writer
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// TestSynwallBigTransfer: a real curl in the client namespace fetches the
// 20 MB body through synwall over IPv4 and IPv6; it arrives intact and the
// server saw the real client address. In both modes: the flows carried by
// the kernel (conntrack hand-off) and translated by synwall.
func TestSynwallBigTransfer(t *testing.T) {
	needTools(t, "curl")
	for _, mode := range synwallModes(t) {
		t.Run(mode.name, func(t *testing.T) {
			l := newLab(t)
			srv, err := l.StartServers(ServerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			sw := startSynwall(t, l, mode.cfg)
			want := BodySHA256(BigSize)
			for _, tc := range []struct {
				name   string
				url    string
				client netip.Addr
			}{
				{"IPv4", "http://198.18.3.2/big", ClientV4},
				{"IPv6", "http://[2001:db8:3::2]/big", ClientV6},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
					defer cancel()
					h := sha256.New()
					cw := &countWriter{h: h}
					cmd := l.Cmd(ctx, l.Client, "curl", "-sS", "--fail", "-g", "--connect-timeout", "10", "--max-time", "20", "-o", "-", tc.url)
					var stderr strings.Builder
					cmd.Stdout, cmd.Stderr = cw, &stderr
					t0 := time.Now()
					if err := cmd.Run(); err != nil {
						t.Fatalf("curl %s: %v: %s", tc.url, err, stderr.String())
					}
					el := time.Since(t0)
					if cw.n != BigSize {
						t.Fatalf("curl %s got %d bytes, want %d", tc.url, cw.n, BigSize)
					}
					if got := h.Sum(nil); string(got) != string(want[:]) {
						t.Errorf("curl %s: SHA-256 %x, want %x", tc.url, got, want)
					}
					if n := srv.Seen(tc.client); n != 1 {
						t.Errorf("server saw %d requests from %v, want 1 (remotes: %v)", n, tc.client, srv.Remotes())
					}
					t.Logf("%s: %d bytes in %v (%.0f Mbit/s)", tc.url, cw.n, el.Round(time.Millisecond), float64(cw.n)*8/el.Seconds()/1e6)
				})
			}
			st := statsAfter(t, sw)
			t.Logf("synwall stats: events %v drops %v queue %v conntrack %v", st.Events, st.Drops, st.Queue, st.Other["conntrack"])
			if st.Events["handshake"] < 2 {
				t.Errorf("synwall counted %d handshakes, want >= 2 (the transfers did not go through it?)", st.Events["handshake"])
			}
			mode.check(t, st, 2)
		})
	}
}

// TestSynwallOptionMatrix: whatever TCP options the client offers
// (timestamps, SACK, window scaling on or off; a small or a full MSS),
// connections through synwall carry data both ways intact, carried by the
// kernel or translated by synwall.
func TestSynwallOptionMatrix(t *testing.T) {
	for _, mode := range synwallModes(t) {
		t.Run(mode.name, func(t *testing.T) { optionMatrix(t, mode) })
	}
}

func optionMatrix(t *testing.T, mode synwallMode) {
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	sw := startSynwall(t, l, mode.cfg)
	const size = 300_000
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	onOff := []string{"0", "1"}
	failed := 0
	for _, mss := range [][2]int{{536, 1220}, {1460, 1440}} { // IPv4, IPv6
		for _, cmd := range [][]string{
			{"ip", "route", "change", "default", "via", GatewayClientV4.String(), "dev", IfUplink, "advmss", fmt.Sprint(mss[0])},
			{"ip", "-6", "route", "change", "default", "via", GatewayClientV6.String(), "dev", IfUplink, "advmss", fmt.Sprint(mss[1])},
		} {
			if _, err := l.Exec(ctx, l.Client, cmd[0], cmd[1:]...); err != nil {
				t.Fatal(err)
			}
		}
		for _, ts := range onOff {
			for _, sack := range onOff {
				for _, ws := range onOff {
					for k, v := range map[string]string{"net.ipv4.tcp_timestamps": ts, "net.ipv4.tcp_sack": sack, "net.ipv4.tcp_window_scaling": ws} {
						if err := SetSysctl(l.Client, k, v); err != nil {
							t.Fatal(err)
						}
					}
					for _, srv := range []netip.Addr{ServerV4, ServerV6} {
						m := mss[0]
						if srv.Is6() {
							m = mss[1]
						}
						name := fmt.Sprintf("ts=%s,sack=%s,wscale=%s,mss=%d,%v", ts, sack, ws, m, srv)
						if failed >= 3 {
							t.Fatalf("stopping after %d failed cases", failed)
						}
						ok := t.Run(name, func(t *testing.T) {
							// A stalled transfer fails in seconds, not minutes.
							cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
							defer cancel()
							ap := netip.AddrPortFrom(srv, BulkPort)
							if err := l.BulkUp(cctx, ap, size); err != nil {
								t.Errorf("upload: %v", err)
							}
							if err := l.BulkDown(cctx, ap, size); err != nil {
								t.Errorf("download: %v", err)
							}
						})
						if !ok {
							failed++
						}
					}
				}
			}
		}
	}
	st := statsAfter(t, sw)
	t.Logf("synwall stats: events %v drops %v conntrack %v", st.Events, st.Drops, st.Other["conntrack"])
	if st.Events["handshake"] < 64 {
		t.Errorf("synwall counted %d handshakes, want >= 64 (32 cases × 2 connections)", st.Events["handshake"])
	}
	mode.check(t, st, 64)
}

// TestSynwallDropsInvalid: packets with invalid flag sets, random ACKs and
// RSTs from the attacker never reach the server, and synwall counts them.
func TestSynwallDropsInvalid(t *testing.T) {
	for _, mode := range synwallModes(t) {
		t.Run(mode.name, func(t *testing.T) { dropsInvalid(t, mode.cfg) })
	}
}

func dropsInvalid(t *testing.T, swcfg SynwallConfig) {
	needTools(t, "hping3", "timeout")
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The server counts every TCP packet from the attacker.
	if _, err := l.Exec(ctx, l.Server, "iptables", "-w", "10", "-A", "INPUT", "-s", AttackerV4.String(), "-p", "tcp"); err != nil {
		t.Fatal(err)
	}
	counter := func() uint64 {
		c := inputCounters(t, l, l.Server, "iptables")
		if len(c) != 1 {
			t.Fatalf("server INPUT counters = %v, want one rule", c)
		}
		return c[0]
	}
	// Without synwall the gateway forwards them: the counter works.
	if _, err := l.Flood(ctx, Flood{Target: ServerV4, Port: HTTPPort, Flags: []string{"-S", "-F"}, Count: 5, Interval: "u1000", Duration: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := counter(); got != 5 {
		t.Fatalf("without synwall the server counted %d SYN+FIN packets from the attacker, want 5", got)
	}
	if _, err := l.Exec(ctx, l.Server, "iptables", "-w", "10", "-Z", "INPUT"); err != nil {
		t.Fatal(err)
	}

	sw := startSynwall(t, l, swcfg)
	before, err := sw.Stats()
	if err != nil {
		t.Fatal(err)
	}
	invalid := 0
	for _, flags := range InvalidFlagSets {
		r, err := l.Flood(ctx, Flood{Target: ServerV4, Port: HTTPPort, Flags: flags, Count: 50, Interval: "u1000", Duration: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if r.Sent != 50 {
			t.Errorf("hping3 %v sent %d, want 50", flags, r.Sent)
		}
		invalid += r.Sent
	}
	mid := statsAfter(t, sw)
	for _, f := range []Flood{
		{Target: ServerV4, Port: HTTPPort, Flags: []string{"-A"}, Count: 20_000, Duration: 3 * time.Second},
		{Target: ServerV4, Port: HTTPPort, Flags: []string{"-R"}, Count: 20_000, Duration: 3 * time.Second},
		{Target: ServerV4, Port: HTTPPort, Flags: []string{"-R", "-A"}, Count: 20_000, Duration: 3 * time.Second},
	} {
		r, err := l.Flood(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("hping3 %v: %d packets (%.0f/s)", f.Flags, r.Sent, r.PPS())
	}
	after := statsAfter(t, sw)
	if got := counter(); got != 0 {
		t.Errorf("with synwall the server counted %d TCP packets from the attacker, want 0", got)
	}
	t.Logf("drops: before %v, after the invalid flags %v, after the ACK/RST floods %v", before.Drops, mid.Drops, after.Drops)
	t.Logf("events after: %v; queue: %v", after.Events, after.Queue)
	if got := mid.DropsTotal() - before.DropsTotal(); got < uint64(invalid) {
		t.Errorf("synwall counted %d drops for %d packets with invalid flags, want all of them", got, invalid)
	}
	for _, reason := range []string{"syn_fin", "null_flags"} {
		if mid.Drops[reason] == before.Drops[reason] {
			t.Errorf("drops[%q] did not grow (%v)", reason, mid.Drops)
		}
	}
	// Random ACKs fail the cookie check; RSTs match no flow. However the
	// daemon names them, they are counted somewhere.
	rejected := func(s Stats) uint64 { return s.Events["bad_cookie"] + s.Events["unknown"] + s.DropsTotal() }
	if rejected(after) <= rejected(mid) {
		t.Errorf("ACK/RST floods left bad_cookie+unknown+drops at %d", rejected(after))
	}
}

// TestFloodLegitimateLoad: under a 10-second full-rate SYN flood, 200
// legitimate connections through synwall (nearly) all succeed; the same
// flood against the unprotected server is logged for comparison.
func TestFloodLegitimateLoad(t *testing.T) {
	needTools(t, "hping3", "timeout")
	cfg := DemoConfig{Flood: 10 * time.Second, Concurrency: 100, Timeout: 5 * time.Second}.withDefaults()
	target := netip.AddrPortFrom(ServerV4, HTTPPort)
	phase := func(t *testing.T, protect bool, swcfg SynwallConfig) PhaseResult {
		l := newLab(t)
		if err := l.WeakServer(cfg.SynBacklog, cfg.ListenBacklog); err != nil {
			t.Fatal(err)
		}
		if _, err := l.StartServers(ServerConfig{Backlog: cfg.ListenBacklog}); err != nil {
			t.Fatal(err)
		}
		var sw *Synwall
		if protect {
			sw = startSynwall(t, l, swcfg)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		pr, err := l.floodPhase(ctx, cfg, target)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("flood: %d SYNs in %v (%.0f/s)", pr.Flood.Sent, pr.Flood.Elapsed.Round(time.Millisecond), pr.Flood.PPS())
		t.Logf("legitimate: %v", pr.Load)
		if sw != nil {
			st := statsAfter(t, sw)
			t.Logf("synwall stats: events %v drops %v queue %v", st.Events, st.Drops, st.Queue)
		}
		return pr
	}
	var base, prot PhaseResult
	t.Run("unprotected", func(t *testing.T) {
		base = phase(t, false, SynwallConfig{})
	})
	for _, mode := range synwallModes(t) {
		t.Run("synwall/"+mode.name, func(t *testing.T) {
			prot = phase(t, true, mode.cfg)
			if prot.Load.Attempts != cfg.Connections || prot.Load.SuccessRate() < 0.99 {
				t.Errorf("with synwall %d/%d legitimate connections succeeded, want >= 99%% of %d", prot.Load.OK, prot.Load.Attempts, cfg.Connections)
			}
		})
	}
	if base.Load.Attempts > 0 && prot.Load.Attempts > 0 {
		t.Logf("success without synwall %.1f%% (connect p99 %v), with synwall %.1f%% (connect p99 %v)",
			100*base.Load.SuccessRate(), base.Load.ConnectP99, 100*prot.Load.SuccessRate(), prot.Load.ConnectP99)
	}
}

// TestSynwallKilled: fail closed means a killed daemon leaves its rules and
// the guarded service unreachable; a restart restores it without
// duplicating rules; a clean stop removes every rule.
func TestSynwallKilled(t *testing.T) {
	for _, mode := range synwallModes(t) {
		t.Run(mode.name, func(t *testing.T) { killed(t, mode.cfg) })
	}
}

func killed(t *testing.T, swcfg SynwallConfig) {
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	try := func(timeout time.Duration) LoadResult {
		t.Helper()
		r, err := l.Connect(ctx, Load{Addr: netip.AddrPortFrom(ServerV4, HTTPPort), N: 5, Concurrency: 5, Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	before := synwallRules(t, l)
	if len(before) != 0 {
		t.Fatalf("synwall rules before start: %v", before)
	}

	swcfg.Fail = "closed"
	sw := startSynwall(t, l, swcfg)
	rules := synwallRules(t, l)
	if len(rules) == 0 {
		t.Fatalf("no synwall rules in the gateway while it runs; iptables-save:\n%s", saveAll(t, l))
	}
	if r := try(5 * time.Second); r.OK != 5 {
		t.Fatalf("with synwall running: %v, want 5/5", r)
	}
	if err := sw.Kill(); err == nil {
		t.Fatalf("Kill: exit status nil, want killed")
	}
	if got := synwallRules(t, l); !equalLines(got, rules) {
		t.Errorf("rules after SIGKILL = %v, want left in place %v", got, rules)
	}
	if r := try(2 * time.Second); r.OK != 0 {
		t.Errorf("fail closed, daemon killed: %v, want every connection to fail", r)
	}

	sw2 := startSynwall(t, l, swcfg)
	if got := synwallRules(t, l); !equalLines(got, rules) {
		t.Errorf("rules after restart =\n%v\nwant the same as the first start, not duplicated:\n%v", got, rules)
	}
	if r := try(5 * time.Second); r.OK != 5 {
		t.Errorf("after restart: %v, want 5/5", r)
	}
	if err := sw2.Stop(); err != nil {
		t.Errorf("SIGTERM: %v, want a clean exit", err)
	}
	if got := synwallRules(t, l); len(got) != 0 {
		t.Errorf("rules after a clean stop: %v, want none", got)
	}
	if r := try(5 * time.Second); r.OK != 5 {
		t.Errorf("after a clean stop (no rules, plain forwarding): %v, want 5/5", r)
	}
}

var ruleCounters = regexp.MustCompile(`\s*\[\d+:\d+\]\s*`)

// saveAll returns iptables-save and ip6tables-save of the gateway.
func saveAll(t *testing.T, l *Lab) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	for _, c := range []string{"iptables-save", "ip6tables-save"} {
		out, err := l.Exec(ctx, l.Gateway, c)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "# %s\n%s", c, out)
	}
	return b.String()
}

// synwallRules returns the gateway's rules and chains that belong to
// synwall (queue rules, or anything that names it), counters stripped.
func synwallRules(t *testing.T, l *Lab) []string {
	t.Helper()
	var rules []string
	family := ""
	for _, line := range strings.Split(saveAll(t, l), "\n") {
		if strings.HasPrefix(line, "# ip") {
			family = strings.Fields(line)[1] + " "
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		low := strings.ToLower(line)
		if strings.Contains(low, "nfqueue") || strings.Contains(low, "synwall") {
			rules = append(rules, family+ruleCounters.ReplaceAllString(line, ""))
		}
	}
	return rules
}

func equalLines(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}
