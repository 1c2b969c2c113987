package lab

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/synwall/synwall/internal/policy"
)

// copyFile copies src to dst (mode 0755) through a temporary file and a
// rename, as an upgrade replaces a binary.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	tmp := dst + ".new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// hashCounter hashes what is written and counts it; the count may be read
// while an exec.Cmd copies into it.
type hashCounter struct {
	h io.Writer
	n atomic.Int64
}

func (c *hashCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return c.h.Write(p)
}

var (
	restartDone   = regexp.MustCompile(`graceful restart done" queues_handed_over=(\d+) queues_unbound_for=(\S+)( queues_paused_for=\S+)?`)
	restoredFlows = regexp.MustCompile(`msg="state restored" flows=(\d+)`)
	// carriedAlready: the new process found connections the old one
	// handed to conntrack.
	carriedAlready = regexp.MustCompile(`conntrack hand-off on.* carried_already=[1-9]`)
)

// TestSynwallGracefulRestart: a rate-limited 20 MB download through
// synwall is under way when `synwall restart` is run, after the binary on
// disk was replaced (an upgrade). The download completes intact, the daemon
// keeps its PID and now runs the new binary, synwall's rules exist exactly
// once, new connections succeed, and the state file is gone. Run with the
// queue sockets handed over (the default: the queues never unbind) and
// without (--handoff=false) in both fail modes; the time the queues were
// unbound or paused is logged (it varies with the machine's load, so it is
// not asserted).
//
// With the BPF SYN stage on the client-facing interface (handoff-stage)
// the stage is handed over too: its tcx link is the same before and after
// the restart (never detached), and a connection whose SYN the stage
// answered before the restart, whose handshake ACK the client's own
// firewall held back, completes after it with its first data segment:
// the cookie keys are unchanged and the new engine finds the SYN cache
// entry the stage wrote before the restart (a cache hit).
func TestSynwallGracefulRestart(t *testing.T) {
	needTools(t, "curl")
	for _, tc := range []struct {
		name, fail string
		handoff    bool
		stage      bool
		// kernel: the download's flow is handed to conntrack (a policy
		// that discovers the server's options): it lives on in the kernel
		// across the restart, and the state carries none of it. Otherwise
		// the flow stays in user space (--conntrack=false) and the state
		// file carries it.
		kernel bool
	}{
		{"handoff", "closed", true, false, false},
		{"handoff-stage", "closed", true, true, false},
		{"unbind-fail-closed", "closed", false, false, false},
		{"unbind-fail-open", "open", false, false, false},
		{"conntrack", "closed", true, false, true},
	} {
		fail := tc.fail
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			if _, err := l.StartServers(ServerConfig{}); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			bin := filepath.Join(dir, "synwall")
			copyFile(t, needSynwall(t), bin)
			pidFile := filepath.Join(dir, "synwall.pid")
			stateDir := filepath.Join(dir, "state")
			cfg := SynwallConfig{Fail: fail, Args: []string{"--pid-file", pidFile, "--state-dir", stateDir, "--handoff=" + strconv.FormatBool(tc.handoff)}}
			if tc.stage {
				cfg.Args = append(cfg.Args, "--syn-stage", "tc", "--syn-stage-if", IfClient)
			}
			cfg.Binary = bin
			if tc.kernel {
				cfg.Policy = writePolicy(t, handoffPolicy)
			} else {
				cfg.Args = append(cfg.Args, "--conntrack=false")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			sw, err := l.StartSynwall(ctx, cfg)
			if err != nil {
				t.Fatalf("StartSynwall: %v", err)
			}
			defer func() {
				if t.Failed() {
					t.Logf("synwall (pid %d) output:\n%s", sw.PID(), sw.Stderr())
				}
			}()
			rules := synwallRules(t, l)
			if len(rules) == 0 {
				t.Fatalf("no synwall rules while it runs; iptables-save:\n%s", saveAll(t, l))
			}

			// A download of BigSize bytes at 2 MiB/s: about 10 s.
			want := BodySHA256(BigSize)
			h := sha256.New()
			cw := &hashCounter{h: h}
			curl := l.Cmd(ctx, l.Client, "curl", "-sS", "--fail", "--connect-timeout", "10", "--max-time", "60",
				"--limit-rate", "2M", "-o", "-", "http://198.18.3.2/big")
			var curlErr strings.Builder
			curl.Stdout, curl.Stderr = cw, &curlErr
			if err := curl.Start(); err != nil {
				t.Fatal(err)
			}
			curlDone := make(chan error, 1)
			go func() { curlDone <- curl.Wait() }()
			time.Sleep(1500 * time.Millisecond)
			if cw.n.Load() == 0 {
				t.Logf("no byte of the download after 1.5 s (still connecting?)")
			}
			atRestart := cw.n.Load()
			select {
			case err := <-curlDone:
				t.Fatalf("the download ended (%v) before the restart, after %d bytes", err, atRestart)
			default:
			}

			var links []uint32
			var straddle *straddler
			if tc.stage {
				links = tcxLinkIDs(t, l.Gateway, IfClient)
				if len(links) != 1 {
					t.Fatalf("tcx links on the gateway's %s before the restart: %v, want the stage's one", IfClient, links)
				}
				straddle = startStraddle(ctx, t, l)
			}

			copyFile(t, needSynwall(t), bin) // the upgrade: a new file at the same path
			exe, _ := os.Readlink("/proc/" + strconv.Itoa(sw.PID()) + "/exe")
			if !strings.HasSuffix(exe, "(deleted)") {
				t.Fatalf("/proc/PID/exe = %q before the restart, want the replaced file (deleted)", exe)
			}
			t0 := time.Now()
			out, err := exec.CommandContext(ctx, needSynwall(t), "restart", "--pid-file", pidFile, "--wait", "30s").CombinedOutput()
			took := time.Since(t0)
			if err != nil {
				t.Fatalf("synwall restart: %v: %s", err, out)
			}
			t.Logf("synwall restart: %s (%d bytes of the download in at the restart)", strings.TrimSpace(string(out)), atRestart)

			select {
			case <-sw.Done():
				t.Fatalf("the daemon exited during the restart: %v", sw.ExitErr())
			default:
			}
			if exe, _ := os.Readlink("/proc/" + strconv.Itoa(sw.PID()) + "/exe"); exe != bin {
				t.Errorf("/proc/PID/exe = %q after the restart, want the new %s", exe, bin)
			}
			if got := synwallRules(t, l); !equalLines(got, rules) {
				t.Errorf("rules after the restart =\n%v\nwant exactly the ones before:\n%v", got, rules)
			}
			if _, err := os.Stat(filepath.Join(stateDir, "state")); !os.IsNotExist(err) {
				t.Errorf("state file after the restart: %v, want removed", err)
			}
			m := restartDone.FindStringSubmatch(sw.Stderr())
			switch {
			case m == nil:
				t.Errorf("no graceful restart line in the daemon's log; the state was not restored?")
			case tc.handoff && (m[1] != strconv.Itoa(len(policy.DefaultQueueNumbers())) || m[2] != "0s"):
				t.Errorf("handoff: %s queues handed over, unbound for %s; want the %d of the default policy and 0s", m[1], m[2], len(policy.DefaultQueueNumbers()))
			case !tc.handoff && m[1] != "0":
				t.Errorf("--handoff=false: %s queues handed over, want 0", m[1])
			}
			if m != nil {
				t.Logf("%s: queues unbound for %s%s; synwall restart returned after %v", tc.name, m[2], m[3], took.Round(time.Millisecond))
			}
			switch m := restoredFlows.FindStringSubmatch(sw.Stderr()); {
			case tc.kernel && (m == nil || m[1] != "0"):
				t.Errorf("the daemon restored flows (log match %q); the download's flow is the kernel's, want none in the state", m)
			case tc.kernel && !carriedAlready.MatchString(sw.Stderr()):
				t.Errorf("the new process did not find the download's flow in conntrack (no carried_already >= 1 in the log)")
			case !tc.kernel && (m == nil || m[1] == "0"):
				t.Errorf("the daemon restored no flow (log match %q); the download's flow should be one", m)
			}
			if tc.stage {
				if got := tcxLinkIDs(t, l.Gateway, IfClient); !slices.Equal(got, links) {
					t.Errorf("tcx links on %s after the restart: %v, want the same %v (never detached)", IfClient, got, links)
				}
				if !strings.Contains(sw.Stderr(), "SYN stage adopted from the previous process") {
					t.Errorf("the restarted daemon does not say it adopted the stage")
				}
				hitsBefore := statsAfter(t, sw).Other["engine"]["cache_hits"]
				straddle.finish(ctx, t)
				if hits := statsAfter(t, sw).Other["engine"]["cache_hits"]; hits <= hitsBefore {
					t.Errorf("engine cache_hits %d before and %d after the connection answered before the restart completed, want one more (the stage's entry, in the SYN cache the new engine adopted)", hitsBefore, hits)
				}
			}

			select {
			case err := <-curlDone:
				if err != nil {
					t.Fatalf("curl: %v: %s", err, curlErr.String())
				}
			case <-time.After(70 * time.Second):
				t.Fatalf("curl did not finish")
			}
			if cw.n.Load() != BigSize {
				t.Fatalf("download got %d bytes, want %d", cw.n.Load(), BigSize)
			}
			if got := h.Sum(nil); string(got) != string(want[:]) {
				t.Errorf("download SHA-256 %x, want %x", got, want)
			}

			r, err := l.Connect(ctx, Load{Addr: netip.AddrPortFrom(ServerV4, HTTPPort), N: 5, Concurrency: 5, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if r.OK != 5 {
				t.Errorf("new connections after the restart: %v, want 5/5", r)
			}
			st := statsAfter(t, sw)
			if tc.kernel {
				if ct := st.Other["conntrack"]; st.Events["handshake"] < 5 || ct["created"] < 5 {
					t.Errorf("after the restart synwall counted %d handshakes and %d hand-offs; want the new connections", st.Events["handshake"], ct["created"])
				}
			} else if st.Events["handshake"] < 5 || st.Events["translated"] == 0 {
				t.Errorf("after the restart synwall counted %d handshakes and %d translated packets; want the new connections and the download through it",
					st.Events["handshake"], st.Events["translated"])
			}
			if err := sw.Stop(); err != nil {
				t.Errorf("SIGTERM after the restart: %v, want a clean exit", err)
			}
			if got := synwallRules(t, l); len(got) != 0 {
				t.Errorf("rules after a clean stop: %v, want none", got)
			}
			if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
				t.Errorf("pid file after a clean stop: %v, want removed", err)
			}
		})
	}
}

// tcxLinkIDs returns the ids of the tcx ingress links on ifname in ns.
func tcxLinkIDs(t *testing.T, ns, ifname string) []uint32 {
	t.Helper()
	var ids []uint32
	err := InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		r, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		for _, p := range r.Programs {
			id, _ := p.LinkID()
			ids = append(ids, uint32(id))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// straddler is a connection whose SYN the stage answers before a restart
// and whose handshake completes after it: the client's firewall drops its
// bare ACKs to the bulk port, so that the client's connect returns on the
// stage's SYN-ACK while the gateway never sees the handshake ACK; once the
// rule is gone, the client's first data segment (which acknowledges the
// SYN-ACK too) is the handshake ACK.
type straddler struct {
	l    *Lab
	conn net.Conn
	rule []string
}

func startStraddle(ctx context.Context, t *testing.T, l *Lab) *straddler {
	t.Helper()
	s := &straddler{l: l, rule: []string{"OUTPUT", "-p", "tcp", "-d", ServerV4.String(), "--dport", strconv.Itoa(BulkPort), "--tcp-flags", "ALL", "ACK", "-j", "DROP"}}
	if out, err := l.Exec(ctx, l.Client, "iptables", append([]string{"-w", "10", "-A"}, s.rule...)...); err != nil {
		t.Fatalf("iptables: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		l.Exec(context.Background(), l.Client, "iptables", append([]string{"-w", "10", "-D"}, s.rule...)...)
	})
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := DialIn(dctx, l.Client, "tcp", netip.AddrPortFrom(ServerV4, BulkPort).String())
	if err != nil {
		t.Fatalf("connect answered by the stage before the restart: %v", err)
	}
	s.conn = c
	t.Cleanup(func() { c.Close() })
	return s
}

// finish lets the handshake ACK through and checks that the connection
// carries a request and its answer.
func (s *straddler) finish(ctx context.Context, t *testing.T) {
	t.Helper()
	if out, err := s.l.Exec(ctx, s.l.Client, "iptables", append([]string{"-w", "10", "-D"}, s.rule...)...); err != nil {
		t.Fatalf("iptables: %v\n%s", err, out)
	}
	const n = 100_000
	s.conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := fmt.Fprintf(s.conn, "source %d\n", n); err != nil {
		t.Fatalf("request on the connection answered before the restart: %v", err)
	}
	h := sha256.New()
	got, err := io.Copy(h, s.conn)
	if err != nil || got != n {
		t.Fatalf("connection answered before the restart: %d bytes (%v), want %d", got, err, n)
	}
	if sum := BodySHA256(n); string(h.Sum(nil)) != string(sum[:]) {
		t.Errorf("connection answered before the restart: the %d bytes arrived altered", n)
	}
}
