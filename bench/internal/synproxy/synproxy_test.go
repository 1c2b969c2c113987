package synproxy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseStat(t *testing.T) {
	text := "entries\t\tsyn_received\tcookie_invalid\tcookie_valid\tcookie_retrans\tconn_reopened\n" +
		"00000000\t0000000a\t00000001\t00000002\t00000000\t00000000\n" +
		"00000000\t000000f0\t00000000\t00000010\t00000003\t00000001\n"
	got, err := ParseStat(text)
	if err != nil {
		t.Fatalf("ParseStat: %v", err)
	}
	want := Stat{SynReceived: 0xfa, CookieInvalid: 1, CookieValid: 0x12, CookieRetrans: 3, ConnReopened: 1}
	if got != want {
		t.Errorf("ParseStat = %+v, want %+v", got, want)
	}
	for _, bad := range []string{
		"entries syn_received\n0 1\n", // columns missing
		"entries\tsyn_received\tcookie_invalid\tcookie_valid\tcookie_retrans\tconn_reopened\n0 zz 0 0 0 0\n",
		"entries\tsyn_received\tcookie_invalid\tcookie_valid\tcookie_retrans\tconn_reopened\n0 1 0\n",
	} {
		if _, err := ParseStat(bad); err == nil {
			t.Errorf("ParseStat(%q) = nil error, want one", bad)
		}
	}
}

func TestRuleArgs(t *testing.T) {
	r := Rules()[0]
	got := RuleArgs("-D", r)
	want := []string{"-w", "10", "-t", "raw", "-D", "PREROUTING", "-p", "tcp", "-m", "tcp", "--syn", "-d", "198.18.3.2", "--dport", "80", "-j", "CT", "--notrack"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("RuleArgs(-D, %q) (-want +got):\n%s", r, d)
	}
}
