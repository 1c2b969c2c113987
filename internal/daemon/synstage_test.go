package daemon

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/synwall/synwall/deploy/lab"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/observe"
	"github.com/synwall/synwall/internal/synstage"
)

func TestParseSynStageMode(t *testing.T) {
	for _, s := range []string{"auto", "tc", "xdp", "off"} {
		if got, err := ParseSynStageMode(s); err != nil || got != s {
			t.Errorf("ParseSynStageMode(%q) = %q, %v, want %q", s, got, err, s)
		}
	}
	for _, s := range []string{"", "tcx", "on", "XDP"} {
		if _, err := ParseSynStageMode(s); err == nil {
			t.Errorf("ParseSynStageMode(%q) succeeded", s)
		}
	}
}

// TestSynStageOff checks the modes that leave SYNs to NFQUEUE alone and
// say why in the status and metrics: off, auto without interfaces, and a
// strict mode without interfaces refused.
func TestSynStageOff(t *testing.T) {
	tests := []struct {
		name   string
		cfg    SynStageConfig
		reason string
	}{
		{"zero", SynStageConfig{}, "off (--syn-stage off)"},
		{"off", SynStageConfig{Mode: "off", Interfaces: []string{"eth0"}}, "off (--syn-stage off)"},
		{"auto without interfaces", SynStageConfig{Mode: "auto"}, "off: no client-facing interfaces given (--syn-stage-if)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("")
			cfg.SynStage = tc.cfg
			d := testDaemon(t, cfg)
			st := d.status(d.now())
			if st.SynStage.Mode != "off" || st.SynStage.Reason != tc.reason {
				t.Errorf("status syn_stage = %+v, want off with reason %q", st.SynStage, tc.reason)
			}
			if got, ok := series(t, d.cfg.Registry)["synwall_syn_stage_up{mode=off}"]; !ok || got != 0 {
				t.Errorf("synwall_syn_stage_up{mode=off} = %v (present %v), want 0", got, ok)
			}
		})
	}
	cfg := testConfig("")
	cfg.SynStage = SynStageConfig{Mode: "tc"}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "no interfaces") {
		t.Errorf("New with --syn-stage tc and no interfaces = %v, want an error", err)
	}
}

// TestSynStageAutoFallback loads the stage (root) and fails to attach it to
// an interface that does not exist: in auto mode the daemon goes on with
// NFQUEUE alone and says why; in tc mode attaching is an error.
func TestSynStageAutoFallback(t *testing.T) {
	if _, err := synstage.Load(synstage.Options{}); errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
		t.Skipf("loading BPF needs root: %v", err)
	} else if err != nil {
		t.Fatalf("synstage.Load: %v", err)
	}
	cfg := testConfig("")
	cfg.SynStage = SynStageConfig{Mode: "auto", Interfaces: []string{"nosuch-syn0"}}
	d := testDaemon(t, cfg)
	if mode, _ := d.syn.describe(); mode != "tc" {
		t.Fatalf("after New the stage is %q, want tc (loaded)", mode)
	}
	if c := d.engine.Capacity(); c.CacheCapacity == 0 {
		t.Fatal("engine without a SYN cache")
	}
	if err := d.syn.attach(); err != nil {
		t.Fatalf("attach in auto mode: %v", err)
	}
	st := d.status(d.now())
	if st.SynStage.Mode != "off" || !strings.Contains(st.SynStage.Reason, "nosuch-syn0") {
		t.Errorf("status syn_stage = %+v, want off naming the interface", st.SynStage)
	}

	cfg.SynStage.Mode = "tc"
	d = testDaemon(t, cfg)
	defer d.closeStage()
	if err := d.syn.attach(); !errors.Is(err, synstage.ErrUnavailable) {
		t.Errorf("attach in tc mode = %v, want ErrUnavailable", err)
	}
}

// stageLab builds a lab of network namespaces for the stage to attach in,
// or skips the test when this process may not load BPF or build
// namespaces (in CI a missing tool fails it).
func stageLab(t *testing.T) *lab.Lab {
	t.Helper()
	st, err := synstage.Load(synstage.Options{})
	if errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
		t.Skipf("loading BPF needs root: %v", err)
	} else if err != nil {
		t.Fatalf("synstage.Load: %v", err)
	}
	st.Close()
	if err := lab.Require("ip", "iptables", "ip6tables"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Config{})
	if errors.Is(err, lab.ErrPermission) {
		t.Skipf("building network namespaces needs root: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

// tcxLinks returns the ids of the tcx ingress links on ifname in ns.
func tcxLinks(t *testing.T, ns, ifname string) []link.ID {
	t.Helper()
	var ids []link.ID
	err := lab.InNetns(ns, func() error {
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
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestSynStageHandover: on a graceful restart the daemon hands its
// attached stage to the next process instead of detaching it, and the
// next daemon adopts it (same tcx link, never detached) and builds its
// engine on the same SYN cache, hashing tuples with the same seed; a
// plain stop then detaches. A next daemon with the stage off detaches
// what it was handed.
func TestSynStageHandover(t *testing.T) {
	l := stageLab(t)
	var logs bytes.Buffer
	cfg := testConfig("")
	cfg.Log = testLogger(&logs)
	cfg.SynStage = SynStageConfig{Mode: "tc", Interfaces: []string{lab.IfClient}}

	restart := func(d *Daemon) {
		t.Helper()
		d.restarting.Store(true)
		d.closeStage()
		name, val, ok := strings.Cut(d.stageHandoverEnv(), "=")
		if !ok || name != synstage.HandoverEnv {
			t.Fatalf("after closeStage on a restart the handover entry is %q, want %s=...", d.stageHandoverEnv(), synstage.HandoverEnv)
		}
		t.Setenv(name, val)
	}

	d1 := testDaemon(t, cfg)
	if err := lab.InNetns(l.Gateway, d1.syn.attach); err != nil {
		t.Fatalf("attach: %v", err)
	}
	links := tcxLinks(t, l.Gateway, lab.IfClient)
	if len(links) != 1 {
		t.Fatalf("tcx links on %s: %v, want one", lab.IfClient, links)
	}
	restart(d1)
	if got := tcxLinks(t, l.Gateway, lab.IfClient); !slices.Equal(got, links) {
		t.Fatalf("tcx links after the old daemon let go: %v, want %v (still attached)", got, links)
	}

	d2 := testDaemon(t, cfg)
	if !strings.Contains(logs.String(), "SYN stage adopted from the previous process") {
		t.Errorf("the next daemon does not say it adopted the stage:\n%s", logs.String())
	}
	if got, want := d2.engine.FlowSeed(), d1.engine.FlowSeed(); got != want {
		t.Errorf("next engine's FlowSeed = %x, want the old engine's %x (the SYN cache's entries are named with it)", got, want)
	}
	if err := lab.InNetns(l.Gateway, d2.syn.attach); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if got := tcxLinks(t, l.Gateway, lab.IfClient); !slices.Equal(got, links) {
		t.Errorf("tcx links after the next daemon attached: %v, want %v (the same link)", got, links)
	}
	if mode, reason := d2.syn.describe(); mode != "tc" {
		t.Errorf("next daemon's stage is %q (%s), want tc", mode, reason)
	}
	if st := d2.status(d2.now()); st.SynStage.Inherited != "adopted" {
		t.Errorf("next daemon's status syn_stage.inherited = %q, want adopted", st.SynStage.Inherited)
	}

	// Handed to a daemon with the stage off: detached.
	restart(d2)
	logs.Reset()
	off := cfg
	off.SynStage = SynStageConfig{Mode: "off"}
	testDaemon(t, off)
	if got := tcxLinks(t, l.Gateway, lab.IfClient); len(got) != 0 {
		t.Errorf("tcx links after a daemon with --syn-stage off started: %v, want none", got)
	}
	if !strings.Contains(logs.String(), "handed-over SYN stage detached") {
		t.Errorf("the daemon with the stage off does not say it detached the handed-over stage:\n%s", logs.String())
	}

	// A plain stop detaches.
	d3 := testDaemon(t, cfg)
	if err := lab.InNetns(l.Gateway, d3.syn.attach); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if got := tcxLinks(t, l.Gateway, lab.IfClient); len(got) != 1 {
		t.Fatalf("tcx links: %v, want one", got)
	}
	d3.closeStage()
	if got := tcxLinks(t, l.Gateway, lab.IfClient); len(got) != 0 {
		t.Errorf("tcx links after a plain stop: %v, want none", got)
	}
	if env := d3.stageHandoverEnv(); env != "" {
		t.Errorf("handover entry after a plain stop: %q, want none", env)
	}
}

// TestSynStageSampling: with a pcap file, the frames the stage drops reach
// the daemon's pcap sampler (hping3's SYN+FIN segments, dropped by the
// stage on the gateway's client-facing interface), classed by reason.
func TestSynStageSampling(t *testing.T) {
	l := stageLab(t)
	if err := lab.Require("hping3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	cfg := testConfig("")
	cfg.SynStage = SynStageConfig{Mode: "tc", Interfaces: []string{lab.IfClient}}
	cfg.Pcap = PcapConfig{File: filepath.Join(t.TempDir(), "drops.pcap")}
	d := testDaemon(t, cfg)
	if err := lab.InNetns(l.Gateway, d.syn.attach); err != nil {
		t.Fatalf("attach: %v", err)
	}
	defer d.closeStage()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	d.startStageSampling(gctx, g)

	const n = 5
	l.Exec(ctx, l.Client, "hping3", "-S", "-F", "-c", strconv.Itoa(n), "-i", "u1000", "-p", "80", "-s", "20000", lab.ServerV4.String())
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && d.ops.sampler.Stats().Offered < n {
		time.Sleep(20 * time.Millisecond)
	}
	st, err := d.syn.current().Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Drops[header.SynFin] != n {
		t.Errorf("stage dropped %d SYN+FIN, want %d", st.Drops[header.SynFin], n)
	}
	if got := d.ops.sampler.Stats().Offered; got != n {
		t.Errorf("pcap sampler offered %d of the stage's drops, want %d", got, n)
	}
	cancel()
	if err := g.Wait(); err != nil {
		t.Errorf("sampling task: %v", err)
	}
}

func TestStageSampleClass(t *testing.T) {
	for _, tc := range []struct {
		s    synstage.Sample
		want observe.Class
	}{
		{synstage.Sample{Reason: header.SynFin}, observe.Class(header.SynFin)},
		{synstage.Sample{Reason: header.BadOption}, observe.Class(header.BadOption)},
		{synstage.Sample{Reason: header.OK, PolicyDrop: true}, observe.ClassPolicyDrop},
		{synstage.Sample{Reason: header.OK, Limited: true}, observe.ClassRateLimited},
	} {
		if got := stageSampleClass(&tc.s); got != tc.want {
			t.Errorf("stageSampleClass(%+v) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
