package daemon

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sync/errgroup"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/probe"
)

const reloadPolicy = `version: 1
services:
  - name: web
    addresses: [198.18.3.2/32]
    ports: [80]
    advertise: {mss: 1460, wscale: 7, sack: true, timestamps: false, window: WINDOW}
`

// segment builds an IPv4/TCP packet from the client (or from the server).
func segment(t *testing.T, fromServer bool, flags string, seq, ack uint32, payload string) []byte {
	t.Helper()
	c, s := net.IPv4(198, 18, 1, 2), net.IPv4(198, 18, 3, 2)
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: c, DstIP: s}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: seq, Ack: ack, Window: 500,
		SYN: strings.Contains(flags, "S"), ACK: strings.Contains(flags, "A"), PSH: strings.Contains(flags, "P")}
	if fromServer {
		ip.SrcIP, ip.DstIP = s, c
		tcp.SrcPort, tcp.DstPort = 80, 40000
	}
	if tcp.SYN {
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}}}
	}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writePolicy(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReload: a valid policy is swapped in and established flows keep being
// translated; an invalid one is refused, counted, and the old one stays.
func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, path, strings.Replace(reloadPolicy, "WINDOW", "65535", 1))
	d := testDaemon(t, testConfig(path))
	w := d.engine.NewWorker()
	now := time.Now()
	var r engine.Result
	process := func(pkt []byte) engine.Result {
		w.Process(pkt, engine.Meta{}, now, &r)
		return r
	}

	// Handshake: SYN → cookie SYN-ACK; ACK → SYN to the server; server
	// SYN-ACK → established.
	const clientISN, serverISN = 1000, 90000
	res := process(segment(t, false, "S", clientISN, 0, ""))
	if res.Event != engine.EventSynAnswered || len(res.Inject) != 1 {
		t.Fatalf("SYN: event %v, %d injected", res.Event, len(res.Inject))
	}
	synack := gopacket.NewPacket(res.Inject[0], layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP)
	if synack.Window != 65535 {
		t.Fatalf("SYN-ACK window %d, want the policy's 65535", synack.Window)
	}
	cookie := synack.Seq
	if res = process(segment(t, false, "A", clientISN+1, cookie+1, "")); res.Event != engine.EventHandshake {
		t.Fatalf("ACK: event %v", res.Event)
	}
	if res = process(segment(t, true, "SA", serverISN, clientISN+1, "")); res.Event != engine.EventServerUp {
		t.Fatalf("server SYN-ACK: event %v", res.Event)
	}
	data := func(when string) {
		t.Helper()
		res := process(segment(t, true, "PA", serverISN+1, clientISN+1, "hello"))
		if res.Event != engine.EventTranslated {
			t.Fatalf("%s: server data: event %v, want translated", when, res.Event)
		}
		got := gopacket.NewPacket(res.Packet, layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP)
		if got.Seq != cookie+1 {
			t.Fatalf("%s: translated seq %d, want %d", when, got.Seq, cookie+1)
		}
	}
	data("before reload")

	// An invalid policy is refused; the running one stays.
	writePolicy(t, path, strings.Replace(reloadPolicy, "WINDOW", "70000", 1))
	d.reload(context.Background())
	if d.reloads.failed.Load() != 1 || d.reloads.ok.Load() != 0 {
		t.Fatalf("after a bad reload: ok %d failed %d, want 0 1", d.reloads.ok.Load(), d.reloads.failed.Load())
	}
	if got := d.engine.Policy().Services[0].Advertise.Window; got != 65535 {
		t.Fatalf("after a bad reload the window is %d, want the old 65535", got)
	}
	data("after the refused reload")

	// A valid one is swapped in; the flow survives.
	writePolicy(t, path, strings.Replace(reloadPolicy, "WINDOW", "30000", 1))
	d.reload(context.Background())
	if d.reloads.ok.Load() != 1 || d.reloads.failed.Load() != 1 {
		t.Fatalf("after a good reload: ok %d failed %d, want 1 1", d.reloads.ok.Load(), d.reloads.failed.Load())
	}
	data("after the reload")
	res = process(segment(t, false, "S", 5000, 0, ""))
	synack = gopacket.NewPacket(res.Inject[0], layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP)
	if synack.Window != 30000 {
		t.Fatalf("SYN-ACK window after reload %d, want 30000", synack.Window)
	}
	if doc := d.snapshot(); doc.Reloads["failed"] != 1 || doc.Reloads["ok"] != 1 {
		t.Fatalf("stats reloads = %v, want ok 1 failed 1", doc.Reloads)
	}
}

// TestReloadKeepsQueues: a reloaded policy that names other queues or
// another fail mode gets rules for the queues the process has bound; the
// change waits for a restart.
func TestReloadKeepsQueues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, path, strings.Replace(reloadPolicy, "WINDOW", "65535", 1)+"queue: {numbers: \"2-3\", fail: closed}\n")
	d := testDaemon(t, testConfig(path))
	writePolicy(t, path, strings.Replace(strings.Replace(reloadPolicy, "WINDOW", "65535", 1), "198.18.3.2/32", "198.18.3.0/24", 1)+
		"queue: {numbers: \"6-9\", fail: open}\n")
	p, err := LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.rulesFor(p)
	if err != nil {
		t.Fatalf("rulesFor: %v", err)
	}
	if r.QueueFirst != 2 || r.QueueLast != 3 || r.FailOpen {
		t.Errorf("rules after reload: queues %d-%d, fail open %v; want the bound 2-3, fail closed", r.QueueFirst, r.QueueLast, r.FailOpen)
	}
	if len(r.Services) != 1 || r.Services[0].Prefix.String() != "198.18.3.0/24" {
		t.Errorf("rules after reload guard %v, want the new policy's 198.18.3.0/24", r.Services)
	}
}

// TestSlowReloadDoesNotStall: a reload whose backend probe is slow
// (advertise.discover waits up to 2 s per probe) delays neither flow
// expiry nor the stats file: they run on their own task. The reload
// completes once the probe answers.
func TestSlowReloadDoesNotStall(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	discoverPolicy := strings.Replace(strings.Replace(reloadPolicy, "WINDOW", "65535", 1), "advertise: {", "advertise: {discover: true, ", 1)
	writePolicy(t, path, discoverPolicy)
	var armed atomic.Bool
	entered, release := make(chan struct{}, 1), make(chan struct{})
	slow := func(ctx context.Context, target netip.AddrPort, _ uint32, _ time.Duration) (probe.Result, error) {
		if armed.Load() {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return probe.Result{}, ctx.Err()
			}
		}
		return probe.Result{MSS: 1400, WScale: 7, SACK: true, Window: 65535}, nil
	}
	cfg := testConfig(path)
	cfg.StatsFile = filepath.Join(dir, "stats.json")
	d, err := newDaemon(cfg, slow)
	if err != nil {
		t.Fatalf("newDaemon: %v", err)
	}
	if got := d.engine.Policy().Services[0].Advertise.MSS4; got != 1400 {
		t.Fatalf("MSS after the start's discover = %d, want the probed 1400", got)
	}
	// One established flow, idle: the housekeeping clock runs an hour
	// ahead, so its first tick expires it.
	w := d.engine.NewWorker()
	var r engine.Result
	w.Process(segment(t, false, "S", 100, 0, ""), engine.Meta{}, time.Now(), &r)
	cookie := gopacket.NewPacket(r.Inject[0], layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP).Seq
	w.Process(segment(t, false, "A", 101, cookie+1, ""), engine.Meta{}, time.Now(), &r)
	w.Process(segment(t, true, "SA", 5000, 101, ""), engine.Meta{}, time.Now(), &r)
	if r.Event != engine.EventServerUp {
		t.Fatalf("server SYN-ACK: %v, want server_up", r.Event)
	}
	d.now = func() time.Time { return time.Now().Add(time.Hour) }
	d.period = 20 * time.Millisecond
	d.started = time.Now()

	reqs := make(chan os.Signal, 1)
	d.cfg.Reload = reqs
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	d.startTasks(ctx, &g, cancel) // the tasks Run starts once ready
	defer func() {
		cancel()
		g.Wait()
	}()

	armed.Store(true)
	reqs <- syscall.SIGHUP
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the reload did not probe")
	}
	// While the probe hangs: the stats file is rewritten again and again,
	// and shows the flow expired.
	var stamps []time.Time
	deadline := time.Now().Add(5 * time.Second)
	var doc statsDoc
	for len(stamps) < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		b, err := os.ReadFile(cfg.StatsFile)
		if err != nil {
			continue
		}
		doc = statsDoc{}
		if json.Unmarshal(b, &doc) != nil {
			continue
		}
		if len(stamps) == 0 || !doc.Time.Equal(stamps[len(stamps)-1]) {
			stamps = append(stamps, doc.Time)
		}
	}
	if len(stamps) < 5 {
		t.Fatalf("stats file written %d times in 5 s while a reload's probe hung, want 5 or more (housekeeping stalled)", len(stamps))
	}
	if doc.Engine["flows_expired"] != 1 || doc.Engine["flows_active"] != 0 {
		t.Errorf("while a reload's probe hung: flows_expired %d, active %d; want 1, 0 (expiry stalled)", doc.Engine["flows_expired"], doc.Engine["flows_active"])
	}
	if n := d.reloads.ok.Load() + d.reloads.failed.Load(); n != 0 {
		t.Fatalf("reloads finished %d while the probe hung, want 0", n)
	}
	close(release)
	for deadline := time.Now().Add(5 * time.Second); d.reloads.ok.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if d.reloads.ok.Load() != 1 {
		t.Errorf("reloads ok = %d after the probe answered, want 1", d.reloads.ok.Load())
	}
}
