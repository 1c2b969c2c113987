package host

import (
	"strings"
	"testing"
	"time"
)

func TestParseCPUTimes(t *testing.T) {
	text := "cpu  10 2 30 400 5 6 7 8 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n"
	got, err := parseCPUTimes(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if want := (CPUTimes{10, 2, 30, 400, 5, 6, 7, 8}); got != want {
		t.Errorf("parseCPUTimes = %+v, want %+v", got, want)
	}
	if _, err := parseCPUTimes(strings.NewReader("intr 1 2 3\n")); err == nil {
		t.Error("parseCPUTimes without a cpu line: no error")
	}
}

func TestCPUShare(t *testing.T) {
	a := CPUTimes{User: 100, Idle: 900}
	b := CPUTimes{User: 130, Nice: 10, System: 20, SoftIRQ: 15, IRQ: 5, Idle: 1020}
	s := CPUShare(a, b)
	// 200 ticks passed: 40 user, 20 system, 20 softirq+irq, 120 idle.
	if s.User != 0.2 || s.System != 0.1 || s.SoftIRQ != 0.1 || s.Idle != 0.6 {
		t.Errorf("CPUShare = %+v, want user 0.2 system 0.1 softirq 0.1 idle 0.6", s)
	}
	if got := s.Busy(); got < 0.399 || got > 0.401 {
		t.Errorf("Busy() = %v, want 0.4", got)
	}
	if got := CPUShare(b, b).Busy(); got != 0 {
		t.Errorf("Busy() with no time passed = %v, want 0", got)
	}
}

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 5 0\n"
	u, s, err := parseProcStat(42, []byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if u != 2500*time.Millisecond || s != 750*time.Millisecond {
		t.Errorf("parseProcStat = %v, %v, want 2.5s, 750ms", u, s)
	}
	if _, _, err := parseProcStat(42, []byte("42 (x) S 1 2")); err == nil {
		t.Error("short stat line: no error")
	}
}

func TestParseStatusKB(t *testing.T) {
	status := []byte("Name:\tsynwall\nVmHWM:\t   70123 kB\nVmRSS:\t   66464 kB\nThreads:\t9\n")
	tests := []struct {
		field string
		want  uint64
		ok    bool
	}{
		{"VmRSS", 66464, true},
		{"VmHWM", 70123, true},
		{"Threads", 0, false}, // no unit
		{"VmSwap", 0, false},  // absent
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			got, err := parseStatusKB(1, status, tt.field)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseStatusKB(%s) = %d, %v, want %d, ok %v", tt.field, got, err, tt.want, tt.ok)
			}
		})
	}
}
