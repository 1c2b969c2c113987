package firewall

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func conntrackRules(hooks ...Hook) Rules {
	r := testRules()
	r.Hooks = hooks
	r.Conntrack = &Conntrack{Mark: 0x53570000, Mask: 0xffff0000}
	return r
}

// chainRules returns the "-A chain" lines of text, in order.
func chainRules(text, chain string) []string {
	return lines(text, "-A "+chain+" ")
}

func TestIPTablesConntrack(t *testing.T) {
	const (
		tag         = "-m comment --comment synwall"
		established = "-A %s -m conntrack --ctstate ESTABLISHED -m connmark --mark 0x53570000/0xffff0000 " + tag + " -j RETURN"
	)
	rst := func(chain string) string {
		return "-A " + chain + " -p tcp -m tcp --tcp-flags RST RST -m conntrack --ctstate ESTABLISHED --ctdir REPLY -m connmark --mark 0x53570000/0xffff0000 " + tag + " -j NFQUEUE --queue-num 0"
	}
	synproxy := func(chain string, mss string) string {
		return "-A " + chain + ` -p tcp -m mark --mark 0x1/0x0 -m comment --comment "` + synproxyWhy + `" ` + tag +
			" -j SYNPROXY --sack-perm --timestamp --wscale 7 --mss " + mss
	}
	tests := []struct {
		name   string
		hooks  []Hook
		fam    Family
		raw    []string
		rawOut []string
		chains map[string][]string // the first rules of each filter chain
	}{
		{
			name: "forward ipv4", hooks: []Hook{HookForward}, fam: IPv4,
			raw: []string{
				"-A SYNWALL-RAW-PRE -d 198.18.0.0/24 -p tcp -m tcp --dport 80 --tcp-flags FIN,SYN,RST,ACK SYN " + tag + " -j CT --notrack",
				"-A SYNWALL-RAW-PRE -d 198.19.1.1/32 -p tcp -m tcp --dport 8000:8080 --tcp-flags FIN,SYN,RST,ACK SYN " + tag + " -j CT --notrack",
			},
			rawOut: []string{
				"-A SYNWALL-RAW-OUT -m mark --mark 0x5359 " + tag + " -j CT --notrack",
				"-A SYNWALL-RAW-OUT -m mark --mark 0x5359 " + tag + " -j RETURN",
			},
			chains: map[string][]string{"SYNWALL-FWD": {
				"-A SYNWALL-FWD -m mark --mark 0x5359 " + tag + " -j RETURN",
				rst("SYNWALL-FWD"),
				strings.Replace(established, "%s", "SYNWALL-FWD", 1),
				synproxy("SYNWALL-FWD", "1460"),
				"-A SYNWALL-FWD -d 198.18.0.0/24 -p tcp -m tcp --dport 80 " + tag + " -j NFQUEUE --queue-num 0",
			}},
		},
		{
			name: "input ipv6", hooks: []Hook{HookInput}, fam: IPv6,
			raw: []string{
				"-A SYNWALL-RAW-PRE -d 2001:db8::/64 -p tcp -m tcp --dport 443 --tcp-flags FIN,SYN,RST,ACK SYN " + tag + " -j CT --notrack",
			},
			rawOut: []string{
				"-A SYNWALL-RAW-OUT -m mark --mark 0x5359 " + tag + " -j CT --notrack",
				"-A SYNWALL-RAW-OUT -m mark --mark 0x5359 " + tag + " -j RETURN",
			},
			chains: map[string][]string{
				"SYNWALL-IN": {
					"-A SYNWALL-IN -m mark --mark 0x5359 " + tag + " -j RETURN",
					"-A SYNWALL-IN -i lo " + tag + " -j RETURN",
					strings.Replace(established, "%s", "SYNWALL-IN", 1),
					synproxy("SYNWALL-IN", "1440"),
					"-A SYNWALL-IN -d 2001:db8::/64 -p tcp -m tcp --dport 443 " + tag + " -j NFQUEUE --queue-num 0",
				},
				"SYNWALL-OUT": {
					"-A SYNWALL-OUT -m mark --mark 0x5359 " + tag + " -j RETURN",
					"-A SYNWALL-OUT -o lo " + tag + " -j RETURN",
					rst("SYNWALL-OUT"),
					strings.Replace(established, "%s", "SYNWALL-OUT", 1),
					"-A SYNWALL-OUT -s 2001:db8::/64 -p tcp -m tcp --sport 443 " + tag + " -j NFQUEUE --queue-num 0",
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := conntrackRules(tt.hooks...).IPTables(tt.fam)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.raw, chainRules(text, ChainRawPre)); diff != "" {
				t.Errorf("raw PREROUTING (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.rawOut, chainRules(text, ChainRawOut)); diff != "" {
				t.Errorf("raw OUTPUT (-want +got):\n%s", diff)
			}
			for chain, want := range tt.chains {
				got := chainRules(text, chain)
				if len(got) > len(want) {
					got = got[:len(want)]
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s (-want +got):\n%s", chain, diff)
				}
			}
		})
	}
}

// TestIPTablesConntrackOneSynproxy: with both hooks one SYNPROXY rule per
// family is enough (the hooks are per namespace and family).
func TestIPTablesConntrackOneSynproxy(t *testing.T) {
	for _, fam := range []Family{IPv4, IPv6} {
		text, err := conntrackRules(HookForward, HookInput).IPTables(fam)
		if err != nil {
			t.Fatal(err)
		}
		if got := lines(text, "-j SYNPROXY"); len(got) != 1 || !strings.HasPrefix(got[0], "-A SYNWALL-FWD ") {
			t.Errorf("%s: SYNPROXY rules %q, want one in SYNWALL-FWD", fam, got)
		}
		if got := lines(text, "--ctstate ESTABLISHED", "-j RETURN"); len(got) != 3 {
			t.Errorf("%s: %d established rules, want 3 (FWD, IN, OUT): %q", fam, len(got), got)
		}
	}
}

// TestIPTablesWithoutConntrack: without the hand-off nothing of it shows.
func TestIPTablesWithoutConntrack(t *testing.T) {
	text, err := testRules().IPTables(IPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"SYNPROXY", "ctstate", "connmark", "--tcp-flags FIN,SYN,RST,ACK SYN -m comment --comment synwall -j CT"} {
		if got := lines(text, s); len(got) != 0 {
			t.Errorf("rules without Conntrack contain %q: %q", s, got)
		}
	}
}

func TestIPTablesLooseMarker(t *testing.T) {
	r := conntrackRules(HookForward)
	r.Conntrack.looseMarker = "1"
	text := r.restoreText(IPv4, nil)
	got := chainRules(text, ChainRawPre)
	want := `-A SYNWALL-RAW-PRE -m comment --comment "synwall-sysctl net.netfilter.nf_conntrack_tcp_loose=1" -m comment --comment synwall -j RETURN`
	if len(got) == 0 || got[len(got)-1] != want {
		t.Errorf("last raw PREROUTING rule = %q, want %q", got, want)
	}
	if v := looseFromSave(text); v != "1" {
		t.Errorf("looseFromSave(rules) = %q, want 1", v)
	}
	// iptables-save quotes the comment the same way.
	for _, tt := range []struct{ in, want string }{
		{`-A SYNWALL-RAW-PRE -m comment --comment "synwall-sysctl net.netfilter.nf_conntrack_tcp_loose=0" -m comment --comment synwall -j RETURN`, "0"},
		{`-A X -m comment --comment "synwall-sysctl net.netfilter.nf_conntrack_tcp_loose=7"`, ""},
		{"no marker", ""},
	} {
		if got := looseFromSave(tt.in); got != tt.want {
			t.Errorf("looseFromSave(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNFTablesConntrack(t *testing.T) {
	text, err := conntrackRules(HookForward, HookInput).NFTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		sub  string
		want int
	}{
		{"ip daddr 198.18.0.0/24 tcp dport 80 tcp flags & (fin|syn|rst|ack) == syn notrack", 1},
		{"ip saddr 198.18.0.0/24 tcp sport 80 notrack", 0},
		{"ct state established ct mark & 0xffff0000 == 0x53570000 return", 3},
		{"tcp flags & rst == rst ct state established ct direction reply ct mark & 0xffff0000 == 0x53570000 queue", 2},
		{"meta mark & 0x0 == 0x1 synproxy", 1},
		{"# " + synproxyWhy, 1},
	} {
		if got := lines(text, tt.sub); len(got) != tt.want {
			t.Errorf("lines with %q: %d, want %d\n%s", tt.sub, len(got), tt.want, text)
		}
	}
	// Established flows return before the queue in every chain.
	for _, chain := range []string{"chain forward", "chain input", "chain output"} {
		body := text[strings.Index(text, chain):]
		body = body[:strings.Index(body, "\t}")]
		est, q := strings.Index(body, "ct state established"), strings.Index(body, " queue ")
		if est < 0 || q < 0 || est > q {
			t.Errorf("%s: established at %d, queue at %d; want established first:\n%s", chain, est, q, body)
		}
	}
}

func TestRulesValidateConntrackMark(t *testing.T) {
	r := conntrackRules(HookForward)
	r.Conntrack = &Conntrack{Mark: 0x1, Mask: 0xff00}
	if err := r.Validate(); err == nil {
		t.Error("Validate() = nil for a mark outside its mask, want an error")
	}
}
