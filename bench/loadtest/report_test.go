package main

import (
	"bytes"
	"encoding/csv"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/synwall/synwall/deploy/lab"
)

func fakeReport() *report {
	o := options{rates: []int{10_000, 50_000}, stages: []uint64{1000, 100_000}}
	o.defaults()
	rep := newReport(o)
	for _, d := range o.defenses {
		for i, r := range o.rates {
			p := point{Defense: d, Rate: r, Elapsed: 3 * time.Second, Sent: 3 * r, SynAcks: uint64(3 * r),
				Load: lab.LoadResult{Attempts: 50, OK: 50 - i, ConnectP50: 300 * time.Microsecond, ConnectP99: time.Duration(i+1) * 10 * time.Millisecond},
				Busy: 0.5, HasSynwall: d == defSynwall}
			if p.HasSynwall {
				p.SynAcks /= 2
				p.SynwallCPU, p.RSSkB, p.Drops = 1500*time.Millisecond, 65000, uint64(100*i)
			}
			rep.points = append(rep.points, p)
		}
	}
	rep.memory = []stage{{RSSkB: 60000}, {Sources: 1000, Sent: 1000, RSSkB: 64000, HWMkB: 64000}, {Sources: 100_000, Sent: 100_000, RSSkB: 65000, HWMkB: 66000}}
	return rep
}

func TestReportWrite(t *testing.T) {
	rep := fakeReport()
	dir := t.TempDir()
	if err := rep.write(dir); err != nil {
		t.Fatalf("write: %v", err)
	}
	checkOutputs(t, dir, rep.o)

	sweep := readCSV(t, filepath.Join(dir, sweepCSV))
	// synwall at 50k: half of the SYNs answered, 49 of 50 connected, CPU
	// 0.5 of a core, RSS and drops.
	want := []string{"synwall", "50000", "150000", "3.000", "50000", "25000", "0", "50", "49", "0.9800",
		"0.300", "20.000", "0.500", "0.500", "65000", "100"}
	if d := cmp.Diff(want, sweep[4]); d != "" {
		t.Errorf("sweep.csv row 4 (-want +got):\n%s", d)
	}
	if got := sweep[1][13:]; !cmp.Equal(got, []string{"", "", ""}) {
		t.Errorf("SYNPROXY's synwall columns = %q, want empty", got)
	}
	md := rep.markdown()
	for _, s := range []string{"| 50000 | 0.50 |", "legitimate success under synwall 98.0% (≥ 99%) ✗", "SYN-ACK rate 0.50 (≥ 0.95) ✗",
		"RSS from 1000 to 100000 sources: +1.0 MiB", "growth): ✓"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

// checkOutputs asserts that dir holds a sweep row for every defense and
// rate of o, a memory row for every stage and the baseline, and valid
// PNG plots.
func checkOutputs(t *testing.T, dir string, o options) {
	t.Helper()
	sweep := readCSV(t, filepath.Join(dir, sweepCSV))
	if d := cmp.Diff(sweepHeader, sweep[0]); d != "" {
		t.Errorf("sweep.csv header (-want +got):\n%s", d)
	}
	rows := map[[2]string]bool{}
	for _, r := range sweep[1:] {
		rows[[2]string{r[0], r[1]}] = true
	}
	for _, d := range o.defenses {
		for _, r := range o.rates {
			if k := [2]string{d, strconv.Itoa(r)}; !rows[k] {
				t.Errorf("sweep.csv has no row for %s at %d pps", d, r)
			}
		}
	}
	if got, want := len(sweep)-1, len(o.defenses)*len(o.rates); got != want {
		t.Errorf("sweep.csv has %d rows, want %d", got, want)
	}
	mem := readCSV(t, filepath.Join(dir, memoryCSV))
	if got, want := len(mem)-1, len(o.stages)+1; got != want {
		t.Errorf("memory.csv has %d rows, want %d (a baseline and one per stage)", got, want)
	}
	for _, name := range []string{successPNG, p99PNG, synAcksPNG} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("plot: %v", err)
			continue
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Errorf("%s is not a PNG: %v", name, err)
			continue
		}
		if s := img.Bounds().Size(); s.X < 200 || s.Y < 100 {
			t.Errorf("%s is %v pixels, want a real plot", name, s)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, markdownOut)); err != nil {
		t.Errorf("markdown: %v", err)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return rows
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_memstats_heap_alloc_bytes Number of heap bytes allocated and currently in use.
# TYPE go_memstats_heap_alloc_bytes gauge
go_memstats_heap_alloc_bytes 3.145728e+06
go_memstats_heap_sys_bytes 7.340032e+06
synwall_events_total{event="syn_answered"} 12
`
	got, err := parseMetrics(text)
	if err != nil {
		t.Fatalf("parseMetrics: %v", err)
	}
	want := map[string]float64{"go_memstats_heap_alloc_bytes": 3145728, "go_memstats_heap_sys_bytes": 7340032}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseMetrics (-want +got):\n%s", d)
	}
	for _, bad := range []string{"go_memstats_heap_alloc_bytes 1\n", "go_memstats_heap_alloc_bytes x\ngo_memstats_heap_sys_bytes 1\n"} {
		if _, err := parseMetrics(bad); err == nil {
			t.Errorf("parseMetrics(%q) = nil error, want one", bad)
		}
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		o    options
		ok   bool
	}{
		{"full defaults", options{}, true},
		{"short defaults", options{short: true}, true},
		{"rate zero", options{rates: []int{0}}, false},
		{"stage too long", options{stages: []uint64{10_000_000}, memRate: 100_000}, false},
		{"unknown defense", options{defenses: []string{"none"}}, false},
		{"point too long", options{point: time.Minute}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			o.defaults()
			if err := o.validate(); (err == nil) != tt.ok {
				t.Errorf("validate(%+v) = %v, want ok %v", o, err, tt.ok)
			}
		})
	}
}
