package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseProcNet(t *testing.T) {
	text := `TcpExt: SyncookiesSent SyncookiesRecv ListenDrops
TcpExt: 12 3 7
Tcp: RtoAlgorithm MaxConn PassiveOpens
Tcp: 1 -1 40
`
	got, err := parseProcNet(text)
	if err != nil {
		t.Fatalf("parseProcNet: %v", err)
	}
	want := map[string]uint64{
		"TcpExtSyncookiesSent": 12, "TcpExtSyncookiesRecv": 3, "TcpExtListenDrops": 7,
		"TcpRtoAlgorithm": 1, "TcpPassiveOpens": 40, // MaxConn -1 is left out
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseProcNet (-want +got):\n%s", d)
	}
	for _, bad := range []string{
		"TcpExt: A B\nTcpExt: 1\n",
		"TcpExt: A\nIpExt: 1\n",
		"TcpExt: A\nTcpExt: x\n",
	} {
		if _, err := parseProcNet(bad); err == nil {
			t.Errorf("parseProcNet(%q) = nil error, want one", bad)
		}
	}
}

func TestParseSynproxy(t *testing.T) {
	text := "entries\t\tsyn_received\tcookie_invalid\tcookie_valid\tcookie_retrans\tconn_reopened\n" +
		"00000000\t0000000a\t00000001\t00000002\t00000000\t00000000\n" +
		"00000000\t000000f0\t00000000\t00000010\t00000003\t00000001\n"
	got, err := parseSynproxy(text)
	if err != nil {
		t.Fatalf("parseSynproxy: %v", err)
	}
	want := synproxyStat{SynReceived: 0xfa, CookieInvalid: 1, CookieValid: 0x12, CookieRetrans: 3, ConnReopened: 1}
	if got != want {
		t.Errorf("parseSynproxy = %+v, want %+v", got, want)
	}
	for _, bad := range []string{
		"entries syn_received\n0 1\n", // columns missing
		"entries\tsyn_received\tcookie_invalid\tcookie_valid\tcookie_retrans\tconn_reopened\n0 zz 0 0 0 0\n",
		"entries\tsyn_received\tcookie_invalid\tcookie_valid\tcookie_retrans\tconn_reopened\n0 1 0\n",
	} {
		if _, err := parseSynproxy(bad); err == nil {
			t.Errorf("parseSynproxy(%q) = nil error, want one", bad)
		}
	}
}

func TestRuleArgs(t *testing.T) {
	r := synproxyRules()[0]
	got := ruleArgs("-D", r)
	want := []string{"-w", "10", "-t", "raw", "-D", "PREROUTING", "-p", "tcp", "-m", "tcp", "--syn", "-d", "198.18.3.2", "--dport", "80", "-j", "CT", "--notrack"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ruleArgs(-D, %q) (-want +got):\n%s", r, d)
	}
}
