package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/queue"
)

// metricsDaemon builds a daemon from reloadPolicy the way synwall run does,
// without binding queues, and returns it with the policy file's path.
func metricsDaemon(t *testing.T) (*Daemon, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, path, strings.Replace(reloadPolicy, "WINDOW", "65535", 1))
	cfg := testConfig(path)
	cfg.Traffic.Queues = &QueueRange{3, 4}
	cfg.Registry = newRegistry()
	return testDaemon(t, cfg), path
}

// newRegistry is the registry synwall run gives the daemon: the Go
// runtime and process collectors; the daemon adds its own.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// flagged builds a client-to-server IPv4/TCP segment with any flags.
func flagged(t *testing.T, tcp layers.TCP) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IPv4(198, 18, 1, 2), DstIP: net.IPv4(198, 18, 3, 2)}
	if tcp.SrcPort == 0 {
		tcp.SrcPort = 40001
	}
	tcp.DstPort, tcp.Window = 80, 500
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, &tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// series flattens what g gathers into "name{k=v,...}" → value.
func series(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			key := mf.GetName()
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			default:
				out[key] = -1 // present; the value is not compared
			}
		}
	}
	return out
}

// pick returns the entries of s named in keys; absent ones are left out.
func pick(s map[string]float64, keys ...string) map[string]float64 {
	out := map[string]float64{}
	for _, k := range keys {
		if v, ok := s[k]; ok {
			out[k] = v
		}
	}
	return out
}

// fakeQueue is a queue.Queue with fixed counters.
type fakeQueue struct{ stats []queue.Stats }

var _ queue.Queue = fakeQueue{}

func (fakeQueue) Run(context.Context) error { return nil }
func (f fakeQueue) Stats() []queue.Stats    { return f.stats }
func (fakeQueue) Ready() <-chan struct{}    { return nil }

// TestMetricsCount: packets pushed through the engine, a refused reload,
// the queue counters and the kernel's drop counters show up in a scrape.
func TestMetricsCount(t *testing.T) {
	d, path := metricsDaemon(t)
	c := newCollector(d)
	// The kernel file lists a foreign queue (7) that must not be reported.
	const proc = "    3  1234     2 2 65535     5    11       40  1\n" +
		"    4  1235     0 2 65535     0     1       10  1\n" +
		"    7  9999     9 2 65535    99    99       99  1\n"
	c.kernelStats = func() ([]queue.KernelQueueStats, error) {
		return queue.ParseKernelQueueStats(strings.NewReader(proc))
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatalf("Register: %v", err)
	}

	watch := []string{
		"synwall_packets_total{event=syn_answered}",
		"synwall_packets_total{event=handshake}",
		"synwall_packets_by_direction_total{direction=to_server,verdict=accept}",
		"synwall_packets_by_direction_total{direction=to_server,verdict=drop}",
		"synwall_packets_by_direction_total{direction=none,verdict=drop}",
		"synwall_invalid_packets_total{reason=syn_fin}",
		"synwall_invalid_packets_total{reason=fin_no_ack}",
		"synwall_invalid_packets_total{reason=null_flags}",
		"synwall_invalid_packets_total{reason=truncated}",
		"synwall_invalid_packets_total{reason=bad_total_length}",
		"synwall_syncache_total{result=hit}",
		"synwall_syncache_total{result=miss}",
		"synwall_flows{state=active}",
		"synwall_flows_total{event=created}",
		"synwall_policy_reloads_total{result=ok}",
		"synwall_policy_reloads_total{result=failed}",
		"synwall_policy_services",
	}
	before := pick(series(t, reg), watch...)
	want := map[string]float64{}
	for _, k := range watch {
		want[k] = 0
	}
	want["synwall_policy_services"] = 1
	if diff := cmp.Diff(want, before); diff != "" {
		t.Fatalf("before any packet (-want +got):\n%s", diff)
	}

	w := d.engine.NewWorker()
	now := time.Now()
	var r engine.Result
	process := func(pkt []byte) engine.Result {
		w.Process(pkt, engine.Meta{}, now, &r)
		return r
	}
	res := process(segment(t, false, "S", 1000, 0, ""))
	if res.Event != engine.EventSynAnswered || len(res.Inject) != 1 {
		t.Fatalf("SYN: event %v, %d injected", res.Event, len(res.Inject))
	}
	cookie := gopacket.NewPacket(res.Inject[0], layers.LayerTypeIPv4, gopacket.Default).
		Layer(layers.LayerTypeTCP).(*layers.TCP).Seq
	if res = process(segment(t, false, "A", 1001, cookie+1, "")); res.Event != engine.EventHandshake {
		t.Fatalf("ACK: event %v, want handshake", res.Event)
	}
	process(flagged(t, layers.TCP{SYN: true, FIN: true, Seq: 7}))
	process(flagged(t, layers.TCP{SYN: true, FIN: true, Seq: 8}))
	process(flagged(t, layers.TCP{FIN: true, Seq: 9}))
	process(flagged(t, layers.TCP{Seq: 10}))
	syn := segment(t, false, "S", 3000, 0, "")
	process(syn[:30]) // cut inside the TCP header: shorter than its total length
	process(syn[:10]) // not even an IPv4 header

	writePolicy(t, path, "version: 1\nservices: [}\n")
	d.reload(context.Background())

	after := pick(series(t, reg), watch...)
	want = map[string]float64{
		"synwall_packets_total{event=syn_answered}": 1,
		"synwall_packets_total{event=handshake}":    1,
		// The SYN is answered and dropped, the ACK passed on as the SYN to
		// the server; the bad packets are dropped before the direction is
		// known.
		"synwall_packets_by_direction_total{direction=to_server,verdict=drop}":   1,
		"synwall_packets_by_direction_total{direction=to_server,verdict=accept}": 1,
		"synwall_packets_by_direction_total{direction=none,verdict=drop}":        6,
		"synwall_invalid_packets_total{reason=syn_fin}":                          2,
		"synwall_invalid_packets_total{reason=fin_no_ack}":                       1,
		"synwall_invalid_packets_total{reason=null_flags}":                       1,
		"synwall_invalid_packets_total{reason=truncated}":                        1,
		"synwall_invalid_packets_total{reason=bad_total_length}":                 1,
		// The ACK came straight after the SYN: the cache held its entry.
		"synwall_syncache_total{result=hit}":          1,
		"synwall_syncache_total{result=miss}":         0,
		"synwall_flows{state=active}":                 1,
		"synwall_flows_total{event=created}":          1,
		"synwall_policy_reloads_total{result=ok}":     0,
		"synwall_policy_reloads_total{result=failed}": 1,
		"synwall_policy_services":                     1,
	}
	if diff := cmp.Diff(want, after); diff != "" {
		t.Errorf("after the packets and a refused reload (-want +got):\n%s", diff)
	}

	// Every event and every reason is exported, zero or not, so rate()
	// works from the first scrape; so are the engine's counters of resets,
	// evictions by kind and refused handshakes.
	s := series(t, reg)
	for _, k := range []string{
		"synwall_resets_total{result=out_of_window}", "synwall_resets_total{result=in_window}", "synwall_resets_total{result=exact}",
		"synwall_flows_evicted_total{kind=closing}", "synwall_flows_evicted_total{kind=handshake}",
		"synwall_flows_evicted_total{kind=established}", "synwall_flows_evicted_total{kind=outbound}",
		"synwall_handshakes_refused_total{reason=rate_limit}", "synwall_handshakes_refused_total{reason=flow_quota}",
		"synwall_syncache_total{result=full}", "synwall_server_resyncs_total", "synwall_outbound_flows_total",
	} {
		if v, ok := s[k]; !ok || v != 0 {
			t.Errorf("%s = %v (exported %v), want 0", k, v, ok)
		}
	}
	for e := engine.Event(1); e < engine.NumEvents; e++ {
		if _, ok := s["synwall_packets_total{event="+e.String()+"}"]; !ok {
			t.Errorf("no synwall_packets_total for event %s", e)
		}
	}

	// Queue and kernel counters appear once the daemon has queues.
	d.queue = fakeQueue{stats: []queue.Stats{
		{Queue: 3, Packets: 10, Accepted: 4, AcceptedAltered: 3, Dropped: 3, Batches: 2, ENOBUFS: 1},
		{Queue: 4, Packets: 1, Dropped: 1, Truncated: 1},
	}}
	got := pick(series(t, reg),
		"synwall_queue_received_packets_total{queue=3}",
		"synwall_queue_packets_total{queue=3,verdict=accept}",
		"synwall_queue_packets_total{queue=3,verdict=accept_altered}",
		"synwall_queue_packets_total{queue=3,verdict=drop}",
		"synwall_queue_verdict_messages_total{kind=batch,queue=3}",
		"synwall_queue_errors_total{kind=enobufs,queue=3}",
		"synwall_queue_errors_total{kind=truncated,queue=4}",
		"synwall_queue_packets_total{queue=4,verdict=drop}",
		"synwall_queue_kernel_dropped_total{queue=3,reason=queue_full}",
		"synwall_queue_kernel_dropped_total{queue=3,reason=socket_full}",
		"synwall_queue_kernel_dropped_total{queue=4,reason=socket_full}",
		"synwall_queue_kernel_waiting{queue=3}",
		"synwall_queue_kernel_dropped_total{queue=7,reason=queue_full}",
		"synwall_queue_kernel_waiting{queue=7}",
	)
	want = map[string]float64{
		"synwall_queue_received_packets_total{queue=3}":                  10,
		"synwall_queue_packets_total{queue=3,verdict=accept}":            4,
		"synwall_queue_packets_total{queue=3,verdict=accept_altered}":    3,
		"synwall_queue_packets_total{queue=3,verdict=drop}":              3,
		"synwall_queue_verdict_messages_total{kind=batch,queue=3}":       2,
		"synwall_queue_errors_total{kind=enobufs,queue=3}":               1,
		"synwall_queue_errors_total{kind=truncated,queue=4}":             1,
		"synwall_queue_packets_total{queue=4,verdict=drop}":              1,
		"synwall_queue_kernel_dropped_total{queue=3,reason=queue_full}":  5,
		"synwall_queue_kernel_dropped_total{queue=3,reason=socket_full}": 11,
		"synwall_queue_kernel_dropped_total{queue=4,reason=socket_full}": 1,
		"synwall_queue_kernel_waiting{queue=3}":                          2,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("queue series (-want +got):\n%s", diff)
	}

	// A kernel file that cannot be read (no queue bound yet) costs the
	// kernel series only.
	c.kernelStats = func() ([]queue.KernelQueueStats, error) { return nil, errors.New("no such file") }
	s = series(t, reg)
	if _, ok := s["synwall_queue_kernel_waiting{queue=3}"]; ok {
		t.Errorf("kernel series reported without the kernel file")
	}
	if _, ok := s["synwall_queue_received_packets_total{queue=3}"]; !ok {
		t.Errorf("queue series lost with the kernel file")
	}
}

// TestMetricsConcurrentScrape scrapes while a worker handles SYNs from
// many ports: counters never go back, and the last scrape after the worker
// stopped shows every SYN.
func TestMetricsConcurrentScrape(t *testing.T) {
	d, _ := metricsDaemon(t)
	reg := d.cfg.Registry
	const n = 2000
	pkts := make([][]byte, n)
	for i := range pkts {
		pkts[i] = flagged(t, layers.TCP{SYN: true, SrcPort: layers.TCPPort(20000 + i), Seq: uint32(i)})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := d.engine.NewWorker()
		var r engine.Result
		now := time.Now()
		for _, p := range pkts {
			w.Process(p, engine.Meta{}, now, &r)
		}
	}()
	const key = "synwall_packets_total{event=syn_answered}"
	last := 0.0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		v := series(t, reg)[key]
		if v < last {
			t.Fatalf("%s went back from %v to %v", key, last, v)
		}
		last = v
	}
	if v := series(t, reg)[key]; v != n {
		t.Errorf("%s = %v after %d SYNs from distinct ports, want %d", key, v, n, n)
	}
}

// BenchmarkScrape measures one Gather of the daemon's registry (the Go
// runtime and process collectors included).
func BenchmarkScrape(b *testing.B) {
	path := filepath.Join(b.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(reloadPolicy, "WINDOW", "65535", 1)), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg := testConfig(path)
	cfg.Registry = newRegistry()
	d := testDaemon(b, cfg)
	for _, name := range []string{"daemon", "synwall-only"} {
		var g prometheus.Gatherer = d.cfg.Registry
		if name == "synwall-only" {
			r := prometheus.NewRegistry()
			r.MustRegister(newCollector(d))
			g = r
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			series := 0
			for b.Loop() {
				mfs, err := g.Gather()
				if err != nil {
					b.Fatal(err)
				}
				series = 0
				for _, mf := range mfs {
					series += len(mf.GetMetric())
				}
			}
			b.ReportMetric(float64(series), "series")
		})
	}
}

// TestMetricsInjector: the injector's counters are exported once it exists.
func TestMetricsInjector(t *testing.T) {
	d, _ := metricsDaemon(t)
	inj, err := queue.NewRawInjector(queue.InjectorConfig{Mark: 0x5359})
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		t.Skipf("raw sockets need CAP_NET_RAW: %v", err)
	}
	if err != nil {
		t.Fatalf("NewRawInjector: %v", err)
	}
	defer inj.Close()
	reg := d.cfg.Registry
	if _, ok := series(t, reg)["synwall_inject_total{result=sent}"]; ok {
		t.Fatalf("synwall_inject_total reported before the injector exists")
	}
	d.inj = inj
	got := pick(series(t, reg), "synwall_inject_total{result=sent}", "synwall_inject_total{result=error}", "synwall_inject_calls_total")
	want := map[string]float64{"synwall_inject_total{result=sent}": 0, "synwall_inject_total{result=error}": 0, "synwall_inject_calls_total": 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("injector series (-want +got):\n%s", diff)
	}
}

// TestServeMetrics scrapes /metrics over HTTP on loopback and stops the
// server with the context.
func TestServeMetrics(t *testing.T) {
	d, _ := metricsDaemon(t)
	d.started = time.Unix(1700000000, 0)
	reg := d.cfg.Registry
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serveMetricsOn(ctx, ln, reg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	w := d.engine.NewWorker()
	var r engine.Result
	w.Process(segment(t, false, "S", 1000, 0, ""), engine.Meta{}, time.Now(), &r)

	url := "http://" + ln.Addr().String() + "/metrics"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, %v", url, resp.StatusCode, err)
	}
	for _, line := range []string{
		`synwall_packets_total{event="syn_answered"} 1`,
		`synwall_invalid_packets_total{reason="syn_fin"} 0`,
		`synwall_policy_reloads_total{result="failed"} 0`,
		`synwall_start_time_seconds 1.7e+09`,
		`synwall_build_info{version="test"} 1`,
		"# TYPE synwall_packets_total counter",
		"# TYPE synwall_flows gauge",
		"# TYPE go_goroutines gauge",
		"# TYPE process_open_fds gauge",
	} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("GET /metrics: no line %q", line)
		}
	}

	resp, err = http.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics = %d, want %d", resp.StatusCode, http.StatusMethodNotAllowed)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serveMetricsOn after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serveMetricsOn did not return after cancel")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Errorf("metrics port still accepts connections after cancel")
	}
}

func TestServeMetricsAddr(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := serveMetrics(ctx, "", reg, log); err != nil {
		t.Errorf(`serveMetrics("") = %v, want nil (off)`, err)
	}
	for _, addr := range []string{"127.0.0.1:99999", "no-port"} {
		err := serveMetrics(ctx, addr, reg, log)
		if err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
			t.Errorf("serveMetrics(%q) = %v, want an error naming --metrics-addr", addr, err)
		}
	}
	// A non-loopback address is served, with a warning.
	var logs strings.Builder
	if err := serveMetrics(ctx, "0.0.0.0:0", reg, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatalf(`serveMetrics("0.0.0.0:0") = %v`, err)
	}
	if !strings.Contains(logs.String(), "non-loopback") {
		t.Errorf("serveMetrics on 0.0.0.0 logged %q, want a non-loopback warning", logs.String())
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9474", true}, {"[::1]:9474", true}, {"0.0.0.0:9474", false}, {"198.18.0.1:9474", false},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := loopback(a); got != tc.want {
			t.Errorf("loopback(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// TestOpsMetrics: what the observer keeps shows up in a scrape.
func TestOpsMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drops.pcapng")
	d := opsDaemon(t, PcapConfig{File: path, Rate: 10, MaxBytes: 1 << 20, Files: 2})
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
