package policy

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// base is a valid policy; tests replace or append lines to break it.
const base = `version: 1
services:
  - name: web
    addresses: [198.18.3.2/32, "2001:db8:3::2/128"]
    ports: [80, 443, "8000-8080"]
    mode: proxy
    advertise:
      mss: 1460
      wscale: 7
    limits:
      syn_per_source: {rate: 100/s, burst: 200, prefix4: 32, prefix6: 64}
`

func TestParseValid(t *testing.T) {
	p, err := Parse("web.yaml", []byte(base+`tables: {cache_buckets: 1Ki, cache_entries: 16, flows: 1Mi, handshake_timeout: 3s, idle_timeout: 2m, linger: 2s}
cookies: {period: 15s}
limits: {synack_rate: 1000/m, synack_burst: 50k}
allow: [198.18.1.0/24, "2001:db8:1::/48"]
deny: [198.18.200.7]
invalid_flags: count
queue: {numbers: "2-4", max_len: 64Ki, fail: open}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Policy{
		Services: []*Service{{
			Name: "web", Mode: ModeProxy,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.3.2/32"), netip.MustParsePrefix("2001:db8:3::2/128")},
			PortLo:   80, PortHi: 8080,
			Ports:     []PortRange{{80, 80}, {443, 443}, {8000, 8080}},
			Advertise: Advertise{MSS4: 1460, MSS6: 1440, WScale: 7, SACK: true, Timestamps: true, Window: 65535},
			Limit:     SourceLimit{Rate: PerSecond(100), Burst: 200, Prefix4: 32, Prefix6: 64},
		}},
		Tables:       Tables{1024, 16, 1 << 20, 3 * time.Second, 2 * time.Minute, 2 * time.Second, 15 * time.Second},
		Cookies:      Cookies{Period: 15 * time.Second},
		Limits:       Limits{SynAckRate: Rate{1000, time.Minute}, SynAckBurst: 50000},
		Allow:        []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("2001:db8:1::/48")},
		Deny:         []netip.Prefix{netip.MustParsePrefix("198.18.200.7/32")},
		InvalidFlags: InvalidFlagsCount,
		Queue:        Queue{Numbers: []uint16{2, 3, 4}, MaxLen: 65536, SYNQueues: 1, FailOpen: true},
	}
	if d := cmp.Diff(want, p, cmpPolicy...); d != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", d)
	}
	roundTrip(t, p)
	for _, c := range []struct {
		addr        string
		allow, deny bool
	}{
		{"198.18.1.9", true, false}, {"2001:db8:1:ff::1", true, false}, {"198.18.200.7", false, true},
		{"198.18.200.8", false, false}, {"::ffff:198.18.1.9", true, false},
	} {
		a := netip.MustParseAddr(c.addr)
		if p.Allowed(a) != c.allow || p.Denied(a) != c.deny {
			t.Errorf("Allowed/Denied(%s) = %t/%t, want %t/%t", c.addr, p.Allowed(a), p.Denied(a), c.allow, c.deny)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // every one must appear in the error
	}{
		{"mss out of range", strings.Replace(base, "mss: 1460", "mss: 70000", 1),
			[]string{"web.yaml:8: services[0].advertise.mss: 70000 out of range (allowed 536..65535)"}},
		{"unknown top key", base + "colour: blue\n",
			[]string{"web.yaml:12: colour: unknown field (allowed: version, services,"}},
		{"unknown service key", strings.Replace(base, "    mode: proxy", "    mode: proxy\n    modes: proxy", 1),
			[]string{"web.yaml:7: services[0].modes: unknown field (allowed: name, addresses, ports, mode, advertise, limits)"}},
		{"wrong type bool", strings.Replace(base, "wscale: 7", "wscale: 7\n      sack: yes", 1),
			[]string{`web.yaml:10: services[0].advertise.sack: "yes" is not a boolean (want true or false)`}},
		{"wrong type mapping", strings.Replace(base, "    advertise:\n      mss: 1460\n      wscale: 7\n", "    advertise: 1460\n", 1),
			[]string{`web.yaml:7: services[0].advertise: got "1460", want a mapping`}},
		{"wrong type list for scalar", base + "invalid_flags: [drop]\n",
			[]string{"web.yaml:12: invalid_flags: got a list, want drop or count"}},
		{"bad mode", strings.Replace(base, "mode: proxy", "mode: bounce", 1),
			[]string{`web.yaml:6: services[0].mode: "bounce" is not allowed (allowed proxy, pass, drop)`}},
		{"port zero", strings.Replace(base, "[80, 443,", "[0, 443,", 1),
			[]string{"web.yaml:5: services[0].ports[0]: 0 out of range (allowed 1..65535)"}},
		{"port too big", strings.Replace(base, "[80, 443,", "[80, 65536,", 1),
			[]string{"web.yaml:5: services[0].ports[1]: 65536 out of range (allowed 1..65535)"}},
		{"port range reversed", strings.Replace(base, "8000-8080", "8080-8000", 1),
			[]string{"web.yaml:5: services[0].ports[2]: 8080-8000 is not a range (want low <= high)"}},
		{"port not a number", strings.Replace(base, "[80, 443,", "[http, 443,", 1),
			[]string{`web.yaml:5: services[0].ports[0]: "http" is not a number or a range N-M`}},
		{"bad address", strings.Replace(base, "198.18.3.2/32", "198.18.3.256/32", 1),
			[]string{`web.yaml:4: services[0].addresses[0]: "198.18.3.256/32" is not an IPv4/IPv6 address or prefix`}},
		{"host bits", strings.Replace(base, "198.18.3.2/32", "198.18.3.2/24", 1),
			[]string{"web.yaml:4: services[0].addresses[0]: 198.18.3.2/24 has bits set after the prefix length (did you mean 198.18.3.0/24?)"}},
		{"prefix4 out of range", strings.Replace(base, "prefix4: 32", "prefix4: 8", 1),
			[]string{"web.yaml:11: services[0].limits.syn_per_source.prefix4: 8 out of range (allowed 16..32)"}},
		{"prefix6 out of range", strings.Replace(base, "prefix6: 64", "prefix6: 129", 1),
			[]string{"web.yaml:11: services[0].limits.syn_per_source.prefix6: 129 out of range (allowed 48..128)"}},
		{"bad rate", strings.Replace(base, "rate: 100/s", "rate: 100/d", 1),
			[]string{`web.yaml:11: services[0].limits.syn_per_source.rate: "100/d" is not a rate: unit "d" (allowed /s, /m, /h)`}},
		{"wscale 15", strings.Replace(base, "wscale: 7", "wscale: 15", 1),
			[]string{"web.yaml:9: services[0].advertise.wscale: 15 out of range (allowed 0..14)"}},
		{"cache buckets not power of two", base + "tables:\n  cache_buckets: 500\n",
			[]string{"web.yaml:13: tables.cache_buckets: 500 is not a power of two in range (allowed 1..1Mi)"}},
		{"cache buckets too big", base + "tables:\n  cache_buckets: 2Mi\n",
			[]string{"web.yaml:13: tables.cache_buckets: 2Mi out of range (allowed 1..1Mi)"}},
		{"cache entries", base + "tables:\n  cache_entries: 65\n",
			[]string{"web.yaml:13: tables.cache_entries: 65 out of range (allowed 1..64)"}},
		{"flows", base + "tables:\n  flows: 100\n",
			[]string{"web.yaml:13: tables.flows: 100 out of range (allowed 1024..16Mi)"}},
		{"flows size syntax", base + "tables:\n  flows: 64KB\n",
			[]string{`web.yaml:13: tables.flows: "64KB" is not a count (want e.g. 4096, 64Ki, 1Mi, 50k)`}},
		{"handshake timeout", base + "tables:\n  handshake_timeout: 2m\n",
			[]string{"web.yaml:13: tables.handshake_timeout: 2m out of range (allowed 1s..1m)"}},
		{"idle timeout", base + "tables:\n  idle_timeout: 5s\n",
			[]string{"web.yaml:13: tables.idle_timeout: 5s out of range (allowed 10s..24h)"}},
		{"linger", base + "tables:\n  linger: soon\n",
			[]string{`web.yaml:13: tables.linger: "soon" is not a duration (want e.g. 500ms, 30s, 2m, 1h)`}},
		{"cookie period", base + "cookies:\n  period: 10m\n",
			[]string{"web.yaml:13: cookies.period: 10m out of range (allowed 5s..5m)"}},
		{"synack burst", base + "limits: {synack_rate: 5k/s, synack_burst: 0}\n",
			[]string{"web.yaml:12: limits.synack_burst: 0 out of range (allowed 1..16Mi)"}},
		{"queue fail", base + "queue: {fail: maybe}\n",
			[]string{`web.yaml:12: queue.fail: "maybe" is not allowed (allowed closed, open)`}},
		{"queue max_len", base + "queue: {max_len: 4}\n",
			[]string{"web.yaml:12: queue.max_len: 4 out of range (allowed 16..1Mi)"}},
		{"queue repeated", base + "queue: {numbers: [1, \"0-2\"]}\n",
			[]string{"web.yaml:12: queue.numbers: queue numbers repeat"}},
		{"version", strings.Replace(base, "version: 1", "version: 2", 1),
			[]string{`web.yaml:1: version: "2" is not supported (allowed 1)`}},
		{"no version", strings.Replace(base, "version: 1\n", "", 1),
			[]string{"web.yaml: version: required"}},
		{"no addresses", strings.Replace(base, "    addresses: [198.18.3.2/32, \"2001:db8:3::2/128\"]\n", "", 1),
			[]string{"web.yaml:3: services[0].addresses: at least one address or prefix is required"}},
		{"repeated key", strings.Replace(base, "    mode: proxy", "    mode: proxy\n    mode: pass", 1),
			[]string{"web.yaml:7: services[0].mode: repeated field (first at line 6)"}},
		{"yaml syntax", "version: 1\nservices: [\n", []string{"web.yaml:2: did not find expected node content"}},
		{"empty", "", []string{"web.yaml: empty policy"}},
		{"several errors at once", strings.Replace(strings.Replace(base, "mss: 1460", "mss: 70000", 1), "wscale: 7", "wscale: 15", 1),
			[]string{"web.yaml:8: services[0].advertise.mss: 70000", "web.yaml:9: services[0].advertise.wscale: 15"}},
		{"duplicate names", base + `  - name: web
    addresses: [198.18.4.0/24]
    ports: [22]
`, []string{`web.yaml:12: services[1].name: "web" is also the name of services[0] (web.yaml:3)`}},
		{"overlap", base + `  - name: api
    addresses: [198.18.3.0/24]
    ports: ["8080-9000"]
`, []string{`web.yaml:12: services[1]: service "api" overlaps service "web" (web.yaml:3): 198.18.3.0/24 and 198.18.3.2/32 share ports 8080`}},
		{"overlap v6", base + `  - name: api6
    addresses: ["2001:db8::/32"]
    ports: ["1-100"]
`, []string{`web.yaml:12: services[1]: service "api6" overlaps service "web" (web.yaml:3): 2001:db8::/32 and 2001:db8:3::2/128 share ports 80`}},
		{"overlap within service", strings.Replace(base, "\"2001:db8:3::2/128\"]", "198.18.3.0/28]", 1),
			[]string{"web.yaml:4: services[0].addresses[1]: 198.18.3.0/28 overlaps 198.18.3.2/32 (web.yaml:4) of the same service"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("web.yaml", []byte(tt.text))
			if err == nil {
				t.Fatalf("Parse(%s) = %v, nil; want an error", tt.name, p)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse error =\n%v\nwant it to contain\n%s", err, w)
				}
			}
		})
	}
}

// TestNoOverlapAcrossPorts: the same prefix may carry several services on
// disjoint ports, and nested prefixes may too.
func TestNoOverlapAcrossPorts(t *testing.T) {
	text := base + `  - name: ssh
    addresses: [198.18.3.2/32]
    ports: [22]
    mode: pass
  - name: rest
    addresses: [198.18.0.0/15]
    ports: ["9000-9100"]
    mode: drop
`
	p, err := Parse("ok.yaml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	for _, c := range []struct {
		addr string
		port uint16
		want string
	}{{"198.18.3.2", 22, "ssh"}, {"198.18.3.2", 443, "web"}, {"198.19.3.2", 9000, "rest"}, {"198.18.3.2", 9100, "rest"}} {
		s := lookup(p, netip.MustParseAddr(c.addr), c.port)
		if s == nil || s.Name != c.want {
			t.Errorf("LookupIP(%s, %d) = %v, want %s", c.addr, c.port, s, c.want)
		}
	}
	roundTrip(t, p)
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	open := filepath.Join(dir, "open.key")
	for f, mode := range map[string]os.FileMode{good: 0o600, open: 0o644} {
		if err := os.WriteFile(f, []byte("0123456789abcdef0123456789abcdef"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		file string
		want string // "" for no error
	}{
		{good, ""},
		{open, fmt.Sprintf("web.yaml:13: cookies.key_file: %s is accessible by group or others (mode 0644; want 0600 or stricter)", open)},
		{filepath.Join(dir, "missing.key"), "web.yaml:13: cookies.key_file: stat " + filepath.Join(dir, "missing.key") + ": no such file or directory"},
		{dir, "web.yaml:13: cookies.key_file: " + dir + " is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			p, err := Parse("web.yaml", []byte(base+"cookies:\n  key_file: "+tt.file+"\n"))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse with key file %s: %v", tt.file, err)
				}
				if p.Cookies.KeyFile != tt.file {
					t.Errorf("Cookies.KeyFile = %q, want %q", p.Cookies.KeyFile, tt.file)
				}
				roundTrip(t, p)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse with key file %s: error %v, want %q", tt.file, err, tt.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	pf := netip.MustParsePrefix
	tests := []struct {
		name string
		svcs []*Service
		t    Tables
		want string
	}{
		{"no mode", []*Service{{Name: "a", Prefixes: []netip.Prefix{pf("198.18.3.0/24")}, PortLo: 1, PortHi: 2}}, Tables{},
			"services[0].mode: invalid mode 0 (allowed proxy, pass, drop)"},
		{"port zero", []*Service{{Name: "a", Mode: ModeProxy, Prefixes: []netip.Prefix{pf("198.18.3.0/24")}}}, Tables{},
			"services[0].ports[0]: 0-0 is not a port range (allowed 1..65535, low <= high)"},
		{"wscale", []*Service{{Name: "a", Mode: ModeProxy, Prefixes: []netip.Prefix{pf("198.18.3.0/24")}, PortLo: 1, PortHi: 1, Advertise: Advertise{WScale: 15}}}, Tables{},
			"services[0].advertise.wscale: 15 out of range (allowed 0..14 or none)"},
		{"mapped prefix", []*Service{{Name: "a", Mode: ModeProxy, Prefixes: []netip.Prefix{pf("::ffff:198.18.3.0/120")}, PortLo: 1, PortHi: 1}}, Tables{},
			"services[0].addresses[0]: ::ffff:198.18.3.0/120 is an IPv4-mapped IPv6 prefix; write it as IPv4"},
		{"overlap", []*Service{
			{Name: "a", Mode: ModeProxy, Prefixes: []netip.Prefix{pf("198.18.3.0/24")}, PortLo: 1, PortHi: 100},
			{Name: "b", Mode: ModeProxy, Prefixes: []netip.Prefix{pf("198.18.3.7/32")}, PortLo: 100, PortHi: 200},
		}, Tables{}, `services[1]: service "b" overlaps service "a": 198.18.3.7/32 and 198.18.3.0/24 share ports 100`},
		{"cache buckets", nil, Tables{CacheBuckets: 3}, "tables.cache_buckets: 3 is not a power of two in range (allowed 1..1Mi)"},
		{"flows", nil, Tables{Flows: 17 << 20}, "tables.flows: 17825792 out of range (allowed 1024..16Mi)"},
		{"linger", nil, Tables{Linger: time.Hour}, "tables.linger: 1h out of range (allowed 1s..5m)"},
		{"cookie period", nil, Tables{CookiePeriod: time.Second}, "cookies.period: 1s out of range (allowed 5s..5m)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.svcs, tt.t)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseUnits(t *testing.T) {
	counts := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"4096", 4096, true}, {"64Ki", 64 << 10, true}, {"1Mi", 1 << 20, true}, {"50k", 50000, true},
		{"2M", 2e6, true}, {"1Gi", 1 << 30, true}, {"", 0, false}, {"Ki", 0, false}, {"-1", 0, false},
		{"1.5k", 0, false}, {"10 Ki", 0, false}, {"64KB", 0, false},
	}
	for _, c := range counts {
		got, err := ParseCount(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseCount(%q) = %d, %v; want %d, ok=%t", c.in, got, err, c.want, c.ok)
		}
	}
	rates := []struct {
		in   string
		want Rate
		ok   bool
	}{
		{"100/s", Rate{100, time.Second}, true}, {"5k/s", Rate{5000, time.Second}, true},
		{"1000/m", Rate{1000, time.Minute}, true}, {"60/h", Rate{60, time.Hour}, true},
		{"none", Rate{}, true}, {"0/s", Rate{}, false}, {"100", Rate{}, false}, {"100/d", Rate{}, false}, {"x/s", Rate{}, false},
	}
	for _, c := range rates {
		got, err := ParseRate(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v, ok=%t", c.in, got, err, c.want, c.ok)
		}
		if back, err := ParseRate(got.String()); c.ok && (err != nil || back != got) {
			t.Errorf("ParseRate(%q).String() = %q, which parses as %v, %v", c.in, got.String(), back, err)
		}
	}
	for _, c := range []struct {
		r    Rate
		want string
	}{{PerSecond(200000), "200k/s"}, {PerSecond(5000), "5000/s"}, {Rate{1000, time.Minute}, "1000/m"}, {Rate{}, "none"}, {PerSecond(3 << 20), "3Mi/s"}} {
		if got := c.r.String(); got != c.want {
			t.Errorf("%#v.String() = %q, want %q", c.r, got, c.want)
		}
	}
	if got := (Rate{1000, time.Minute}).PerSecond(); got < 16.66 || got > 16.67 {
		t.Errorf("1000/m PerSecond() = %v, want 16.67", got)
	}
	durs := []struct {
		in   string
		want time.Duration
		ok   bool
	}{{"30s", 30 * time.Second, true}, {"2m", 2 * time.Minute, true}, {"1h30m", 90 * time.Minute, true}, {"500ms", 500 * time.Millisecond, true}, {"-1s", 0, false}, {"30", 0, false}}
	for _, c := range durs {
		got, err := ParseDuration(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%t", c.in, got, err, c.want, c.ok)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{90 * time.Minute, "90m"}, {10 * time.Minute, "10m"}, {time.Hour, "1h"}, {1500 * time.Millisecond, "1500ms"}} {
		if got := formatDuration(c.d); got != c.want {
			t.Errorf("formatDuration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

// TestSYNQueues: how many queues take the clients' SYNs, from a file.
func TestSYNQueues(t *testing.T) {
	tests := []struct {
		queue   string
		want    int
		wantErr string // substring of the error; "" for none
	}{
		{"", 2, ""}, // default: four queues, half of them
		{`queue: {numbers: "0-3", syn_queues: half}`, 2, ""},
		{`queue: {numbers: "0-4"}`, 2, ""},
		{`queue: {numbers: "5"}`, 0, ""}, // one queue: shared
		{`queue: {numbers: "0-1"}`, 1, ""},
		{`queue: {numbers: "0-3", syn_queues: 3}`, 3, ""},
		{`queue: {numbers: "0-3", syn_queues: 1}`, 1, ""},
		{`queue: {numbers: "0-3", syn_queues: 4}`, 0, "web.yaml:12: queue.syn_queues: 4 out of range (allowed 1..3 with 4 queues, or half)"},
		{`queue: {numbers: "7", syn_queues: 1}`, 0, "queue.syn_queues: 1: SYN queues of their own need at least two queue numbers"},
		{`queue: {syn_queues: 0}`, 0, "queue.syn_queues"},
		{`queue: {syn_queues: most}`, 0, "queue.syn_queues"},
	}
	for _, tt := range tests {
		t.Run(tt.queue, func(t *testing.T) {
			p, err := Parse("web.yaml", []byte(base+tt.queue+"\n"))
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Parse(%q) = %v, want an error containing %q", tt.queue, err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Parse(%q) = %v", tt.queue, err)
			case tt.wantErr == "" && p.Queue.SYNQueues != tt.want:
				t.Errorf("Parse(%q).Queue.SYNQueues = %d, want %d", tt.queue, p.Queue.SYNQueues, tt.want)
			}
		})
	}
}
