package lab

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestLabWithoutSynwall: the lab forwards: the client reaches the server's
// HTTP over IPv4 and IPv6 through the gateway, the server sees the client's
// address, the topology and sysctls are as documented.
func TestLabWithoutSynwall(t *testing.T) {
	l := newLab(t)
	srv, err := l.StartServers(ServerConfig{})
	if err != nil {
		t.Fatalf("StartServers: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name   string
		server netip.Addr
		client netip.Addr
	}{
		{"IPv4", ServerV4, ClientV4},
		{"IPv6", ServerV6, ClientV6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := l.Connect(ctx, Load{Addr: netip.AddrPortFrom(tc.server, HTTPPort), N: 20, Concurrency: 4, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			if r.OK != 20 || r.Attempts != 20 {
				t.Errorf("Connect(%v) = %v, want 20/20 ok", tc.server, r)
			}
			if got := srv.Seen(tc.client); got != 20 {
				t.Errorf("server saw %d requests from %v, want 20 (all remotes: %v)", got, tc.client, srv.Remotes())
			}
			t.Logf("%v: %v", tc.server, r)
		})
	}
	t.Run("sysctls", func(t *testing.T) {
		for _, c := range []struct{ ns, key, want string }{
			{l.Gateway, "net.ipv4.ip_forward", "1"},
			{l.Gateway, "net.ipv6.conf.all.forwarding", "1"},
			{l.Client, "net.ipv6.conf.all.accept_dad", "0"},
			{l.Gateway, "net.ipv4.conf.all.rp_filter", "0"},
			{l.Client, "net.ipv4.ip_forward", "0"},
		} {
			got, err := Sysctl(c.ns, c.key)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("Sysctl(%s, %s) = %s, want %s", c.ns, c.key, got, c.want)
			}
		}
	})
	t.Run("spoof route", func(t *testing.T) {
		out, err := l.Exec(ctx, l.Gateway, "ip", "route", "get", "198.19.7.7")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "via "+AttackerV4.String()) || !strings.Contains(out, "dev "+IfAttacker) {
			t.Errorf("route to the spoof range in the gateway = %q, want via %v dev %s", out, AttackerV4, IfAttacker)
		}
	})
	t.Run("root namespace untouched", func(t *testing.T) {
		// This process keeps its own namespace: the lab's addresses are
		// not local here.
		ln, err := net.Listen("tcp", netip.AddrPortFrom(ServerV4, 0).String())
		if err == nil {
			ln.Close()
			t.Fatalf("listening on %v worked in the test's own namespace; a thread leaked into the lab", ServerV4)
		}
	})
}

// TestAttackerStaysSilent: the attacker's kernel sends no RST for the
// server's SYN-ACKs, while a RST that hping3 builds still leaves.
func TestAttackerStaysSilent(t *testing.T) {
	needTools(t, "hping3", "timeout")
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Counters on the server: RSTs from the attacker, SYNs from it.
	for _, rule := range [][]string{
		{"-p", "tcp", "-s", AttackerV4.String(), "--tcp-flags", "ALL", "RST"},
		{"-p", "tcp", "-s", AttackerV4.String(), "--tcp-flags", "ALL", "SYN"},
	} {
		if _, err := l.Exec(ctx, l.Server, "iptables", append([]string{"-w", "10", "-A", "INPUT"}, rule...)...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Flood(ctx, Flood{Target: ServerV4, Port: HTTPPort, Flags: []string{"-S"}, Count: 5, Interval: "u10000", Duration: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	c := inputCounters(t, l, l.Server, "iptables")
	if c[1] != 5 {
		t.Errorf("server counted %d SYNs from the attacker, want 5", c[1])
	}
	if c[0] != 0 {
		t.Errorf("server counted %d RSTs from the attacker after its SYNs, want 0 (the attacker must not answer SYN-ACKs)", c[0])
	}
	if _, err := l.Flood(ctx, Flood{Target: ServerV4, Port: HTTPPort, Flags: []string{"-R"}, Count: 3, Interval: "u10000", Duration: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if c := inputCounters(t, l, l.Server, "iptables"); c[0] != 3 {
		t.Errorf("server counted %d RSTs from hping3 -R, want 3", c[0])
	}
	// Answers to spoofed sources of either family go back to the attacker.
	for _, a := range []string{"198.19.7.9", "2001:db8:ff::7:9"} {
		out, err := l.Exec(ctx, l.Gateway, "ip", "route", "get", a)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "dev "+IfAttacker) {
			t.Errorf("gateway: ip route get %s = %q, want it via %s", a, strings.TrimSpace(out), IfAttacker)
		}
	}
}

// inputCounters returns the packet counters of the INPUT rules in order.
func inputCounters(t *testing.T, l *Lab, ns, ipt string) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := l.Exec(ctx, ns, ipt, "-w", "10", "-L", "INPUT", "-v", "-x", "-n")
	if err != nil {
		t.Fatal(err)
	}
	var cs []uint64
	for _, line := range strings.Split(out, "\n")[2:] {
		var n uint64
		if _, err := fmt.Sscan(line, &n); err == nil {
			cs = append(cs, n)
		}
	}
	return cs
}

// TestBulk: the bulk server's sink hashes what it gets; its source sends
// the deterministic stream.
func TestBulk(t *testing.T) {
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range []netip.Addr{ServerV4, ServerV6} {
		for _, n := range []int{0, 1, 300_000} {
			if err := l.BulkUp(ctx, netip.AddrPortFrom(a, BulkPort), n); err != nil {
				t.Errorf("BulkUp(%v, %d): %v", a, n, err)
			}
			if err := l.BulkDown(ctx, netip.AddrPortFrom(a, BulkPort), n); err != nil {
				t.Errorf("BulkDown(%v, %d): %v", a, n, err)
			}
		}
	}
}

// TestListenInKeepsNamespace: a listener opened in a namespace accepts
// there, used from any goroutine; a name that is no namespace fails.
func TestListenInKeepsNamespace(t *testing.T) {
	l := newLab(t)
	ln, err := ListenIn(l.Server, "tcp", "[::]:7777")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.WriteString(c, "hello\n")
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := DialIn(ctx, l.Client, "tcp", netip.AddrPortFrom(ServerV6, 7777).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if line != "hello\n" {
		t.Errorf("read %q, %v; want hello", line, err)
	}
	if _, err := ListenIn(l.Prefix+"-nonexistent", "tcp", ":0"); err == nil {
		t.Errorf("ListenIn(nonexistent namespace) succeeded")
	}
}

// TestDownIdempotent: Down twice is fine; a lab whose namespaces are
// partly gone is removed too.
func TestDownIdempotent(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.run(ctx, "ip", "netns", "del", l.Attacker); err != nil {
		t.Fatal(err)
	}
	if err := l.Down(); err != nil {
		t.Fatalf("Down of a half-removed lab: %v", err)
	}
	if err := l.Down(); err != nil {
		t.Fatalf("second Down: %v", err)
	}
	for _, ns := range l.Namespaces() {
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); err == nil {
			t.Errorf("namespace %s still exists", ns)
		}
	}
	if _, err := l.StartServers(ServerConfig{}); err == nil {
		t.Errorf("StartServers after Down succeeded")
	}
}

// TestUpCleansUpOnFailure: when Up fails half way (here: the namespace
// names are taken), it leaves nothing of its own behind.
func TestUpCleansUpOnFailure(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A second lab with the same prefix fails on its first namespace and
	// must not remove the first lab's.
	if _, err := Up(ctx, Config{Prefix: l.Prefix}); err == nil {
		t.Fatal("Up with a prefix in use succeeded")
	}
	for _, ns := range l.Namespaces() {
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); err != nil {
			t.Errorf("namespace %s of the running lab gone after a failed Up: %v", ns, err)
		}
	}
	// A prefix whose server namespace is taken: Up builds three and fails
	// on the fourth, then removes its three.
	prefix := l.Prefix + "-x"
	cli, atk, gw, srv := Names(prefix)
	if _, err := l.run(ctx, "ip", "netns", "add", srv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Remove(prefix) })
	if _, err := Up(ctx, Config{Prefix: prefix}); err == nil {
		t.Fatal("Up with the server namespace taken succeeded")
	}
	for _, ns := range []string{cli, atk, gw} {
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); err == nil {
			t.Errorf("namespace %s left after a failed Up", ns)
		}
	}
	if _, err := os.Stat(filepath.Join(netnsDir, srv)); err != nil {
		t.Errorf("failed Up removed %s, which it did not create: %v", srv, err)
	}
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestSynwallRunner: StartSynwall passes the CLI contract's flags, waits
// for the stats file, reports an early exit with the daemon's stderr, and
// Stop / Kill report the exit status. A shell script stands in for the
// daemon.
func TestSynwallRunner(t *testing.T) {
	l := newLab(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	// Writes its arguments into the stats file once "ready", exits 0 on
	// SIGTERM.
	script := `#!/bin/sh
stats=""
prev=""
for a in "$@"; do
	[ "$prev" = "--stats-file" ] && stats="$a"
	prev="$a"
done
trap 'exit 0' TERM
sleep 0.3
printf '{"events": {"syn_answered": 1}, "args": {"n": %d}, "drops": {}}' "$#" > "$stats.tmp"
mv "$stats.tmp" "$stats"
echo "netns $(ip netns identify $$)" >&2
while :; do sleep 0.05; done
`
	bad := filepath.Join(dir, "bad")
	for p, s := range map[string]string{good: script, bad: "#!/bin/sh\necho 'cannot bind queue 0: boom' >&2\nexit 3\n"} {
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	sw, err := l.StartSynwall(ctx, SynwallConfig{Binary: good, Queues: "0-1", Backend: "raw"})
	if err != nil {
		t.Fatalf("StartSynwall: %v", err)
	}
	st, err := sw.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// run --hook forward --fail closed --stats-file F --pid-file "" --syn-stage-if none --queues 0-1 --backend raw
	if st.Events["syn_answered"] != 1 || st.Other["args"]["n"] != 15 {
		t.Errorf("Stats() = %+v, want syn_answered 1 and 15 arguments", st)
	}
	if err := sw.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if !strings.Contains(sw.Stderr(), "netns "+l.Gateway) {
		t.Errorf("daemon did not run in the gateway namespace; its output: %q", sw.Stderr())
	}

	sw, err = l.StartSynwall(ctx, SynwallConfig{Binary: good})
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Kill(); err == nil {
		t.Errorf("Kill: nil exit status, want killed")
	}

	_, err = l.StartSynwall(ctx, SynwallConfig{Binary: bad})
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("StartSynwall(exits at once) = %v, want ErrNotReady with its stderr", err)
	}
	_, err = l.StartSynwall(ctx, SynwallConfig{Binary: filepath.Join(dir, "missing")})
	if err == nil {
		t.Errorf("StartSynwall(missing binary) succeeded")
	}
}

// TestFloodCancel: cancelling a flood stops hping3 at once, leaves no
// process in the attacker namespace, and still reports what was sent.
func TestFloodCancel(t *testing.T) {
	needTools(t, "hping3", "timeout")
	l := newLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	t0 := time.Now()
	r, err := l.Flood(ctx, Flood{Target: ServerV4, Port: HTTPPort, Flags: []string{"-S"}, Duration: 30 * time.Second})
	el := time.Since(t0)
	if err != nil {
		t.Fatalf("Flood: %v", err)
	}
	if el > 5*time.Second {
		t.Errorf("cancelled flood took %v, want about 1 s", el)
	}
	if r.Sent == 0 {
		t.Errorf("cancelled flood reported 0 packets sent: %q", r.Output)
	}
	t.Logf("1 s of SYN flood: %d packets (%.0f/s)", r.Sent, r.PPS())
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	out, err := l.run(pctx, "ip", "netns", "pids", l.Attacker)
	if err != nil {
		t.Fatal(err)
	}
	if pids := strings.TrimSpace(out); pids != "" {
		t.Errorf("processes left in the attacker namespace: %s", pids)
	}
}

// TestDemoCancelled: ending the demo's context (Ctrl-C) in the middle of
// the baseline flood still removes the lab.
func TestDemoCancelled(t *testing.T) {
	needTools(t, "ip", "iptables", "hping3", "timeout")
	prefix := fmt.Sprintf("sw%d-demo", os.Getpid())
	t.Cleanup(func() { Remove(prefix) })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(3*time.Second, cancel)
	var out strings.Builder
	t0 := time.Now()
	// Cancelled during the first flood (the drop baseline's).
	_, err := RunDemo(ctx, DemoConfig{Synwall: needSynwall(t), Generator: []string{labBin, "synflood"}, Prefix: prefix, Measure: 10 * time.Second}, &out)
	if errors.Is(err, ErrPermission) {
		t.Skipf("needs root: %v", err)
	}
	if err == nil {
		t.Fatalf("RunDemo with a cancelled context succeeded:\n%s", out.String())
	}
	if el := time.Since(t0); el > 15*time.Second {
		t.Errorf("cancelled demo took %v to return", el)
	}
	cli, atk, gw, srv := Names(prefix)
	for _, ns := range []string{cli, atk, gw, srv} {
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); err == nil {
			t.Errorf("namespace %s left after the demo was cancelled", ns)
		}
	}
	if !strings.Contains(out.String(), "removed") {
		t.Errorf("demo output does not say the lab was removed:\n%s", out.String())
	}
	t.Logf("demo output:\n%s", out.String())
}

// TestDemo runs a short demo through the real daemon and the generator of
// synwall-lab, and checks that every row is there and its numbers hold
// together: the baseline answers nothing, the proxies answer most of what
// they are offered and never more, the CPU figures are finite and
// plausible, and the clients get through the proxies.
func TestDemo(t *testing.T) {
	needTools(t, "ip", "iptables", "ip6tables", "hping3", "timeout")
	bin := needSynwall(t)
	prefix := fmt.Sprintf("sw%d-demo2", os.Getpid())
	t.Cleanup(func() { Remove(prefix) })
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	var out strings.Builder
	const conns = 40
	cfg := DemoConfig{Synwall: bin, Generator: []string{labBin, "synflood"}, Prefix: prefix,
		Rate: 20_000, Measure: 2 * time.Second, Repeat: 2, Flood: 4 * time.Second, Connections: conns}
	t0 := time.Now()
	res, err := RunDemo(ctx, cfg, &out)
	t.Logf("demo output (%v):\n%s", time.Since(t0).Round(time.Second), out.String())
	if errors.Is(err, ErrPermission) {
		t.Skipf("needs root: %v", err)
	}
	if err != nil {
		t.Fatalf("RunDemo: %v", err)
	}
	for _, want := range []string{"CPU per SYN-ACK above baseline", "legitimate ok", NameDrop, NameNone, NameSynproxy, NameNFQueue, NameBPF,
		"SYNs answered by synwall", "handshakes completed", "invalid packets dropped", "removed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	var names []string
	for _, r := range res.Rows {
		names = append(names, r.Defense.Name)
	}
	if d := cmp.Diff([]string{NameDrop, NameNone, NameSynproxy, NameNFQueue, NameBPF}, names); d != "" {
		t.Fatalf("demo rows (-want +got):\n%s", d)
	}
	for _, r := range res.Rows {
		t.Run(r.Defense.Name, func(t *testing.T) {
			if !r.CPU.Measured() {
				if r.Defense.Name != NameBPF || r.CPU.NotMeasured != NotAvailable {
					t.Fatalf("not measured: %q", r.CPU.NotMeasured)
				}
				return
			}
			c := r.CPU
			if c.Sent < cfg.Rate*int(cfg.Measure/time.Second)/4 || c.SynAcks > uint64(c.Sent) || c.SynAcks > c.AllSynAcks || c.Busy <= 0 || c.BusyShare() > 1.05 {
				t.Errorf("generator sent %d (want near %d), SYN-ACKs %d (at most that, and at most all %d), busy %v = %.2f of the machine",
					c.Sent, cfg.Rate*int(cfg.Measure/time.Second), c.SynAcks, c.AllSynAcks, c.Busy, c.BusyShare())
			}
			switch r.Defense.Kind {
			case DefenseDrop:
				if c.SynAcks != 0 || r.HasExtra {
					t.Errorf("baseline answered %d SYNs (has extra CPU %v), want none", c.SynAcks, r.HasExtra)
				}
				return
			case DefenseNone:
				if r.Legit.Load.Attempts != conns {
					t.Errorf("client made %d connections, want %d", r.Legit.Load.Attempts, conns)
				}
				return
			}
			// A proxy answers (nearly) every spoofed SYN at this rate.
			if float64(c.SynAcks) < 0.5*float64(c.Sent) {
				t.Errorf("SYN-ACKs %d of %d offered, want at least half", c.SynAcks, c.Sent)
			}
			// Other work on the machine moves the figure; it cannot move it
			// this far.
			if !r.HasExtra || r.Extra.Abs() > time.Millisecond {
				t.Errorf("CPU per SYN-ACK above baseline %v (has %v), want a figure within ±1ms", r.Extra, r.HasExtra)
			}
			// The generator's exact runtime is in every row, so the task
			// figure exists wherever the machine's does.
			if !r.HasTaskExtra || r.TaskExtra.Abs() > time.Millisecond || c.TaskCPU.Generators <= 0 {
				t.Errorf("task CPU per SYN-ACK above baseline %v (has %v, generators %v), want a figure within ±1ms", r.TaskExtra, r.HasTaskExtra, c.TaskCPU.Generators)
			}
			if l := r.Legit.Load; l.Attempts != conns || l.SuccessRate() < 0.95 {
				t.Errorf("legitimate: %v, want >= 95%% of %d", l, conns)
			}
			if r.Defense.Kind == DefenseSynwall && r.Legit.Delta("handshake") < uint64(r.Legit.Load.OK) && r.Defense.Name == NameNFQueue {
				t.Errorf("synwall completed %d handshakes for %d successful clients", r.Legit.Delta("handshake"), r.Legit.Load.OK)
			}
			if r.Defense.Name == NameNFQueue && (r.Legit.InvalidSent == 0 || r.Legit.Dropped() == 0) {
				t.Errorf("synwall dropped %d of %d invalid packets, want some", r.Legit.Dropped(), r.Legit.InvalidSent)
			}
			t.Logf("%.0f SYN-ACKs/s, %v per SYN-ACK above baseline", c.SynAckPPS(), r.Extra)
		})
	}
}

// TestIperf: iperf3 through the gateway without synwall (a reference for
// throughput measurements), over IPv4 and IPv6.
func TestIperf(t *testing.T) {
	needTools(t, "iperf3")
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := l.StartIperf(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{ServerV4, ServerV6} {
		bps, err := l.Iperf(ctx, a, time.Second)
		if err != nil {
			t.Fatalf("Iperf(%v): %v", a, err)
		}
		if bps <= 0 {
			t.Errorf("Iperf(%v) = %v bit/s, want > 0", a, bps)
		}
		t.Logf("iperf3 to %v without synwall: %.2f Gbit/s", a, bps/1e9)
	}
}

// TestLabBinary: cmd/synwall-lab builds the lab with `lab up` until
// interrupted and removes it; `demo` finds the synwall binary next to
// itself, and without one there it refuses to start.
func TestLabBinary(t *testing.T) {
	needTools(t, "ip", "iptables", "ip6tables")
	needSynwall(t)
	prefix := fmt.Sprintf("sw%d-bin", os.Getpid())
	t.Cleanup(func() { Remove(prefix) })
	cmd := exec.Command(labBin, "lab", "up", "--prefix", prefix)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "is up") {
		select {
		case err := <-waited:
			if strings.Contains(errb.String(), "permission") || strings.Contains(errb.String(), "Operation not permitted") {
				t.Skipf("needs root: %s", errb.String())
			}
			t.Fatalf("synwall-lab lab up exited (%v) before the lab was up:\n%s%s", err, out.String(), errb.String())
		case <-deadline:
			cmd.Process.Kill()
			<-waited
			t.Fatalf("synwall-lab lab up: not up after 60 s:\n%s%s", out.String(), errb.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cli, atk, gw, srv := Names(prefix)
	if !strings.Contains(out.String(), "ip netns exec "+gw+" synwall run") {
		t.Errorf("lab up output does not say how to run synwall in %s:\n%s", gw, out.String())
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("synwall-lab lab up after Ctrl-C: %v, want exit 0; stderr:\n%s", err, errb.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("synwall-lab lab up did not end after Ctrl-C")
	}
	for _, ns := range []string{cli, atk, gw, srv} {
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); err == nil {
			t.Errorf("namespace %s left after lab up was interrupted", ns)
		}
	}

	// Without a synwall next to it (nor --synwall), demo does not start.
	alone := filepath.Join(t.TempDir(), "synwall-lab")
	b, err := os.ReadFile(labBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, b, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := exec.Command(alone, "demo").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(res), "--synwall") {
		t.Errorf("synwall-lab demo without a synwall binary = %v, %q; want exit 3 naming --synwall", err, res)
	}
}
