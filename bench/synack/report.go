package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/synwall/synwall/bench/internal/host"
	"github.com/synwall/synwall/deploy/lab"
)

// extra is r's CPU per SYN-ACK above the baseline of its run.
func (f fixedRun) extra(r lab.SynResult) (time.Duration, bool) {
	base, ok := f.find(lab.NameDrop)
	if !ok || r.Defense.Kind == lab.DefenseDrop {
		return 0, false
	}
	return lab.ExtraCPUPerSynAck(r, base, minAnswered)
}

// taskExtra is r's exact task CPU per SYN-ACK above the baseline of its run.
func (f fixedRun) taskExtra(r lab.SynResult) (time.Duration, bool) {
	base, ok := f.find(lab.NameDrop)
	if !ok || r.Defense.Kind == lab.DefenseDrop {
		return 0, false
	}
	return lab.ExtraTaskCPUPerSynAck(r, base, minAnswered)
}

// taskRatio is r's task CPU per SYN-ACK over SYNPROXY's in the same run.
func (f fixedRun) taskRatio(r lab.SynResult) (float64, bool) { return f.ratioTo(r, f.taskExtra) }

// ratio is a/b when both are there and b is positive.
func ratio(a, b float64, ok bool) (float64, bool) {
	if !ok || b <= 0 {
		return 0, false
	}
	return a / b, true
}

// extraRatio is r's CPU per SYN-ACK over SYNPROXY's in the same run.
func (f fixedRun) extraRatio(r lab.SynResult) (float64, bool) { return f.ratioTo(r, f.extra) }

// ratioTo is per(r) over per(SYNPROXY's row), for the rows that have a
// ratio: synwall's and the bare bounce.
func (f fixedRun) ratioTo(r lab.SynResult, per func(lab.SynResult) (time.Duration, bool)) (float64, bool) {
	if r.Defense.Kind != lab.DefenseSynwall && r.Defense.Kind != lab.DefenseCustom {
		return 0, false
	}
	sp, ok := f.find(lab.NameSynproxy)
	if !ok {
		return 0, false
	}
	a, ok1 := per(r)
	b, ok2 := per(sp)
	return ratio(float64(a), float64(b), ok1 && ok2)
}

// synAckRatio is r's SYN-ACK rate over SYNPROXY's among rows.
func synAckRatio(rows []lab.SynResult, r lab.SynResult) (float64, bool) {
	sp, ok := find(rows, lab.NameSynproxy)
	if r.Defense.Kind != lab.DefenseSynwall || !ok || !r.Measured() || !sp.Measured() {
		return 0, false
	}
	return ratio(r.AllSynAckPPS(), sp.AllSynAckPPS(), true)
}

func us(d time.Duration) string { return fmt.Sprintf("%.2f µs", float64(d)/float64(time.Microsecond)) }

func k(v float64) string {
	if v >= 10_000 {
		return fmt.Sprintf("%.0fk", v/1000)
	}
	if v >= 1000 {
		return fmt.Sprintf("%.1fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func (rep *report) markdown() string {
	var b strings.Builder
	o := rep.o
	fmt.Fprintf(&b, "# SYN path: CPU per SYN-ACK and SYN-ACK rate, kernel SYNPROXY and synwall\n\n")
	fmt.Fprintf(&b, "- Command: `cd bench && %s`\n", or(rep.command, "go run ./synack"))
	fmt.Fprintf(&b, "- Date: %s (%v); commit %s\n", rep.started.UTC().Format("2006-01-02 15:04 MST"), rep.elapsed.Round(time.Second), rep.commit)
	fmt.Fprintf(&b, "- Machine: %s, %d CPUs, kernel %s; shared with other work\n", host.CPUModel(), runtime.NumCPU(), host.Kernel())
	stage := "yes (--syn-stage " + o.stage + ")"
	if !rep.hasStage {
		stage = "no: `synwall run -h` lists no --syn-stage; its rows say " + lab.NotAvailable
	}
	fmt.Fprintf(&b, "- synwall binary has the BPF SYN stage: %s\n", stage)
	fmt.Fprintf(&b, "- Method: one namespace lab (deploy/lab); the generator (bench/synflood) sends spoofed SYNs from random sources of %v / %v to the server's port %d at a fixed rate for %v, %d time(s) per defense (the drop baseline twice as often: first and last); SYN-ACKs are counted where they arrive (the attacker's raw-table rule for SYN-ACKs to the spoofed prefixes); CPU is the whole machine's busy time from /proc/stat over the run, the least busy of the repetitions (other work only adds). *CPU per SYN-ACK* is the run's busy CPU minus the drop baseline's (the gateway drops the spoofed SYNs in raw PREROUTING) for as many packets sent (its CPU per packet × the run's packets: where a defense saturates the machine the generator sends less), divided by the SYN-ACKs. *Task CPU* is the same computed from the CPU time of the flood's tasks (the scheduler's runtime of the generator, whose sends carry the whole path of this veth lab inline, to the µs; the ksoftirqd threads and the synwall daemon, to 10 ms; the repetition of least CPU per packet, with its own counts): this kernel counts busy time by sampling it at each 4 ms tick, and the busy share swings with other work on the machine, which the tasks' runtime hardly holds (softirq work is charged to the task it interrupts: no CONFIG_IRQ_TIME_ACCOUNTING here). Ratios are against kernel SYNPROXY of the same run. The *bare bounce* row is the floor of any kernel SYN stage on this path: a tc program that turns each SYN into a SYN-ACK in place and hands it back through the veth's peer as synwall's stage does here, without cookie, policy or state (bench/internal/bounce).\n",
		lab.SpoofPrefix, lab.SpoofPrefix6, lab.HTTPPort, o.duration, o.repeat)
	if o.quiet > 0 {
		fmt.Fprintf(&b, "- Before each fixed-rate run the harness waited (up to 10 s) for the machine to be less than %.0f%% busy.\n", 100*o.quiet)
	}
	fmt.Fprintf(&b, "- SYNPROXY: %s. synwall: `synwall run` on the embedded default policy (hook forward, fail closed), plus the row's arguments.\n\n", lab.SynproxySetup)

	fmt.Fprintf(&b, "## Fixed offered rate\n\n")
	fmt.Fprintf(&b, "| offered | family | defense | sent/s | SYN-ACKs/s | machine busy (runs) | CPU per SYN-ACK above baseline | × SYNPROXY | task CPU per SYN-ACK above baseline | × SYNPROXY |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, f := range rep.fixed {
		for _, r := range f.Rows {
			name := r.Defense.Name
			if a := strings.Join(r.Defense.SynwallArgs, " "); a != "" {
				name += " (`" + a + "`)"
			}
			if !r.Measured() {
				fmt.Fprintf(&b, "| %s pps | IPv%d | %s | %s | | | | | | |\n", k(float64(f.Rate)), f.Family, name, r.NotMeasured)
				continue
			}
			per, x, tper, tx := "—", "—", "—", "—"
			if r.Defense.Kind == lab.DefenseDrop {
				per, tper = "(baseline)", "(baseline)"
			} else {
				if e, ok := f.extra(r); ok {
					per = us(e)
				}
				if e, ok := f.taskExtra(r); ok {
					tper = us(e)
				}
			}
			if v, ok := f.extraRatio(r); ok {
				x = fmt.Sprintf("%.2f", v)
			} else if r.Defense.Kind == lab.DefenseSynproxy {
				x = "1"
			}
			if v, ok := f.taskRatio(r); ok {
				tx = fmt.Sprintf("%.2f", v)
			} else if r.Defense.Kind == lab.DefenseSynproxy {
				tx = "1"
			}
			var runs []string
			for _, s := range r.BusyShares {
				runs = append(runs, fmt.Sprintf("%.0f", 100*s))
			}
			fmt.Fprintf(&b, "| %s pps | IPv%d | %s | %s | %s | %.0f%% (%s) | %s | %s | %s | %s |\n",
				k(float64(f.Rate)), f.Family, name, k(r.OfferedPPS()), k(r.SynAckPPS()), 100*r.BusyShare(), strings.Join(runs, ", "), per, x, tper, tx)
		}
	}

	fmt.Fprintf(&b, "\n## Saturated machine (IPv4)\n\n")
	fmt.Fprintf(&b, "Two generators at %d pps each plus one `hping3 -S --flood` (from the attacker's own address), %v. SYN-ACKs: every one that reached the attacker. synwall runs the embedded default policy, which caps SYN-ACKs at 200k/s (burst 50k) and each source at 1000 SYNs/s, so hping3's one source is mostly refused; the last row is the BPF stage with both limits off (`limits: {synack_rate: none}`, `syn_per_source: none`), its capacity, as SYNPROXY has no limit.\n\n", o.satRate, o.satDuration)
	fmt.Fprintf(&b, "| defense | offered/s (generators + hping3) | SYN-ACKs/s | machine busy | × SYNPROXY |\n|---|---|---|---|---|\n")
	for _, r := range rep.sat {
		if !r.Measured() {
			fmt.Fprintf(&b, "| %s | %s | | | |\n", r.Defense.Name, r.NotMeasured)
			continue
		}
		x := "—"
		if v, ok := synAckRatio(rep.sat, r); ok {
			x = fmt.Sprintf("%.2f", v)
		} else if r.Defense.Kind == lab.DefenseSynproxy {
			x = "1"
		}
		fmt.Fprintf(&b, "| %s | %s + %s | %s | %.0f%% | %s |\n", r.Defense.Name,
			k(float64(r.Sent)/r.Elapsed.Seconds()), k(float64(r.HpingSent)/r.Elapsed.Seconds()), k(r.AllSynAckPPS()), 100*r.BusyShare(), x)
	}

	fmt.Fprintf(&b, "\n## Legitimate success under two hping3 floods plus the generator (IPv4)\n\n")
	fmt.Fprintf(&b, "Generator at %d pps and two `hping3 -S --flood`, %v, while the client makes %d HTTP connections (GET /small, 10 at a time, 3 s timeout) spread over the flood.\n\n", o.legitRate, o.legitDur, o.conns)
	fmt.Fprintf(&b, "| defense | offered/s (generator + hping3) | SYN-ACKs/s | legitimate ok | connect p50 / p99 |\n|---|---|---|---|---|\n")
	for _, r := range rep.legit {
		if !r.Measured() {
			fmt.Fprintf(&b, "| %s | %s | | | |\n", r.Defense.Name, r.NotMeasured)
			continue
		}
		l := r.Load
		fmt.Fprintf(&b, "| %s | %s + %s | %s | %d/%d (%.1f%%) | %v / %v |\n", r.Defense.Name,
			k(float64(r.Sent)/r.Elapsed.Seconds()), k(float64(r.HpingSent)/r.Elapsed.Seconds()), k(r.AllSynAckPPS()),
			l.OK, l.Attempts, 100*l.SuccessRate(), lab.Round(l.ConnectP50), lab.Round(l.ConnectP99))
	}
	return b.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
