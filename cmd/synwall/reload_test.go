package main

import (
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/synwall/synwall/internal/engine"
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
	f := &runFlags{policy: path, hook: "forward", backend: "raw", mark: 0x5359}
	d, err := newDaemon(f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("newDaemon: %v", err)
	}
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
	d.reload()
	if d.reloads.failed.Load() != 1 || d.reloads.ok.Load() != 0 {
		t.Fatalf("after a bad reload: ok %d failed %d, want 0 1", d.reloads.ok.Load(), d.reloads.failed.Load())
	}
	if got := d.engine.Policy().Services[0].Advertise.Window; got != 65535 {
		t.Fatalf("after a bad reload the window is %d, want the old 65535", got)
	}
	data("after the refused reload")

	// A valid one is swapped in; the flow survives.
	writePolicy(t, path, strings.Replace(reloadPolicy, "WINDOW", "30000", 1))
	d.reload()
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
	f := &runFlags{policy: path, hook: "forward", backend: "raw", mark: 0x5359}
	d, err := newDaemon(f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("newDaemon: %v", err)
	}
	writePolicy(t, path, strings.Replace(strings.Replace(reloadPolicy, "WINDOW", "65535", 1), "198.18.3.2/32", "198.18.3.0/24", 1)+
		"queue: {numbers: \"6-9\", fail: open}\n")
	p, err := loadPolicy(path)
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

// TestDaemonPID: a pid file naming a process that is not synwall (a stale
// file whose PID was reused) or no process at all is refused; nothing is
// signalled.
func TestDaemonPID(t *testing.T) {
	dir := t.TempDir()
	write := func(pid int) string {
		path := filepath.Join(dir, "pid")
		writePolicy(t, path, strconv.Itoa(pid)+"\n")
		return path
	}
	// PID 1 is refused outright; the test binary (synwall.test) passes.
	if _, err := daemonPID(write(1)); err == nil {
		t.Errorf("daemonPID(pid 1) = nil error, want refused")
	}
	if pid, err := daemonPID(write(os.Getpid())); err != nil || pid != os.Getpid() {
		t.Errorf("daemonPID(own pid) = %d, %v; want %d (a synwall process)", pid, err, os.Getpid())
	}
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Skipf("no sleep(1): %v", err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	if _, err := daemonPID(write(sleep.Process.Pid)); err == nil || !strings.Contains(err.Error(), "not synwall") {
		t.Errorf("daemonPID(a sleep process) = %v, want refused as not synwall", err)
	}
}
