package lab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSynwallSynStage runs synwall with the BPF SYN stage on the gateway's
// client-facing interface (tcx): real clients on IPv4 and IPv6, with and
// without timestamps, get the stage's SYN-ACK, their handshake ACK goes
// through NFQUEUE to the engine, which finds the client's options in the
// SYN cache it shares with the stage, and data flows both ways intact.
func TestSynwallSynStage(t *testing.T) {
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	sw := startSynwall(t, l, SynwallConfig{Args: []string{"--syn-stage", "tc", "--syn-stage-if", IfClient}})
	if !strings.Contains(sw.Stderr(), "SYN stage attached") {
		t.Errorf("the log does not say the SYN stage is attached:\n%s", sw.Stderr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const size = 200_000
	n := 0
	for _, ts := range []string{"1", "0"} {
		if err := SetSysctl(l.Client, "net.ipv4.tcp_timestamps", ts); err != nil {
			t.Fatal(err)
		}
		for _, srv := range []netip.Addr{ServerV4, ServerV6} {
			t.Run(fmt.Sprintf("ts=%s,%v", ts, srv), func(t *testing.T) {
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
			n += 2
		}
	}
	st := statsAfter(t, sw)
	stage := st.Other["syn_stage"]
	eng := st.Other["engine"]
	t.Logf("syn stage %v; engine events %v; engine %v", stage, st.Events, eng)
	if stage["answered"] < uint64(n) {
		t.Errorf("the stage answered %d SYNs, want at least %d", stage["answered"], n)
	}
	if st.Events["syn_answered"] != 0 {
		t.Errorf("the engine answered %d SYNs, want 0 (the stage answers them)", st.Events["syn_answered"])
	}
	if st.Events["handshake"] < uint64(n) || eng["cache_hits"] < uint64(n) {
		t.Errorf("engine: %d handshakes, %d SYN cache hits, want at least %d of each (the stage's entries)",
			st.Events["handshake"], eng["cache_hits"], n)
	}
}

// TestSynwallSynStageLiveFlow: a SYN on the tuple of an established
// connection through synwall with the SYN stage on (a client that lost
// the connection and reuses its port; here hping3 from the client with the
// connection's own source port) is passed by the stage to the engine,
// which answers it under its own rule (an established flow is replaced
// only by a valid ACK for the new ISN), and the connection goes on.
func TestSynwallSynStageLiveFlow(t *testing.T) {
	needTools(t, "hping3")
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	sw := startSynwall(t, l, SynwallConfig{Args: []string{"--syn-stage", "tc", "--syn-stage-if", IfClient}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := DialIn(ctx, l.Client, "tcp", netip.AddrPortFrom(ServerV4, BulkPort).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	sport := c.LocalAddr().(*net.TCPAddr).Port
	if _, err := fmt.Fprintf(c, "sink\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	before := statsAfter(t, sw)
	out, err := l.Exec(ctx, l.Client, "hping3", "-S", "-c", "1", "-s", strconv.Itoa(sport), "-k", "-p", strconv.Itoa(BulkPort), ServerV4.String())
	t.Logf("hping3 SYN on the connection's tuple (port %d): %v\n%s", sport, err, out)
	after := statsAfter(t, sw)
	if d := after.Other["syn_stage"]["live_flow"] - before.Other["syn_stage"]["live_flow"]; d != 1 {
		t.Errorf("the stage passed %d SYNs on a live flow's tuple, want 1", d)
	}
	if d := after.Other["syn_stage"]["answered"] - before.Other["syn_stage"]["answered"]; d != 0 {
		t.Errorf("the stage answered %d SYNs, want 0 (the engine's)", d)
	}
	if d := after.Events["syn_answered"] - before.Events["syn_answered"]; d != 1 {
		t.Errorf("the engine answered %d SYNs, want 1", d)
	}
	// The connection goes on: the sink counts what it was sent.
	if _, err := c.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "2000 ") {
		t.Errorf("sink reply %q, %v; want 2000 bytes received (the connection survived the SYN)", line, err)
	}
}
