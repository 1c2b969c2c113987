package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/queue"
)

// opsDaemon is a daemon with its observer, fed a SYN flood from
// 198.18.1.0/24 and SYN+FIN packets, as synwall run would see them.
func opsDaemon(t *testing.T, f opsFlags) *daemon {
	t.Helper()
	d, _ := metricsDaemon(t)
	d.flags.ops = f
	var err error
	if d.ops, err = newOps(&d.flags.ops, d.engine); err != nil {
		t.Fatalf("newOps: %v", err)
	}
	d.started = time.Now().Add(-time.Minute)
	p := d.ops.processor(d.engine)
	var r engine.Result
	for i := range 200 {
		syn := flagged(t, layers.TCP{SrcPort: layers.TCPPort(20000 + i), SYN: true, Seq: 7})
		p.Process(syn, engine.Meta{}, time.Now(), &r)
		if r.Event != engine.EventSynAnswered {
			t.Fatalf("SYN: event %v, want syn_answered", r.Event)
		}
	}
	for i := range 30 {
		p.Process(flagged(t, layers.TCP{SrcPort: layers.TCPPort(30000 + i), SYN: true, FIN: true}), engine.Meta{}, time.Now(), &r)
	}
	return d
}

func TestRates(t *testing.T) {
	var r rates
	if _, ok := r.over(1); ok {
		t.Fatal("rates.over with no samples = ok, want none")
	}
	t0 := time.Unix(1000, 0)
	for i := range 15 {
		var s gateway.Stats
		s.Events[engine.EventSynAnswered] = uint64(i * 100)
		s.Events[engine.EventHandshake] = uint64(i * i)
		s.Events[engine.EventBadCookie] = 5
		r.add(t0.Add(time.Duration(i)*time.Second), s)
	}
	one, _ := r.over(1)
	ten, _ := r.over(10)
	if one.Seconds != 1 || one.Answered != 100 || one.Handshakes != 27 || one.Packets != 127 {
		t.Errorf("rate over 1s = %+v, want 100 SYNs, 27 handshakes (14²-13²), 127 packets per second", one)
	}
	if ten.Seconds != 10 || ten.Answered != 100 || ten.Handshakes != 18 {
		t.Errorf("rate over 10s = %+v, want 100 SYNs and 18 handshakes ((14²-4²)/10) per second", ten)
	}
	if len(one.Drops) != 0 {
		t.Errorf("drops = %v, want none (the bad-cookie counter did not move)", one.Drops)
	}
}

// TestControlSocket: the status over the socket names the flood's prefix
// and service; the socket is 0660 in a 0750 directory, a second daemon
// cannot take it, a stale one is replaced, and it is gone after the stop.
func TestControlSocket(t *testing.T) {
	d := opsDaemon(t, opsFlags{logSummary: 10 * time.Second})
	sock := filepath.Join(t.TempDir(), "run", "synwall", "control.sock")
	ln, err := listenControl(sock)
	if err != nil {
		t.Fatalf("listenControl: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveControl(ctx, ln, d) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveControl: %v", err)
		}
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("socket after stop: %v, want gone", err)
		}
	}()
	for path, want := range map[string]os.FileMode{sock: 0o660, filepath.Dir(sock): 0o750} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	if _, err := listenControl(sock); err == nil || !strings.Contains(err.Error(), "another synwall") {
		t.Errorf("second listenControl = %v, want another synwall is serving it", err)
	}

	doc, err := fetchStatus(context.Background(), sock)
	if err != nil {
		t.Fatalf("fetchStatus: %v", err)
	}
	if doc.Version != 1 || doc.Mode.Queues != "3-4" || doc.Mode.Backend != "raw" || doc.Mode.Services != 1 || doc.Uptime < 59 {
		t.Errorf("status mode = %+v (version %d, uptime %v), want raw, queues 3-4, 1 service, up a minute", doc.Mode, doc.Version, doc.Uptime)
	}
	w := doc.Window
	if w.Answered.Count != 200 || len(w.Top.PrefixesAnswered) == 0 || w.Top.PrefixesAnswered[0].Prefix != netip.MustParsePrefix("198.18.1.0/24") {
		t.Errorf("window = %+v, want 200 SYNs answered from 198.18.1.0/24", w)
	}
	if len(w.Top.ServicesAnswered) == 0 || w.Top.ServicesAnswered[0].Service != netip.MustParseAddrPort("198.18.3.2:80") {
		t.Errorf("top services = %+v, want 198.18.3.2:80", w.Top.ServicesAnswered)
	}
	if len(w.Classes) != 1 || w.Classes[0].Class != "syn_fin" || w.Classes[0].Count != 30 || w.Classes[0].Sources.Value != 1 {
		t.Errorf("drops = %+v, want syn_fin 30 from 1 source", w.Classes)
	}
	if doc.Capacity.SynCache.Used != 200 || doc.Capacity.SynCache.Capacity == 0 || doc.Capacity.Flows.Capacity == 0 {
		t.Errorf("capacity = %+v, want 200 cache entries used", doc.Capacity)
	}

	// synwall status, as JSON and as the human view.
	var out, errb bytes.Buffer
	if code := cmdStatus(context.Background(), []string{"--socket", sock, "--json"}, &out, &errb); code != exitOK {
		t.Fatalf("status --json = %d: %s", code, errb.String())
	}
	var back statusDoc
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Window.Answered.Count != 200 {
		t.Errorf("status --json output does not decode to the document (%v): %s", err, out.String())
	}
	out.Reset()
	if code := cmdStatus(context.Background(), []string{"--socket", sock}, &out, &errb); code != exitOK {
		t.Fatalf("status = %d: %s", code, errb.String())
	}
	for _, want := range []string{"backend raw, queues 3-4, fail closed", "198.18.3.2:80", "198.18.1.0/24", "syn_fin", "SYN cache 200/"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
	// --watch redraws until interrupted.
	wctx, wcancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer wcancel()
	out.Reset()
	if code := cmdStatus(wctx, []string{"--socket", sock, "--watch", "100ms"}, &out, &errb); code != exitOK {
		t.Fatalf("status --watch = %d: %s", code, errb.String())
	}
	if n := strings.Count(out.String(), "\033[H\033[2J"); n < 2 {
		t.Errorf("--watch drew %d times in 350ms at 100ms, want several", n)
	}
}

func TestControlSocketStale(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // a socket file nobody serves: a daemon that died
	ln, err = listenControl(sock)
	if err != nil {
		t.Fatalf("listenControl over a stale socket: %v", err)
	}
	ln.Close()
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenControl(sock); err == nil {
		t.Error("listenControl over a regular file = nil error, want one")
	}
}

func TestStatusNotRunning(t *testing.T) {
	var out, errb bytes.Buffer
	sock := filepath.Join(t.TempDir(), "none.sock")
	if code := cmdStatus(context.Background(), []string{"--socket", sock}, &out, &errb); code != exitSetup {
		t.Errorf("status without a daemon = %d, want %d", code, exitSetup)
	}
	if !strings.Contains(errb.String(), "not running") {
		t.Errorf("stderr = %q, want it to say the daemon is not running", errb.String())
	}
	for _, args := range [][]string{{"--watch", "x"}, {"extra"}, {"--watch=10ms"}} {
		if code := cmdStatus(context.Background(), args, &out, &errb); code != exitUsage {
			t.Errorf("status %v = %d, want %d", args, code, exitUsage)
		}
	}
	if code := cmdStatus(context.Background(), []string{"-h"}, &out, &errb); code != exitOK {
		t.Errorf("status -h = %d, want 0", code)
	}
}

// TestOpsMetrics: what the observer keeps shows up in a scrape.
func TestOpsMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drops.pcapng")
	d := opsDaemon(t, opsFlags{pcapFile: path, pcapRate: 10, pcapMaxBytes: 1 << 20, pcapFiles: 2})
	c := newCollector(d)
	c.kernelStats = func() ([]queue.KernelQueueStats, error) { return nil, os.ErrNotExist }
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatalf("Register: %v", err)
	}
	s := series(t, reg)
	for k, want := range map[string]float64{
		"synwall_cookies_total{result=valid}":          0,
		"synwall_cookies_total{result=invalid}":        0,
		"synwall_rate_limited_total{service=web}":      0,
		"synwall_rate_limited_total{service=other}":    0,
		"synwall_drop_sources{reason=syn_fin}":         1,
		"synwall_pcap_samples_total{result=limited}":   20, // 30 offered, a burst of 10
		"synwall_pcap_samples_total{result=ring_full}": 0,
		"synwall_packet_processing_seconds":            -1, // a histogram: present
	} {
		if got, ok := s[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
}

// TestStatusDuringReload: the status reports the queues the daemon bound,
// and reads nothing a reload rewrites meanwhile (d.rules is replaced by
// the reload goroutine while the control socket serves; go test -race).
func TestStatusDuringReload(t *testing.T) {
	d := opsDaemon(t, opsFlags{logSummary: 10 * time.Second})
	done := make(chan statusDoc)
	go func() {
		var s statusDoc
		for range 50 {
			s = d.status(time.Now())
		}
		done <- s
	}()
	for i := range 50 {
		r := d.rules // as reload does with rules for other queues
		r.QueueFirst, r.QueueLast = uint16(7+i), uint16(8+i)
		d.rules = r
	}
	if s := <-done; s.Mode.Queues != "3-4" {
		t.Errorf("status queues = %q, want the bound 3-4", s.Mode.Queues)
	}
}
