package lab

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Tests of the lab's own logic; no privileges needed.

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var d []time.Duration
		for _, x := range xs {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of 4", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 4", ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
		{"p50 of 100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p100", hundred, 100, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

func TestParseSent(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      int
		ok        bool
	}{
		{"flood", "HPING 198.18.3.2 (gw0 198.18.3.2): S set, 40 headers + 0 data bytes\nhping in flood mode, no replies will be shown\n\n--- 198.18.3.2 hping statistic ---\n1234567 packets transmitted, 0 packets received, 100% packet loss\nround-trip min/avg/max = 0.0/0.0/0.0 ms\n", 1234567, true},
		{"count", "--- 198.18.3.2 hping statistic ---\n50 packets transmitted, 50 packets received, 0% packet loss\n", 50, true},
		{"no statistics", "hping3: command not found\n", 0, false},
		{"empty", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSent(tc.out)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("parseSent(%q) = %d, %v; want %d, ok=%v", tc.out, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestFloodArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Flood
		want string // "" = must be rejected
	}{
		{"syn flood", Flood{Target: ServerV4, Port: 80, Flags: []string{"-S"}, Duration: 10 * time.Second},
			"timeout -s INT -k 3 12.000 hping3 -q -n -S -p 80 -c 5000001 --flood 198.18.3.2"},
		{"bounded count", Flood{Target: ServerV4, Port: 80, Flags: []string{"-S", "-F"}, Count: 50, Interval: "u1000", Duration: 5 * time.Second},
			"timeout -s INT -k 3 7.000 hping3 -q -n -S -F -p 80 -c 50 -i u1000 198.18.3.2"},
		{"no flags", Flood{Target: ServerV4, Port: 9000, Count: 5, Duration: time.Second},
			"timeout -s INT -k 3 3.000 hping3 -q -n -p 9000 -c 5 --flood 198.18.3.2"},
		// Only the flag options listed in allowedFlags pass: source
		// spoofing (and hping3's random-address options) is refused the same way.
		{"spoofed source refused", Flood{Target: ServerV4, Port: 80, Flags: []string{"-a"}, Duration: time.Second}, ""},
		{"long spoof option refused", Flood{Target: ServerV4, Port: 80, Flags: []string{"--spoof"}, Duration: time.Second}, ""},
		{"other option refused", Flood{Target: ServerV4, Port: 80, Flags: []string{"--data"}, Duration: time.Second}, ""},
		{"unbounded", Flood{Target: ServerV4, Port: 80, Flags: []string{"-S"}}, ""},
		{"too long", Flood{Target: ServerV4, Port: 80, Duration: MaxFloodDuration + time.Second}, ""},
		{"negative count", Flood{Target: ServerV4, Port: 80, Count: -1, Duration: time.Second}, ""},
		{"outside the lab", Flood{Target: mustAddr("192.0.2.1"), Port: 80, Duration: time.Second}, ""},
		{"IPv6", Flood{Target: ServerV6, Port: 80, Duration: time.Second}, ""},
		{"no target", Flood{Port: 80, Duration: time.Second}, ""},
		{"bad interval", Flood{Target: ServerV4, Port: 80, Interval: "u1;reboot", Duration: time.Second}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, err := tc.f.args()
			got := strings.Join(args, " ")
			if tc.want == "" {
				if err == nil {
					t.Errorf("args(%+v) = %q, want an error", tc.f, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("args(%+v): %v", tc.f, err)
			}
			if got != tc.want {
				t.Errorf("args(%+v) = %q, want %q", tc.f, got, tc.want)
			}
		})
	}
}

func TestParseStats(t *testing.T) {
	in := `{"events": {"syn_answered": 10, "handshake": 3, "server_up": 3, "translated": 99, "bad_cookie": 1, "unknown": 2, "note": "x"},
	        "drops": {"syn_fin": 50, "null_flags": 7},
	        "queue": {"packets": 1000, "queue_dropped": 0},
	        "flows": {"active": 4},
	        "version": "dev"}`
	got, err := ParseStats([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		Events: map[string]uint64{"syn_answered": 10, "handshake": 3, "server_up": 3, "translated": 99, "bad_cookie": 1, "unknown": 2},
		Drops:  map[string]uint64{"syn_fin": 50, "null_flags": 7},
		Queue:  map[string]uint64{"packets": 1000, "queue_dropped": 0},
		Other:  map[string]map[string]uint64{"flows": {"active": 4}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseStats mismatch (-want +got):\n%s", diff)
	}
	if got.DropsTotal() != 57 {
		t.Errorf("DropsTotal() = %d, want 57", got.DropsTotal())
	}
	for _, bad := range []string{"", "{", "[1,2]", `"x"`} {
		if _, err := ParseStats([]byte(bad)); err == nil {
			t.Errorf("ParseStats(%q) succeeded, want an error", bad)
		}
	}
}

func TestBody(t *testing.T) {
	b := Body()
	if len(b) != BigSize {
		t.Fatalf("len(Body()) = %d, want %d", len(b), BigSize)
	}
	if &Body()[0] != &b[0] {
		t.Errorf("Body() built twice")
	}
	// Not constant, not trivially periodic.
	if bytes.Equal(b[:4096], b[4096:8192]) || bytes.Count(b[:4096], b[:1]) > 200 {
		t.Errorf("Body() looks degenerate: % x", b[:32])
	}
	for _, n := range []int{0, 1, 1000, BigSize, BigSize + 1000} {
		var want [32]byte
		if n <= BigSize {
			want = sha256.Sum256(b[:n])
		} else {
			h := sha256.New()
			h.Write(b)
			h.Write(b[:n-BigSize])
			copy(want[:], h.Sum(nil))
		}
		if got := BodySHA256(n); got != want {
			t.Errorf("BodySHA256(%d) = %x, want %x", n, got, want)
		}
	}
}

func TestSysctlPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"},
		{"net.ipv6.conf.all.accept_dad", "/proc/sys/net/ipv6/conf/all/accept_dad"},
		{"", ""},
		{"net/ipv4/ip_forward", ""},
		{"net..x", ""},
		{"net.ipv4 x", ""},
	} {
		got, err := sysctlPath(tc.in)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
