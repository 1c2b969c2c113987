package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/synwall/synwall/bench/internal/host"
)

// Targets of the load test.
const (
	targetSuccess = 0.99 // legitimate success under synwall at the highest rate
	targetRatio   = 0.95 // synwall's SYN-ACK rate over SYNPROXY's
	// RSS is flat when it grew by at most flatBytes or flatShare of the
	// first stage's, whichever is more, from the first to the last stage.
	flatBytes = 8 << 20
	flatShare = 0.10
)

// Names of the files a report writes.
const (
	sweepCSV    = "sweep.csv"
	memoryCSV   = "memory.csv"
	successPNG  = "sweep-success.png"
	p99PNG      = "sweep-p99.png"
	synAcksPNG  = "sweep-synacks.png"
	markdownOut = "LOADTEST.md"
)

type report struct {
	o                options
	started          time.Time
	loadStart        string
	loadEnd          string
	command          string
	points           []point
	memory           []stage
	synproxyRules    []string
	cpu, kernel, goV string
	commit           string
	nproc            int
}

func newReport(o options) *report {
	return &report{
		o: o, started: time.Now(), loadStart: loadAvg(),
		cpu: host.CPUModel(), kernel: host.Kernel(), goV: runtime.Version(), nproc: runtime.NumCPU(),
		commit:  host.GitCommit(),
		command: "go run ./loadtest",
	}
}

// write puts the CSVs, plots and markdown into dir.
func (rep *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(dir, sweepCSV), rep.sweepRows()); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(dir, memoryCSV), rep.memoryRows()); err != nil {
		return err
	}
	if err := rep.plots(dir); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, markdownOut), []byte(rep.markdown()), 0o644)
}

func writeCSV(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.WriteAll(rows)
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var sweepHeader = []string{"defense", "rate_pps", "sent", "elapsed_s", "sent_pps", "synacks_per_s", "synacks_at_attacker_per_s",
	"legit_attempts", "legit_ok", "legit_success", "connect_p50_ms", "connect_p99_ms", "cpu_busy",
	"synwall_cpu_cores", "synwall_rss_kb", "queue_drops"}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) }

func (rep *report) sweepRows() [][]string {
	rows := [][]string{sweepHeader}
	for _, p := range rep.points {
		f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
		r := []string{p.Defense, strconv.Itoa(p.Rate), strconv.Itoa(p.Sent), f(p.Elapsed.Seconds(), 3), f(p.SentPPS(), 0),
			f(p.SynAckPPS(), 0), f(perSecond(p.AtAttacker, p.Elapsed), 0),
			strconv.Itoa(p.Load.Attempts), strconv.Itoa(p.Load.OK), f(p.Load.SuccessRate(), 4),
			ms(p.Load.ConnectP50), ms(p.Load.ConnectP99), f(p.Busy, 3), "", "", ""}
		if p.HasSynwall {
			r[13] = f(p.SynwallCPU.Seconds()/p.Elapsed.Seconds(), 3)
			r[14] = strconv.FormatUint(p.RSSkB, 10)
			r[15] = strconv.FormatUint(p.Drops, 10)
		}
		rows = append(rows, r)
	}
	return rows
}

var memoryHeader = []string{"sources", "sent", "elapsed_s", "syn_answered", "syn_limited", "queue_drops",
	"rss_kb", "hwm_kb", "heap_alloc_kb", "heap_sys_kb"}

func (rep *report) memoryRows() [][]string {
	rows := [][]string{memoryHeader}
	for _, s := range rep.memory {
		u := func(v uint64) string { return strconv.FormatUint(v, 10) }
		rows = append(rows, []string{u(s.Sources), strconv.Itoa(s.Sent), strconv.FormatFloat(s.Elapsed.Seconds(), 'f', 3, 64),
			u(s.Answered), u(s.Limited), u(s.Drops), u(s.RSSkB), u(s.HWMkB), u(s.HeapAlloc >> 10), u(s.HeapSys >> 10)})
	}
	return rows
}

// find returns the point of defense d at rate.
func (rep *report) find(d string, rate int) (point, bool) {
	for _, p := range rep.points {
		if p.Defense == d && p.Rate == rate {
			return p, true
		}
	}
	return point{}, false
}

// rssGrowth is how much synwall's RSS grew from the first flood stage to
// the last, and whether that is flat by the stated bound.
func (rep *report) rssGrowth() (growthkB int64, flat, ok bool) {
	if len(rep.memory) < 3 { // the baseline and two stages at least
		return 0, false, false
	}
	first, last := rep.memory[1], rep.memory[len(rep.memory)-1]
	growthkB = int64(last.RSSkB) - int64(first.RSSkB)
	bound := max(int64(flatBytes>>10), int64(flatShare*float64(first.RSSkB)))
	return growthkB, growthkB <= bound, true
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

func kMiB(kB uint64) string { return fmt.Sprintf("%.1f MiB", float64(kB)/1024) }

func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

func (rep *report) markdown() string {
	var b strings.Builder
	o := rep.o
	fmt.Fprintf(&b, "# Load test: flood-rate sweep and memory under many sources\n\n")
	fmt.Fprintf(&b, "- Machine: %d × %s, Linux %s, %s, commit %s\n", rep.nproc, rep.cpu, rep.kernel, rep.goV, rep.commit)
	fmt.Fprintf(&b, "- Date: %s; load average at the start %s, at the end %s\n", rep.started.UTC().Format("2006-01-02 15:04 UTC"), rep.loadStart, rep.loadEnd)
	fmt.Fprintf(&b, "- Command (as root, from bench/): `%s`\n", rep.command)
	fmt.Fprintf(&b, "- Sweep: per defense and rate, `bench/synflood` from the attacker namespace (random sources in 198.19.0.0/16, routed to it) against 198.18.3.2:80 for %v, while the client makes %d short HTTP connections (GET /small, 10 at a time, 3 s timeout) spread over the flood. Weak server (tcp_max_syn_backlog %d, listen backlog %d) behind either defense.\n",
		o.point, o.conns, synBacklog, listenBacklog)
	fmt.Fprintf(&b, "- Memory: a fresh synwall (embedded default policy), then per stage exactly N distinct (address, port) sources of 198.19.0.0/16, each sending one SYN, at %d pps.\n\n", o.memRate)

	if len(rep.points) > 0 {
		fmt.Fprintf(&b, "## Sweep\n\n")
		fmt.Fprintf(&b, "![legitimate success vs flood rate](%s) ![p99 connect time vs flood rate](%s) ![SYN-ACKs per second vs flood rate](%s)\n\n", successPNG, p99PNG, synAcksPNG)
		fmt.Fprintf(&b, "| defense | target pps | sent pps | SYN-ACKs/s | at attacker/s | legit ok | connect p50 | connect p99 | machine CPU | synwall CPU | synwall RSS | queue drops |\n")
		fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, p := range rep.points {
			swCPU, rss, drops := "—", "—", "—"
			if p.HasSynwall {
				swCPU = fmt.Sprintf("%.0f%% of a core", 100*p.SynwallCPU.Seconds()/p.Elapsed.Seconds())
				rss, drops = kMiB(p.RSSkB), strconv.FormatUint(p.Drops, 10)
			}
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %.0f | %d/%d (%.1f%%) | %s | %s | %.0f%% | %s | %s | %s |\n",
				p.Defense, p.Rate, p.SentPPS(), p.SynAckPPS(), perSecond(p.AtAttacker, p.Elapsed), p.Load.OK, p.Load.Attempts,
				100*p.Load.SuccessRate(), dur(p.Load.ConnectP50), dur(p.Load.ConnectP99), 100*p.Busy, swCPU, rss, drops)
		}
		b.WriteString("\n")
		b.WriteString(rep.ratios())
	}
	if len(rep.memory) > 0 {
		fmt.Fprintf(&b, "## Memory under many sources (synwall)\n\n")
		fmt.Fprintf(&b, "| distinct sources | sent | SYNs answered | limited | queue drops | RSS | peak RSS | Go heap allocated | Go heap from the OS |\n")
		fmt.Fprintf(&b, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range rep.memory {
			name := strconv.FormatUint(s.Sources, 10)
			if s.Sources == 0 {
				name = "before any flood"
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s | %s | %s | %s |\n", name, s.Sent, s.Answered, s.Limited, s.Drops,
				kMiB(s.RSSkB), kMiB(s.HWMkB), kMiB(s.HeapAlloc>>10), kMiB(s.HeapSys>>10))
		}
		if g, flat, ok := rep.rssGrowth(); ok {
			first, last := rep.memory[1], rep.memory[len(rep.memory)-1]
			fmt.Fprintf(&b, "\nRSS from %d to %d sources: %+.1f MiB (%s → %s); flat (≤ max(8 MiB, 10%%) growth): %s\n",
				first.Sources, last.Sources, float64(g)/1024, kMiB(first.RSSkB), kMiB(last.RSSkB), mark(flat))
		}
		b.WriteString("\n")
	}
	if len(rep.synproxyRules) > 0 {
		fmt.Fprintf(&b, "SYNPROXY rules in the gateway namespace (removed afterwards):\n\n```\n%s\n```\n", strings.Join(rep.synproxyRules, "\n"))
	}
	return b.String()
}

// ratios compares synwall with SYNPROXY at every rate both ran, and states
// the targets at the highest.
func (rep *report) ratios() string {
	var b strings.Builder
	var both []int
	for _, r := range rep.o.rates {
		_, ok1 := rep.find(defSynproxy, r)
		_, ok2 := rep.find(defSynwall, r)
		if ok1 && ok2 {
			both = append(both, r)
		}
	}
	if len(both) == 0 {
		return ""
	}
	fmt.Fprintf(&b, "| target pps | synwall / SYNPROXY SYN-ACK rate | SYNPROXY answered share | synwall answered share | legit ok SYNPROXY / synwall |\n")
	fmt.Fprintf(&b, "|---:|---:|---:|---:|---|\n")
	share := func(p point) float64 {
		if p.Sent == 0 {
			return 0
		}
		return float64(p.SynAcks) / float64(p.Sent)
	}
	for _, r := range both {
		sp, _ := rep.find(defSynproxy, r)
		sw, _ := rep.find(defSynwall, r)
		fmt.Fprintf(&b, "| %d | %.2f | %.3f | %.3f | %.1f%% / %.1f%% |\n", r, ratio(sw.SynAckPPS(), sp.SynAckPPS()),
			share(sp), share(sw), 100*sp.Load.SuccessRate(), 100*sw.Load.SuccessRate())
	}
	top := both[len(both)-1]
	sp, _ := rep.find(defSynproxy, top)
	sw, _ := rep.find(defSynwall, top)
	rt := ratio(sw.SynAckPPS(), sp.SynAckPPS())
	fmt.Fprintf(&b, "\nTargets at the highest rate (%d pps): legitimate success under synwall %.1f%% (≥ %.0f%%) %s; synwall / SYNPROXY SYN-ACK rate %.2f (≥ %.2f) %s.\n\n",
		top, 100*sw.Load.SuccessRate(), 100*targetSuccess, mark(sw.Load.SuccessRate() >= targetSuccess), rt, targetRatio, mark(rt >= targetRatio))
	return b.String()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
