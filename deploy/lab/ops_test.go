package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// scrape reads synwall's /metrics from inside the gateway namespace and
// returns "name{labels}" → value (labels as Prometheus prints them).
func scrape(t *testing.T, l *Lab, addr string) map[string]float64 {
	t.Helper()
	c := &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return DialIn(ctx, l.Gateway, network, addr)
		}},
		Timeout: 10 * time.Second,
	}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s in %s: %v", addr, l.Gateway, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOperatorVisibility: during a SYN flood and a SYN+FIN flood from the
// attacker, synwall's metrics count what hping3 sent, synwall status names
// the attacker's prefix and the attacked service, the summary lines name
// the drop reason, and the pcap sample holds the attacker's packets,
// readable by pcapgo and tcpdump.
func TestOperatorVisibility(t *testing.T) {
	needTools(t, "hping3", "timeout")
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "control.sock")
	pcap := filepath.Join(dir, "pcap", "drops.pcapng")
	const metricsAddr = "127.0.0.1:9474" // in the gateway's own namespace
	sw := startSynwall(t, l, SynwallConfig{Args: []string{
		"--metrics-addr", metricsAddr, "--control-socket", sock, "--pcap-file", pcap,
		"--pcap-rate", "100", "--log-summary", "1s",
	}})
	before := scrape(t, l, metricsAddr)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	syn, err := l.Flood(ctx, Flood{Target: ServerV4, Port: HTTPPort, Flags: []string{"-S"}, Count: 10_000, Interval: "u100", Duration: 8 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := l.Flood(ctx, Flood{Target: ServerV4, Port: HTTPPort, Flags: []string{"-S", "-F"}, Count: 3_000, Interval: "u100", Duration: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hping3 sent %d SYNs (%.0f/s) and %d SYN+FIN", syn.Sent, syn.PPS(), bad.Sent)
	time.Sleep(1500 * time.Millisecond) // one summary window and one rates tick
	after := scrape(t, l, metricsAddr)
	delta := func(k string) float64 {
		v, ok := after[k]
		if !ok {
			t.Errorf("metric %s missing", k)
		}
		return v - before[k]
	}
	// Every SYN is answered or refused by the default policy's per-source
	// limit (one attacker address). The kernel may drop a few when the
	// queue is full (counted too); the machine is shared, so allow 5%.
	answered, limited := delta(`synwall_packets_total{event="syn_answered"}`), delta(`synwall_packets_total{event="syn_limited"}`)
	if got := answered + limited; got < 0.95*float64(syn.Sent) || got > float64(syn.Sent) || answered < 1000 {
		t.Errorf("SYNs answered %v + rate-limited %v, want about %d (hping3's count), at least the burst answered", answered, limited, syn.Sent)
	}
	if got := delta(`synwall_rate_limited_total{service="lab"}`); got != limited {
		t.Errorf("rate-limited SYNs of service lab moved by %v, want %v (all of them)", got, limited)
	}
	if got := delta(`synwall_invalid_packets_total{reason="syn_fin"}`); got < 0.95*float64(bad.Sent) || got > float64(bad.Sent) {
		t.Errorf("invalid syn_fin moved by %v, want about %d", got, bad.Sent)
	}
	// Answered and rate-limited SYNs are both dropped after the engine saw
	// they go to the server; SYN+FIN is dropped before it looks.
	if got := delta(`synwall_packets_by_direction_total{direction="to_server",verdict="drop"}`); got < answered+limited {
		t.Errorf("to_server drops moved by %v, want at least the %v SYNs answered or limited", got, answered+limited)
	}
	if got := delta(`synwall_packets_by_direction_total{direction="none",verdict="drop"}`); got < 0.95*float64(bad.Sent) {
		t.Errorf("drops of no known direction moved by %v, want at least about %d (the SYN+FIN flood)", got, bad.Sent)
	}
	if got := delta(`synwall_invalid_packets_total{reason="null_flags"}`); got != 0 {
		t.Errorf("invalid null_flags moved by %v, want 0", got)
	}
	if got := delta(`synwall_pcap_samples_total{result="written"}`); got < 50 {
		t.Errorf("pcap samples written moved by %v, want at least the burst of 100 (some 50)", got)
	}
	for _, k := range []string{`synwall_packet_processing_seconds_count`, `synwall_cookies_total{result="valid"}`,
		`synwall_queue_errors_total{kind="enobufs",queue="0"}`, `synwall_inject_total{result="error"}`,
		`synwall_policy_reloads_total{result="failed"}`, `synwall_syncache_total{result="eviction"}`} {
		if _, ok := after[k]; !ok {
			t.Errorf("metric %s missing", k)
		}
	}
	if after[`synwall_packet_processing_seconds_count`] < float64(syn.Sent)/64/2 {
		t.Errorf("processing time sampled %v times, want about 1 in 64 of %d", after[`synwall_packet_processing_seconds_count`], syn.Sent)
	}

	// synwall status, from the host: the socket is a file.
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	out, err := exec.CommandContext(sctx, synwallBin, "status", "--socket", sock, "--json").Output()
	if err != nil {
		t.Fatalf("synwall status --json: %v", err)
	}
	var st struct {
		Window struct {
			Top struct {
				ServicesAnswered []struct{ Service string } `json:"services_answered"`
				PrefixesAnswered []struct{ Prefix string }  `json:"prefixes_answered"`
				PrefixesDropped  []struct{ Prefix string }  `json:"prefixes_dropped"`
			} `json:"top"`
		} `json:"window"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	atkPrefix := netip.PrefixFrom(AttackerV4, 24).Masked().String()
	service := netip.AddrPortFrom(ServerV4, HTTPPort).String()
	top := st.Window.Top
	if len(top.ServicesAnswered) == 0 || top.ServicesAnswered[0].Service != service {
		t.Errorf("status top services answered = %+v, want %s first", top.ServicesAnswered, service)
	}
	if len(top.PrefixesAnswered) == 0 || top.PrefixesAnswered[0].Prefix != atkPrefix {
		t.Errorf("status top prefixes answered = %+v, want %s first", top.PrefixesAnswered, atkPrefix)
	}
	if len(top.PrefixesDropped) == 0 || top.PrefixesDropped[0].Prefix != atkPrefix {
		t.Errorf("status top prefixes dropped = %+v, want %s first", top.PrefixesDropped, atkPrefix)
	}
	human, err := exec.CommandContext(sctx, synwallBin, "status", "--socket", sock).CombinedOutput()
	if err != nil || !strings.Contains(string(human), atkPrefix) {
		t.Errorf("synwall status (%v) does not name %s:\n%s", err, atkPrefix, human)
	}
	t.Logf("synwall status:\n%s", human)

	// Stop, so that the pcap file is complete; the socket goes with it.
	if err := sw.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket after stop: %v, want removed", err)
	}
	if !strings.Contains(sw.Stderr(), `msg="dropped packets" reason=syn_fin`) {
		t.Errorf("no summary line for syn_fin in the log:\n%s", shortOut(sw.Stderr()))
	}
	if n := strings.Count(sw.Stderr(), `reason=syn_fin`); n > 10 {
		t.Errorf("%d syn_fin summary lines for a flood of a few seconds, want one per 1s window", n)
	}

	f, err := os.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, _ := f.Stat(); fi.Mode().Perm() != 0o600 {
		t.Errorf("pcap mode %v, want 0600", fi.Mode().Perm())
	}
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("pcapgo: %v", err)
	}
	n, synFin := 0, 0
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("pcapgo: %v", err)
		}
		n++
		p := gopacket.NewPacket(data, layers.LayerTypeIPv4, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		// The SYN+FIN flood, and the attacker kernel's RSTs to the
		// SYN-ACKs it never asked for (no flow).
		if ip == nil || tcp == nil || !ip.SrcIP.Equal(AttackerV4.AsSlice()) || !ip.DstIP.Equal(ServerV4.AsSlice()) {
			t.Errorf("sampled packet %d is not from the attacker to the server: %v", n, p)
			break
		}
		if tcp.SYN && tcp.FIN {
			synFin++
		}
	}
	if synFin == 0 {
		t.Errorf("none of the %d sampled packets is a SYN+FIN", n)
	}
	// 100 at once, then 100 a second while drops come (the flood's
	// seconds and the RSTs).
	if n < 50 || n > 100+100*int(syn.Elapsed.Seconds()+bad.Elapsed.Seconds()+4) {
		t.Errorf("pcap holds %d packets, want the rate's worth (100/s for a few seconds)", n)
	}
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Logf("no tcpdump: %v", err)
		return
	}
	td, err := exec.CommandContext(ctx, "tcpdump", "-n", "-r", pcap).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, shortOut(string(td)))
	}
	if got := strings.Count(string(td), AttackerV4.String()+"."); got != n {
		t.Errorf("tcpdump shows %d packets from %v, want %d:\n%s", got, AttackerV4, n, shortOut(string(td)))
	}
}
