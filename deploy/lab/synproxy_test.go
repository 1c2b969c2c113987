package lab

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSynproxyStat(t *testing.T) {
	text := "entries\t\tsyn_received\tcookie_invalid\tcookie_valid\tcookie_retrans\tconn_reopened\n" +
		"00000000\t0000000a\t00000001\t00000002\t00000000\t00000000\n" +
		"00000000\t000000f0\t00000000\t00000010\t00000003\t00000001\n"
	got, err := ParseSynproxyStat(text)
	if err != nil {
		t.Fatalf("ParseSynproxyStat: %v", err)
	}
	want := SynproxyStat{SynReceived: 0xfa, CookieInvalid: 1, CookieValid: 0x12, CookieRetrans: 3, ConnReopened: 1}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseSynproxyStat (-want +got):\n%s", d)
	}
	for _, bad := range []string{
		"entries syn_received\n0 1\n", // columns missing
		"entries\tsyn_received\tcookie_invalid\tcookie_valid\tcookie_retrans\tconn_reopened\n0 zz 0 0 0 0\n",
		"entries\tsyn_received\tcookie_invalid\tcookie_valid\tcookie_retrans\tconn_reopened\n0 1 0\n",
	} {
		if _, err := ParseSynproxyStat(bad); err == nil {
			t.Errorf("ParseSynproxyStat(%q) = nil error, want one", bad)
		}
	}
}

func TestSynproxyRuleArgs(t *testing.T) {
	rules := SynproxyRules()
	if len(rules) != 6 || rules[0].Cmd != "iptables" || rules[3].Cmd != "ip6tables" {
		t.Fatalf("SynproxyRules() = %v, want 3 iptables then 3 ip6tables rules", rules)
	}
	tests := []struct {
		r    SynproxyRule
		want []string
	}{
		{rules[0], []string{"-w", "10", "-t", "raw", "-D", "PREROUTING", "-p", "tcp", "-m", "tcp", "--syn", "-d", "198.18.3.2", "--dport", "80", "-j", "CT", "--notrack"}},
		{rules[3], []string{"-w", "10", "-t", "raw", "-D", "PREROUTING", "-p", "tcp", "-m", "tcp", "--syn", "-d", "2001:db8:3::2", "--dport", "80", "-j", "CT", "--notrack"}},
	}
	for _, tt := range tests {
		if d := cmp.Diff(tt.want, tt.r.Args("-D")); d != "" {
			t.Errorf("%v.Args(-D) (-want +got):\n%s", tt.r, d)
		}
	}
}
