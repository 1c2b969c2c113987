package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCPUTicks(t *testing.T) {
	tests := []struct {
		name, in string
		want     CPUTicks
		ok       bool
	}{
		{"two cores", "cpu  100 5 50 1000 20 3 7 2 0 0\ncpu0 50 2 25 500 10 1 3 1 0 0\n", CPUTicks{Busy: 100 + 5 + 50 + 3 + 7 + 2, Total: 100 + 5 + 50 + 3 + 7 + 2 + 1000 + 20}, true},
		{"no cpu line", "cpu0 1 2 3 4 5 6 7 8\nintr 5\n", CPUTicks{}, false},
		{"bad number", "cpu  1 2 x 4 5 6 7 8\n", CPUTicks{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPUTicks(strings.NewReader(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("parseCPUTicks(%q) error %v, want ok %v", tt.in, err, tt.ok)
			}
			if got != tt.want {
				t.Errorf("parseCPUTicks(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
	if _, err := ReadCPUTicks(); err != nil {
		t.Errorf("ReadCPUTicks() = %v", err)
	}
}

func TestParseRuleCounter(t *testing.T) {
	out := `Chain PREROUTING (policy ACCEPT 12 packets, 720 bytes)
    pkts      bytes target     prot opt in     out     source               destination
   60000  2400000            6    --  *      *       0.0.0.0/0            198.19.0.0/16        tcp flags:0x12/0x12 /* lab: SYN-ACKs to the spoofed sources */
   60051  2402040 DROP       6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp flags:0x12/0x12 /* lab: attacker stays silent */
`
	for _, tt := range []struct {
		match string
		want  uint64
		ok    bool
	}{
		{spoofComment, 60000, true},
		{attackerComment, 60051, true},
		{"no such rule", 0, false},
	} {
		got, err := parseRuleCounter(out, tt.match)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseRuleCounter(%q) = %d, %v; want %d, ok %v", tt.match, got, err, tt.want, tt.ok)
		}
	}
}

func TestExtraCPUPerSynAck(t *testing.T) {
	// The baseline: 2 CPU-s for 100k packets, 20 µs each.
	base := SynResult{Sent: 100_000, Busy: 2 * time.Second, Window: 10 * time.Second}
	tests := []struct {
		name   string
		r      SynResult
		want   time.Duration
		wantOK bool
	}{
		// 3 CPU-s above the baseline's 2 for 100k SYN-ACKs: 30 µs each.
		{"above", SynResult{Sent: 100_000, SynAcks: 100_000, Busy: 5 * time.Second, Window: 10 * time.Second}, 30 * time.Microsecond, true},
		// A saturated machine slowed the generator to half: the baseline
		// counts for half as many packets, 1 CPU-s; 3 more for 50k.
		{"fewer sent", SynResult{Sent: 50_000, SynAcks: 50_000, Busy: 4 * time.Second, Window: 10 * time.Second}, 60 * time.Microsecond, true},
		{"hping3 counts", SynResult{Sent: 50_000, HpingSent: 50_000, SynAcks: 100_000, Busy: 2 * time.Second, Window: 10 * time.Second}, 0, true},
		{"below the noise", SynResult{Sent: 100_000, SynAcks: 100_000, Busy: time.Second, Window: 10 * time.Second}, -10 * time.Microsecond, true},
		{"answers too little", SynResult{Sent: 100_000, SynAcks: 50, Busy: 5 * time.Second, Window: 10 * time.Second}, 0, false},
		{"nothing", SynResult{Sent: 100_000, Window: 10 * time.Second}, 0, false},
		{"not measured", SynResult{NotMeasured: NotAvailable}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ExtraCPUPerSynAck(tt.r, base, 0.01)
			if ok != tt.wantOK || (got-tt.want).Abs() > time.Nanosecond {
				t.Errorf("ExtraCPUPerSynAck(%+v) = %v, %v; want %v, %v", tt.r, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestExtraTaskCPUPerSynAck(t *testing.T) {
	// The baseline's tasks: 2 CPU-s for 100k packets, 20 µs each.
	base := SynResult{Sent: 90_000, TaskCPU: TaskCPU{Generators: 2 * time.Second, Sent: 100_000}}
	tests := []struct {
		name   string
		r      SynResult
		want   time.Duration
		wantOK bool
	}{
		// 2.5 + 0.2 + 0.3 CPU-s of tasks, 2 of them the baseline's: 10 µs.
		// The counts are the task run's, not the row's.
		{"above", SynResult{Sent: 1, SynAcks: 1, TaskCPU: TaskCPU{2500 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 100_000, 100_000}}, 10 * time.Microsecond, true},
		// Half as many sent: the baseline counts for 1 CPU-s.
		{"fewer sent", SynResult{Sent: 100_000, SynAcks: 100_000, TaskCPU: TaskCPU{Generators: 1500 * time.Millisecond, Sent: 50_000, SynAcks: 50_000}}, 10 * time.Microsecond, true},
		// hping3's CPU is not measured: no figure.
		{"hping3", SynResult{Sent: 50_000, HpingSent: 50_000, SynAcks: 100_000, TaskCPU: TaskCPU{Generators: 3 * time.Second, Sent: 50_000, SynAcks: 100_000}}, 0, false},
		{"answers too little", SynResult{Sent: 100_000, SynAcks: 50, TaskCPU: TaskCPU{Generators: 3 * time.Second, Sent: 100_000, SynAcks: 50}}, 0, false},
		{"not measured", SynResult{NotMeasured: NotAvailable}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ExtraTaskCPUPerSynAck(tt.r, base, 0.01)
			if ok != tt.wantOK || (got-tt.want).Abs() > time.Nanosecond {
				t.Errorf("ExtraTaskCPUPerSynAck(%+v) = %v, %v; want %v, %v", tt.r, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestLessTaskCPU keeps the run of least CPU per packet, with its counts.
func TestLessTaskCPU(t *testing.T) {
	a := TaskCPU{Generators: time.Second, Sent: 100_000}           // 10 µs per packet
	b := TaskCPU{Generators: 600 * time.Millisecond, Sent: 50_000} // 12 µs: less CPU, more per packet
	if got := lessTaskCPU(a, b); got != a {
		t.Errorf("lessTaskCPU(a, b) = %+v, want a", got)
	}
	if got := lessTaskCPU(b, a); got != a {
		t.Errorf("lessTaskCPU(b, a) = %+v, want a", got)
	}
	if got := lessTaskCPU(TaskCPU{}, b); got != b {
		t.Errorf("lessTaskCPU(empty, b) = %+v, want b", got)
	}
}

// TestParseStatCPU reads utime and stime from /proc/PID/stat lines, a
// command name with spaces and parentheses among them.
func TestParseStatCPU(t *testing.T) {
	for _, tt := range []struct {
		line string
		want time.Duration
	}{
		{"4242 (synflood) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 3 0 100 0 0", 1750 * time.Millisecond},
		{"7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 0 0", 70 * time.Millisecond},
		{"garbage", 0},
		{"1 (x) S 1 2", 0},
	} {
		if got := parseStatCPU(tt.line); got != tt.want {
			t.Errorf("parseStatCPU(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
	// This process, after spinning for 60 ms, has used at least 20 ms.
	for end := time.Now().Add(60 * time.Millisecond); time.Now().Before(end); {
	}
	if got, err := pidCPU(os.Getpid()); err != nil || got < 20*time.Millisecond {
		t.Errorf("pidCPU(self) = %v, %v after 60 ms of spinning, want at least 20 ms", got, err)
	}
	if got, err := pidCPU(-1); err == nil {
		t.Errorf("pidCPU(-1) = %v, want an error", got)
	}
}

// TestSynwallHasFlag runs stand-ins for synwall that print a flag list
// the way Go's flag package does.
func TestSynwallHasFlag(t *testing.T) {
	dir := t.TempDir()
	script := func(name, help string) string {
		p := filepath.Join(dir, name)
		body := "#!/bin/sh\n[ \"$1 $2\" = \"run -h\" ] || exit 9\ncat >&2 <<'X'\n" + help + "X\nexit 2\n"
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	with := script("with", "Usage of run:\n  -hook string\n    \thook (default \"forward\")\n  -syn-stage string\n    \tBPF SYN stage: auto, tc, xdp or off (default \"auto\")\n")
	without := script("without", "Usage of run:\n  -hook string\n    \tthe -syn-stage flag is mentioned in a text only\n")
	ctx := context.Background()
	for _, tt := range []struct {
		bin  string
		want bool
	}{{with, true}, {without, false}} {
		got, err := SynwallHasFlag(ctx, tt.bin, SynStageFlag)
		if err != nil || got != tt.want {
			t.Errorf("SynwallHasFlag(%s) = %v, %v; want %v", filepath.Base(tt.bin), got, err, tt.want)
		}
	}
	if _, err := SynwallHasFlag(ctx, filepath.Join(dir, "missing"), SynStageFlag); err == nil {
		t.Error("SynwallHasFlag(missing binary) = nil error, want one")
	}
}

func TestStandardDefenses(t *testing.T) {
	names := func(ds []Defense) []string {
		var n []string
		for _, d := range ds {
			n = append(n, d.Name+" "+strings.Join(d.SynwallArgs, " "))
		}
		return n
	}
	if d := cmp.Diff([]string{NameDrop + " ", NameNone + " ", NameSynproxy + " ", NameNFQueue + " --syn-stage off", NameBPF + " --syn-stage tc --syn-stage-if cli0,atk0"},
		names(StandardDefenses(true, "tc", true))); d != "" {
		t.Errorf("StandardDefenses(with none, tc, has stage) (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{NameDrop + " ", NameSynproxy + " ", NameNFQueue + " ", NameBPF + " --syn-stage xdp --syn-stage-if cli0,atk0"},
		names(StandardDefenses(false, "xdp", false))); d != "" {
		t.Errorf("StandardDefenses(no none, xdp, no stage) (-want +got):\n%s", d)
	}
}
