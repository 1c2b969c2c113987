package firewall

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testRules() Rules {
	return Rules{
		Services: []Service{
			{Prefix: netip.MustParsePrefix("198.18.0.0/24"), Ports: PortRange{80, 80}},
			{Prefix: netip.MustParsePrefix("198.19.1.1/32"), Ports: PortRange{8000, 8080}},
			{Prefix: netip.MustParsePrefix("2001:db8::/64"), Ports: PortRange{443, 443}},
		},
		Hooks:      []Hook{HookForward, HookInput},
		QueueFirst: 0, QueueLast: 0,
	}
}

// lines returns the lines of text that contain every one of subs.
func lines(text string, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

func indexOf(t *testing.T, text, line string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if l == line {
			return i
		}
	}
	t.Fatalf("line %q missing from:\n%s", line, text)
	return -1
}

func TestIPTablesRules(t *testing.T) {
	text, err := testRules().IPTables(IPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "-") && !strings.Contains(l, "-m comment --comment synwall") {
			t.Errorf("rule without the synwall tag: %q", l)
		}
	}
	if got := lines(text, "2001:db8"); len(got) != 0 {
		t.Errorf("IPv6 service in the IPv4 rules: %q", got)
	}
	// Jumps at the top of the built-in chains, chains declared first.
	for _, j := range []string{
		"-I PREROUTING 1 -m comment --comment synwall -j SYNWALL-RAW-PRE",
		"-I OUTPUT 1 -m comment --comment synwall -j SYNWALL-RAW-OUT",
		"-I FORWARD 1 -m comment --comment synwall -j SYNWALL-FWD",
		"-I INPUT 1 -m comment --comment synwall -j SYNWALL-IN",
		"-I OUTPUT 1 -m comment --comment synwall -j SYNWALL-OUT",
	} {
		indexOf(t, text, j)
	}
	if indexOf(t, text, "*raw") > indexOf(t, text, ":SYNWALL-RAW-PRE - [0:0]") {
		t.Errorf("raw chain declared outside *raw")
	}
	// Injected packets are notracked and return before anything queues them.
	markNotrack := indexOf(t, text, "-A SYNWALL-RAW-OUT -m mark --mark 0x5359 -m comment --comment synwall -j CT --notrack")
	markReturn := indexOf(t, text, "-A SYNWALL-RAW-OUT -m mark --mark 0x5359 -m comment --comment synwall -j RETURN")
	outNotrack := indexOf(t, text, "-A SYNWALL-RAW-OUT -s 198.18.0.0/24 -p tcp -m tcp --sport 80 -m comment --comment synwall -j CT --notrack")
	if !(markNotrack < markReturn && markReturn < outNotrack) {
		t.Errorf("raw OUTPUT order: mark notrack %d, mark return %d, service notrack %d", markNotrack, markReturn, outNotrack)
	}
	for _, chain := range []string{"SYNWALL-FWD", "SYNWALL-IN", "SYNWALL-OUT"} {
		ret := indexOf(t, text, "-A "+chain+" -m mark --mark 0x5359 -m comment --comment synwall -j RETURN")
		q := lines(text, "-A "+chain+" ", "NFQUEUE")
		if len(q) == 0 {
			t.Fatalf("%s has no queue rule", chain)
		}
		if first := indexOf(t, text, q[0]); first < ret {
			t.Errorf("%s: queue rule before the mark RETURN", chain)
		}
	}
	// Both directions in forward mode, one each in input/output.
	for _, want := range []string{
		"-A SYNWALL-FWD -d 198.18.0.0/24 -p tcp -m tcp --dport 80 -m comment --comment synwall -j NFQUEUE --queue-num 0",
		"-A SYNWALL-FWD -s 198.18.0.0/24 -p tcp -m tcp --sport 80 -m comment --comment synwall -j NFQUEUE --queue-num 0",
		"-A SYNWALL-IN -d 198.19.1.1/32 -p tcp -m tcp --dport 8000:8080 -m comment --comment synwall -j NFQUEUE --queue-num 0",
		"-A SYNWALL-OUT -s 198.19.1.1/32 -p tcp -m tcp --sport 8000:8080 -m comment --comment synwall -j NFQUEUE --queue-num 0",
		"-A SYNWALL-RAW-PRE -d 198.18.0.0/24 -p tcp -m tcp --dport 80 -m comment --comment synwall -j CT --notrack",
		"-A SYNWALL-RAW-PRE -s 198.18.0.0/24 -p tcp -m tcp --sport 80 -m comment --comment synwall -j CT --notrack",
	} {
		indexOf(t, text, want)
	}
	if got := lines(text, "SYNWALL-IN", "--sport"); len(got) != 0 {
		t.Errorf("INPUT queues server traffic: %q", got)
	}

	six, err := testRules().IPTables(IPv6)
	if err != nil {
		t.Fatal(err)
	}
	indexOf(t, six, "-A SYNWALL-FWD -d 2001:db8::/64 -p tcp -m tcp --dport 443 -m comment --comment synwall -j NFQUEUE --queue-num 0")
	// ICMP errors toward a server quote its translated segments: the
	// engine translates them back (path MTU discovery).
	indexOf(t, text, "-A SYNWALL-FWD -d 198.18.0.0/24 -p icmp -m icmp --icmp-type 3 -m comment --comment synwall -j NFQUEUE --queue-num 0")
	indexOf(t, text, "-A SYNWALL-IN -d 198.19.1.1/32 -p icmp -m icmp --icmp-type 3 -m comment --comment synwall -j NFQUEUE --queue-num 0")
	indexOf(t, six, "-A SYNWALL-FWD -d 2001:db8::/64 -p ipv6-icmp -m icmp6 --icmpv6-type 2 -m comment --comment synwall -j NFQUEUE --queue-num 0")
	if got := lines(six, "198.1"); len(got) != 0 {
		t.Errorf("IPv4 service in the IPv6 rules: %q", got)
	}
}

func TestIPTablesQueueTarget(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Rules)
		want string // target of every rule but the clients' SYNs
		syn  string // target of the clients' SYNs when they have their own queue
	}{
		{"one queue", func(r *Rules) {}, "-j NFQUEUE --queue-num 0", ""},
		{"balance", func(r *Rules) { r.QueueFirst, r.QueueLast, r.SYNQueues = 2, 5, 1 }, "-j NFQUEUE --queue-balance 3:5", "-j NFQUEUE --queue-num 2"},
		{"balance, no SYN queue", func(r *Rules) { r.QueueFirst, r.QueueLast = 2, 5 }, "-j NFQUEUE --queue-balance 2:5", ""},
		{"two SYN queues", func(r *Rules) { r.QueueFirst, r.QueueLast, r.SYNQueues = 0, 3, 2 }, "-j NFQUEUE --queue-balance 2:3", "-j NFQUEUE --queue-balance 0:1"},
		{"three SYN queues", func(r *Rules) { r.QueueFirst, r.QueueLast, r.SYNQueues = 4, 7, 3 }, "-j NFQUEUE --queue-num 7", "-j NFQUEUE --queue-balance 4:6"},
		{"two queues", func(r *Rules) { r.QueueLast, r.SYNQueues, r.CPUFanout, r.FailOpen = 1, 1, true, true }, "-j NFQUEUE --queue-num 1 --queue-bypass", "-j NFQUEUE --queue-num 0 --queue-bypass"},
		{"fanout bypass", func(r *Rules) { r.QueueLast, r.SYNQueues, r.CPUFanout, r.FailOpen = 3, 1, true, true }, "-j NFQUEUE --queue-balance 1:3 --queue-cpu-fanout --queue-bypass", "-j NFQUEUE --queue-num 0 --queue-bypass"},
		{"fanout SYN queues", func(r *Rules) { r.QueueLast, r.SYNQueues, r.CPUFanout = 3, 2, true }, "-j NFQUEUE --queue-balance 2:3 --queue-cpu-fanout", "-j NFQUEUE --queue-balance 0:1 --queue-cpu-fanout"},
		{"bypass", func(r *Rules) { r.FailOpen = true }, "-j NFQUEUE --queue-num 0 --queue-bypass", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRules()
			tt.edit(&r)
			text, err := r.IPTables(IPv4)
			if err != nil {
				t.Fatal(err)
			}
			var syn, rest []string
			for _, l := range lines(text, "NFQUEUE") {
				if strings.Contains(l, synMatch) {
					syn = append(syn, l)
				} else {
					rest = append(rest, l)
				}
			}
			for _, l := range rest {
				if !strings.HasSuffix(l, tt.want) {
					t.Errorf("rule %q, want it to end in %q", l, tt.want)
				}
			}
			if len(rest) != 12 { // 2 IPv4 services × (2 forward + input + output + ICMP errors in forward and input)
				t.Errorf("%d queue rules besides SYNs, want 12", len(rest))
			}
			if tt.syn == "" {
				if len(syn) != 0 {
					t.Errorf("no SYN queues, yet SYN rules %q", syn)
				}
				return
			}
			if len(syn) != 4 { // 2 IPv4 services × (forward + input), client side only
				t.Errorf("%d SYN rules, want 4: %q", len(syn), syn)
			}
			for _, l := range syn {
				if !strings.HasSuffix(l, tt.syn) || !strings.Contains(l, "--dport") {
					t.Errorf("SYN rule %q, want a client-side (--dport) rule ending in %q", l, tt.syn)
				}
			}
			// The SYN rule comes first, or the general rule would take SYNs.
			if i, j := strings.Index(text, syn[0]), strings.Index(text, rest[0]); i > j {
				t.Errorf("SYN rule after the general rule:\n%s", text)
			}
		})
	}
}

func TestRulesValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Rules)
		want string
	}{
		{"no hook", func(r *Rules) { r.Hooks = nil }, "no hook"},
		{"bad hook", func(r *Rules) { r.Hooks = []Hook{HookInvalid} }, "invalid hook"},
		{"no service", func(r *Rules) { r.Services = nil }, "no service"},
		{"zero port", func(r *Rules) { r.Services[0].Ports = PortRange{0, 10} }, "port range 0-10"},
		{"reversed ports", func(r *Rules) { r.Services[0].Ports = PortRange{90, 80} }, "port range 90-80"},
		{"bad prefix", func(r *Rules) { r.Services[0].Prefix = netip.Prefix{} }, "invalid prefix"},
		{"empty queue range", func(r *Rules) { r.QueueFirst = 3 }, "queue range 3:0"},
		{"fanout one queue", func(r *Rules) { r.CPUFanout = true }, "CPU fanout"},
		{"SYN queues take all", func(r *Rules) { r.QueueLast, r.SYNQueues = 1, 2 }, "2 SYN queues of 2 (0:1) leave none for the rest"},
		{"SYN queue of one queue", func(r *Rules) { r.SYNQueues = 1 }, "1 SYN queues of 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRules()
			r.Services = append([]Service(nil), r.Services...)
			tt.edit(&r)
			err := r.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if err := testRules().Validate(); err != nil {
		t.Errorf("Validate(good) = %v, want nil", err)
	}
}

func TestRestoreTextRemovesStale(t *testing.T) {
	save := `# Generated by iptables-save
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:SYNWALL-RAW-PRE - [0:0]
:SYNWALL-RAW-OUT - [0:0]
-A PREROUTING -m comment --comment synwall -j SYNWALL-RAW-PRE
-A PREROUTING -j ACCEPT
-A OUTPUT -m comment --comment "synwall" -j SYNWALL-RAW-OUT
-A SYNWALL-RAW-OUT -m comment --comment synwall -j CT --notrack
COMMIT
*filter
:INPUT ACCEPT [0:0]
:SYNWALL-IN - [0:0]
:SYNWALL-OLD - [0:0]
-A INPUT -m comment --comment synwall -j SYNWALL-IN
-A INPUT -m comment --comment synwall -j SYNWALL-IN
-A INPUT -m comment --comment other -j ACCEPT
-A INPUT -m comment --comment synwall -j SYNWALL-OLD
COMMIT
`
	stale := parseSave([]byte(save))
	want := map[string]*installed{
		"raw": {chains: []string{"SYNWALL-RAW-PRE", "SYNWALL-RAW-OUT"}, builtin: []string{
			"PREROUTING -m comment --comment synwall -j SYNWALL-RAW-PRE",
			`OUTPUT -m comment --comment "synwall" -j SYNWALL-RAW-OUT`,
		}},
		"filter": {chains: []string{"SYNWALL-IN", "SYNWALL-OLD"}, builtin: []string{
			"INPUT -m comment --comment synwall -j SYNWALL-IN",
			"INPUT -m comment --comment synwall -j SYNWALL-IN",
			"INPUT -m comment --comment synwall -j SYNWALL-OLD",
		}},
	}
	if diff := cmp.Diff(want, stale, cmp.AllowUnexported(installed{})); diff != "" {
		t.Fatalf("parseSave() (-want +got):\n%s", diff)
	}

	r := testRules()
	r.Hooks = []Hook{HookForward}
	text := r.restoreText(IPv4, stale)
	// Old jumps deleted before the new ones are inserted; the chain that is
	// no longer used is flushed and deleted after its jump is gone.
	del := indexOf(t, text, "-D INPUT -m comment --comment synwall -j SYNWALL-OLD")
	x := indexOf(t, text, "-X SYNWALL-OLD")
	if del > x {
		t.Errorf("chain deleted before its jump")
	}
	d := indexOf(t, text, "-D PREROUTING -m comment --comment synwall -j SYNWALL-RAW-PRE")
	if d > indexOf(t, text, "-I PREROUTING 1 -m comment --comment synwall -j SYNWALL-RAW-PRE") {
		t.Errorf("old jump deleted after the new one was inserted")
	}
	if got := len(lines(text, "-D INPUT -m comment --comment synwall -j SYNWALL-IN")); got != 2 {
		t.Errorf("%d deletions of the duplicated INPUT jump, want 2", got)
	}
	indexOf(t, text, ":SYNWALL-IN - [0:0]")
	indexOf(t, text, "-X SYNWALL-IN")
	if got := lines(text, "other"); len(got) != 0 {
		t.Errorf("touches a rule that is not synwall's: %q", got)
	}

	// Removal alone: deletions, no additions.
	rm := Rules{}.restoreText(IPv4, stale)
	if got := lines(rm, "-I "); len(got) != 0 {
		t.Errorf("removal inserts rules: %q", got)
	}
	if got := lines(rm, "-X SYNWALL-"); len(got) != 4 {
		t.Errorf("removal deletes %d chains, want 4:\n%s", len(got), rm)
	}
	none := Rules{}.restoreText(IPv6, nil)
	if strings.Contains(none, "COMMIT") {
		t.Errorf("removal with nothing installed = %q, want no transaction", none)
	}
}

func TestNFTables(t *testing.T) {
	r := testRules()
	r.QueueLast, r.SYNQueues, r.CPUFanout, r.FailOpen = 3, 1, true, true
	text, err := r.NFTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"table inet synwall {",
		"\t\ttype filter hook prerouting priority raw; policy accept;",
		"\t\tmeta mark 0x5359 notrack comment \"synwall\"",
		"\t\tmeta mark 0x5359 return comment \"synwall\"",
		"\t\tip daddr 198.18.0.0/24 tcp dport 80 tcp flags & (fin|syn|rst|ack) == syn queue flags bypass to 0 comment \"synwall\"",
		"\t\tip daddr 198.18.0.0/24 tcp dport 80 queue flags bypass,fanout to 1-3 comment \"synwall\"",
		"\t\tip saddr 198.19.1.1/32 tcp sport 8000-8080 queue flags bypass,fanout to 1-3 comment \"synwall\"",
		"\t\tip6 daddr 2001:db8::/64 tcp dport 443 notrack comment \"synwall\"",
		"\t\tip daddr 198.18.0.0/24 icmp type destination-unreachable queue flags bypass,fanout to 1-3 comment \"synwall\"",
		"\t\tip6 daddr 2001:db8::/64 icmpv6 type { destination-unreachable, packet-too-big } queue flags bypass,fanout to 1-3 comment \"synwall\"",
	} {
		indexOf(t, text, want)
	}
	for _, c := range []string{"chain raw-pre", "chain raw-out", "chain forward", "chain input", "chain output"} {
		if !strings.Contains(text, c+" {") {
			t.Errorf("missing %s", c)
		}
	}
	if strings.Index(text, "delete table inet synwall") > strings.Index(text, "table inet synwall {") {
		t.Errorf("old table not deleted before the new one is defined")
	}
	r.SYNQueues, r.FailOpen = 2, false
	if text, err = r.NFTables(); err != nil {
		t.Fatal(err)
	}
	indexOf(t, text, "\t\tip daddr 198.18.0.0/24 tcp dport 80 tcp flags & (fin|syn|rst|ack) == syn queue flags fanout to 0-1 comment \"synwall\"")
	indexOf(t, text, "\t\tip daddr 198.18.0.0/24 tcp dport 80 queue flags fanout to 2-3 comment \"synwall\"")
}

// TestLoopbackExempt: with the input hook, the host's traffic to itself
// (loopback) is never queued, so the discover probe of a service on this
// host sees the real server's SYN-ACK.
func TestLoopbackExempt(t *testing.T) {
	r := testRules()
	r.Hooks = []Hook{HookInput}
	text, err := r.IPTables(IPv4)
	if err != nil {
		t.Fatal(err)
	}
	in := indexOf(t, text, "-A SYNWALL-IN -i lo -m comment --comment synwall -j RETURN")
	out := indexOf(t, text, "-A SYNWALL-OUT -o lo -m comment --comment synwall -j RETURN")
	if q := strings.Index(text, "-A SYNWALL-IN -d"); q < in {
		t.Errorf("a queue rule comes before the loopback exemption in SYNWALL-IN:\n%s", text)
	}
	if q := strings.Index(text, "-A SYNWALL-OUT -s"); q < out {
		t.Errorf("a queue rule comes before the loopback exemption in SYNWALL-OUT:\n%s", text)
	}
	nft, err := r.NFTables()
	if err != nil {
		t.Fatal(err)
	}
	indexOf(t, nft, "\t\tiifname \"lo\" return comment \"synwall\"")
	indexOf(t, nft, "\t\toifname \"lo\" return comment \"synwall\"")
	r.Hooks = []Hook{HookForward}
	if text, _ := r.IPTables(IPv4); strings.Contains(text, " lo ") {
		t.Errorf("forward-only rules mention loopback:\n%s", text)
	}
}
