package main

import (
	"fmt"
	"strings"
	"time"
)

// Goals the report checks against (ARCHITECTURE.md): a SYN flood of one
// hping3 answered almost completely, and a proxied flow at no less than a
// third of the kernel's own forwarding and 10 Gbit/s.
const (
	goalAnswered  = 0.95
	goalDataRatio = 1.0 / 3
	goalDataBPS   = 10e9
)

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func (r *report) markdown() string {
	var b strings.Builder
	m := r.machine
	mode := "full"
	if r.opts.short {
		mode = "short"
	}
	fmt.Fprintf(&b, "# synwall live benchmark (%s mode)\n\n", mode)
	fmt.Fprintf(&b, "- command: `%s`\n", r.command)
	fmt.Fprintf(&b, "- date: %s\n", r.started.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- machine: %d CPUs, %s; kernel %s; %s; commit %s\n", m.NProc, m.CPU, m.Kernel, m.Go, m.Commit)
	fmt.Fprintf(&b, "- load average at start: %s (the machine is shared: other processes compete for its CPUs)\n", m.LoadAvg)
	fmt.Fprintf(&b, "- policy: `%s`%s\n", r.opts.policy, extraArgs(r.opts.args))
	fmt.Fprintf(&b, "- SYN flood: one `hping3 -S --flood -p 80 198.18.3.2` from the attacker namespace, %v; iperf3: client → server, %v, one TCP stream\n\n", r.opts.synFlood, r.opts.iperf)

	if len(r.syn) > 0 {
		fmt.Fprintf(&b, "## SYN path\n\n")
		fmt.Fprintf(&b, "| backend | SYNs offered | offered/s | SYN-ACKs sent | SYN-ACKs/s | answered | ≥ %.2f | queue drops (kernel+socket) | synwall CPU s (usr+sys) | CPU ns/packet | machine CPU during flood |\n", goalAnswered)
		fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|\n")
		for _, s := range r.syn {
			fmt.Fprintf(&b, "| %s | %d | %.0f | %d | %.0f | %.3f | %s | %d+%d | %.2f (%.2f+%.2f) | %.0f | %v |\n",
				s.Backend, s.Offered, s.offeredPPS(), s.Answered, s.answeredPPS(), s.ratio(), yesNo(s.ratio() >= goalAnswered),
				s.QueueDropped, s.UserDropped, s.CPU.Seconds(), s.CPUUser.Seconds(), s.CPUSys.Seconds(), s.cpuPerPacket(), s.Machine)
		}
		fmt.Fprintf(&b, "\nSYN-ACKs sent is the daemon's `events.syn_answered`; queue drops are the deltas of `queue_dropped` and `user_dropped` of /proc/net/netfilter/nfnetlink_queue; CPU is utime+stime of the synwall process (")
		fmt.Fprintf(&b, "%s) over the flood and %v after it, per packet it read from the queue.\n\n", r.syn[0].PIDNote, statsSettle)
	}

	if len(r.data) > 0 {
		var base float64
		for _, d := range r.data {
			if d.Name == "kernel" {
				base = d.BPS
			}
		}
		fmt.Fprintf(&b, "## Data path\n\n")
		fmt.Fprintf(&b, "| run | backend | Gbit/s | ratio to kernel | ≥ 1/3 of kernel | ≥ 10 Gbit/s | flood SYNs alongside | synwall CPU s | packets queued | queue drops (kernel+socket) | machine CPU |\n")
		fmt.Fprintf(&b, "|---|---|---:|---:|---|---|---:|---:|---:|---:|---|\n")
		for _, d := range r.data {
			be, ratio, goalR, goalA, flood, cpu, pk, qd := "-", "1", "-", "-", "-", "-", "-", "-"
			if d.Backend != "" {
				be = d.Backend
				cpu = fmt.Sprintf("%.2f", d.CPU.Seconds())
				pk = fmt.Sprint(d.Packets)
				qd = fmt.Sprintf("%d+%d", d.QueueDropped, d.UserDropped)
			}
			if d.Name != "kernel" && base > 0 {
				ratio = fmt.Sprintf("%.3f", d.BPS/base)
			}
			if d.Backend != "" && base > 0 {
				ratio = fmt.Sprintf("%.3f", d.BPS/base)
				goalR, goalA = yesNo(d.BPS/base >= goalDataRatio), yesNo(d.BPS >= goalDataBPS)
			}
			if d.Flood > 0 {
				flood = fmt.Sprint(d.Flood)
			}
			fmt.Fprintf(&b, "| %s | %s | %.2f | %s | %s | %s | %s | %s | %s | %s | %v |\n", d.Name, be, d.BPS/1e9, ratio, goalR, goalA, flood, cpu, pk, qd, d.Machine)
		}
		fmt.Fprintf(&b, "\nkernel: the gateway forwards without synwall (a); kernel+flood: the same while hping3 floods the server with SYNs (the CPU the flood takes from the machine, as a control); synwall: every packet of the flow passes through synwall (b); synwall+flood: the same while hping3 floods the server with SYNs (c). Machine CPU is /proc/stat over the run, all CPUs together.\n\n")
	}
	fmt.Fprintf(&b, "## Raw numbers (CSV)\n\n```csv\n%s```\n", r.csv())
	return b.String()
}

func extraArgs(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return fmt.Sprintf(", synwall run flags `%s`", strings.Join(a, " "))
}

func (r *report) csv() string {
	var b strings.Builder
	fmt.Fprintln(&b, "phase,backend,seconds,offered,answered,limited,queue_packets,queue_dropped,user_dropped,enobufs,synwall_cpu_s,synwall_cpu_user_s,synwall_cpu_sys_s,bits_per_second,flood_sent,machine_usr,machine_sys,machine_softirq,machine_idle")
	for _, s := range r.syn {
		fmt.Fprintf(&b, "syn,%s,%.3f,%d,%d,%d,%d,%d,%d,%d,%.2f,%.2f,%.2f,,,%.3f,%.3f,%.3f,%.3f\n",
			s.Backend, s.Elapsed.Seconds(), s.Offered, s.Answered, s.Limited, s.Packets, s.QueueDropped, s.UserDropped, s.ENOBUFS,
			s.CPU.Seconds(), s.CPUUser.Seconds(), s.CPUSys.Seconds(), s.Machine.User, s.Machine.System, s.Machine.SoftIRQ, s.Machine.Idle)
	}
	for _, d := range r.data {
		flood := ""
		if d.Flood > 0 {
			flood = fmt.Sprint(d.Flood)
		}
		cpu, pk, qd, ud := "", "", "", ""
		if d.Backend != "" {
			cpu = fmt.Sprintf("%.2f", d.CPU.Seconds())
			pk, qd, ud = fmt.Sprint(d.Packets), fmt.Sprint(d.QueueDropped), fmt.Sprint(d.UserDropped)
		}
		fmt.Fprintf(&b, "iperf-%s,%s,%.3f,,,,%s,%s,%s,,%s,,,%.0f,%s,%.3f,%.3f,%.3f,%.3f\n",
			d.Name, d.Backend, d.Elapsed.Seconds(), pk, qd, ud, cpu, d.BPS, flood, d.Machine.User, d.Machine.System, d.Machine.SoftIRQ, d.Machine.Idle)
	}
	return b.String()
}
