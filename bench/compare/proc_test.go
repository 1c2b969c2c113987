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
