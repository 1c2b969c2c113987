package lab

import (
	"context"
	"fmt"
	"net/netip"
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
