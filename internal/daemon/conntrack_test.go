package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/synwall/synwall/deploy/lab"
	"github.com/synwall/synwall/internal/conntrack"
)

func TestConntrackRulesFollowStart(t *testing.T) {
	cfg := testConfig("")
	cfg.Traffic.Conntrack = true
	d := testDaemon(t, cfg)
	if c := d.rules.Conntrack; c == nil || c.Mark != conntrack.DefaultMark || c.Mask != conntrack.DefaultMarkMask {
		t.Fatalf("rules' Conntrack = %+v, want the default mark", c)
	}
	// A reload keeps what the start decided: on stays on...
	r, err := d.rulesFor(d.engine.Policy())
	if err != nil || r.Conntrack == nil {
		t.Errorf("rulesFor with the hand-off on: Conntrack %v, %v; want kept", r.Conntrack, err)
	}
	// ...and off (unsupported at start) stays off.
	d.rules.Conntrack = nil
	if r, err := d.rulesFor(d.engine.Policy()); err != nil || r.Conntrack != nil {
		t.Errorf("rulesFor with the hand-off off: Conntrack %v, %v; want nil", r.Conntrack, err)
	}
	cfg.Traffic.Conntrack = false
	if d := testDaemon(t, cfg); d.rules.Conntrack != nil {
		t.Errorf("--conntrack=false: rules' Conntrack = %+v, want nil", d.rules.Conntrack)
	}
}

func TestConntrackOffStatus(t *testing.T) {
	d := testDaemon(t, testConfig(""))
	d.openConntrack()
	s := d.status(time.Now()).Conntrack
	if s.On || !strings.Contains(s.Off, "disabled") || s.Flows != -1 {
		t.Errorf("status with --conntrack=false = %+v, want off, disabled, flows -1", s)
	}
	got := pick(series(t, d.cfg.Registry), "synwall_conntrack_handoff_enabled", "synwall_conntrack_flows")
	if want := map[string]float64{"synwall_conntrack_handoff_enabled": 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metrics = %v, want %v", got, want)
	}
}

// TestConntrackInNamespace starts the daemon's hand-off in a namespace of
// the test's own, hands one flow off through it and reads the count back
// through the status, the metrics and the stats file.
func TestConntrackInNamespace(t *testing.T) {
	ns := fmt.Sprintf("swdct%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "not permitted") || os.IsPermission(err) {
			t.Skipf("needs root to build a network namespace: %v: %s", err, out)
		}
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })

	cfg := testConfig("")
	cfg.Traffic.Conntrack = true
	cfg.Registry = prometheus.NewRegistry()
	d := testDaemon(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	t.Cleanup(func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Errorf("hand-off task: %v", err)
		}
	})
	if err := lab.InNetns(ns, func() error { d.openConntrack(); return nil }); err != nil {
		t.Fatal(err)
	}
	d.runConntrack(ctx, &g)
	if d.kflows.h == nil {
		t.Fatalf("hand-off off in a fresh namespace: %s", d.kflows.off)
	}
	f := conntrack.Flow{
		Client: netip.MustParseAddrPort("198.18.1.2:40000"), Server: netip.MustParseAddrPort("198.18.3.2:80"),
		Opts: conntrack.OptTimestamps, CookieISN: 1, ServerISN: 2, ITS: 3, ServerTSval: 4,
	}
	if !d.kflows.h.Submit(&f) {
		t.Fatal("Submit = false")
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.kflows.h.Stats().Created == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	d.countKernelFlows(time.Now())
	s := d.status(time.Now()).Conntrack
	if !s.On || s.Flows != 1 || s.Created != 1 {
		t.Errorf("status = %+v, want on, 1 flow, 1 created", s)
	}
	d.kflows.path.rstTranslated.Add(2)
	got := pick(series(t, d.cfg.Registry), "synwall_conntrack_handoff_enabled", "synwall_conntrack_flows",
		"synwall_conntrack_handoffs_total{result=created}", "synwall_conntrack_handoffs_total{result=exists}",
		"synwall_conntrack_kernel_path_total{kind=rst_translated}", "synwall_engine_handoffs_total{result=handed_off}")
	want := map[string]float64{"synwall_conntrack_handoff_enabled": 1, "synwall_conntrack_flows": 1,
		"synwall_conntrack_handoffs_total{result=created}": 1, "synwall_conntrack_handoffs_total{result=exists}": 0,
		"synwall_conntrack_kernel_path_total{kind=rst_translated}": 2, "synwall_engine_handoffs_total{result=handed_off}": 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metrics = %v, want %v", got, want)
	}
	if doc := d.snapshot(); doc.Conntrack["flows"] != 1 || doc.Conntrack["created"] != 1 {
		t.Errorf("stats file conntrack = %v, want flows 1, created 1", doc.Conntrack)
	}
}

func TestSummarizeConntrack(t *testing.T) {
	var buf strings.Builder
	cfg := testConfig("")
	cfg.Log = slog.New(slog.NewTextHandler(&buf, nil))
	cfg.LogSummary = 10 * time.Second
	d := testDaemon(t, cfg)
	// A hand-off that is on, without a kernel: its counters are all zero.
	h, err := conntrack.New(conntrack.Config{})
	if err != nil {
		t.Skipf("ctnetlink sockets: %v", err)
	}
	defer h.Close()
	d.kflows.h = h
	d.kflows.flows.Store(-1)
	t0 := time.Unix(1000, 0)
	d.summarizeConntrack(t0)
	if buf.Len() != 0 {
		t.Errorf("a summary with nothing to say: %q", buf.String())
	}
	d.kflows.path.rstTranslated.Add(3)
	d.summarizeConntrack(t0.Add(5 * time.Second))
	if buf.Len() != 0 {
		t.Errorf("a summary within the interval: %q", buf.String())
	}
	d.summarizeConntrack(t0.Add(10 * time.Second))
	if got := buf.String(); !strings.Contains(got, `msg="conntrack hand-off"`) || !strings.Contains(got, "rst_translated=3") {
		t.Errorf("summary = %q, want one line with rst_translated=3", got)
	}
}

// TestConntrackDisabledLate: when the hand-off's rules are refused after
// the hand-off was opened, the status says it is off and why.
func TestConntrackDisabledLate(t *testing.T) {
	cfg := testConfig("")
	cfg.Traffic.Conntrack = true
	d := testDaemon(t, cfg)
	h, err := conntrack.New(conntrack.Config{})
	if err != nil {
		t.Skipf("ctnetlink sockets: %v", err)
	}
	defer h.Close()
	d.kflows.h = h
	if !d.conntrackStatus().On {
		t.Fatal("status off with the hand-off open")
	}
	d.disableConntrack("firewall: no SYNPROXY target")
	s := d.conntrackStatus()
	if s.On || s.Off != "firewall: no SYNPROXY target" || d.rules.Conntrack != nil {
		t.Errorf("after disableConntrack: status %+v, rules' Conntrack %v; want off with the reason, and no conntrack rules", s, d.rules.Conntrack)
	}
}
