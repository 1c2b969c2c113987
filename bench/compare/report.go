package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/synwall/synwall/bench/internal/host"
	"github.com/synwall/synwall/deploy/lab"
)

type report struct {
	o             options
	started       time.Time
	command       string
	results       []result
	synproxyRules []string
}

func (rep *report) find(name string) (result, bool) {
	for _, r := range rep.results {
		if r.Name == name {
			return r, true
		}
	}
	return result{}, false
}

func (rep *report) markdown() string {
	var b strings.Builder
	o := rep.o
	fmt.Fprintf(&b, "# SYN-flood defenses compared\n\n")
	fmt.Fprintf(&b, "- Machine: %d × %s, Linux %s, %s, commit %s\n", runtime.NumCPU(), host.CPUModel(), host.Kernel(), runtime.Version(), host.GitCommit())
	fmt.Fprintf(&b, "- Date: %s\n", rep.started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- Command (as root, from bench/): `%s`\n", rep.command)
	fmt.Fprintf(&b, "- Workload per defense, in one namespace lab (deploy/lab): %s (one source, 198.18.2.2) and `bench/synflood` at %d pps (random sources in 198.19.0.0/16, MSS/SACK/TS/wscale options) against %s for %v, while the client makes %d HTTP connections (GET /small, 10 at a time, 3 s timeout) spread over the flood.\n\n",
		hpingWords(o.hpings), o.rate, "198.18.3.2:80", o.flood, o.conns)

	fmt.Fprintf(&b, "| defense | flood sent/s | SYN-ACKs/s (own counter) | SYN-ACKs/s at attacker | handshakes | legit ok | connect p50 | connect p99 | machine CPU busy | synwall CPU | synwall RSS (peak) | drops |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.results {
		own := "—"
		if r.HasSynAcks {
			own = fmt.Sprintf("%.0f", r.rate(r.SynAcks))
		}
		cpu, rss := "—", "—"
		if r.Synwall {
			cpu = fmt.Sprintf("%.0f%% of a core", 100*r.SynwallCPU.Seconds()/r.Elapsed.Seconds())
			rss = fmt.Sprintf("%.1f MiB (%.1f)", float64(r.RSSkB)/1024, float64(r.HWMkB)/1024)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %.0f | %d | %d/%d (%.0f%%) | %v | %v | %.0f%% | %s | %s | %d |\n",
			r.Name, r.rate(uint64(r.HpingSent+r.GenSent)), own, r.rate(r.AtAttacker), r.Handshakes,
			r.Load.OK, r.Load.Attempts, 100*r.Load.SuccessRate(), lab.Round(r.Load.ConnectP50), lab.Round(r.Load.ConnectP99),
			100*r.Busy, cpu, rss, r.Drops)
	}

	if base, ok := rep.find(dropBaseline); ok {
		fmt.Fprintf(&b, "\n| defense | SYN-ACKs/s at attacker | machine CPU above the drop baseline | CPU per SYN-ACK above the drop baseline |\n|---|---:|---:|---:|\n")
		for _, r := range rep.results {
			if r.Name == dropBaseline || r.AtAttacker == 0 {
				continue
			}
			extra := (r.Busy - base.Busy) * float64(runtime.NumCPU()) * r.Elapsed.Seconds() // CPU-seconds
			fmt.Fprintf(&b, "| %s | %.0f | %.2f cores | %.2f µs |\n", r.Name, r.rate(r.AtAttacker),
				(r.Busy-base.Busy)*float64(runtime.NumCPU()), 1e6*extra/float64(r.AtAttacker))
		}
	}

	sw, ok1 := rep.find("synwall")
	sp, ok2 := rep.find("netfilter SYNPROXY")
	if ok1 && ok2 && sp.SynAcks > 0 && sp.AtAttacker > 0 {
		fmt.Fprintf(&b, "\n**synwall / SYNPROXY SYN-ACK rate: %.2f** (own counters: %.0f / %.0f per second); %.2f as counted at the attacker.\n",
			sw.rate(sw.SynAcks)/sp.rate(sp.SynAcks), sw.rate(sw.SynAcks), sp.rate(sp.SynAcks), sw.rate(sw.AtAttacker)/sp.rate(sp.AtAttacker))
	}

	fmt.Fprintf(&b, "\n## Per defense\n\n")
	for _, r := range rep.results {
		limited := ""
		if r.Synwall {
			limited = fmt.Sprintf(" SYNs refused by rate limits (events.syn_limited): %d.", r.Limited)
		}
		fmt.Fprintf(&b, "- **%s** — %s. Flood: hping3 %d + synflood %d packets in %v. SYN-ACKs: %d (%s), %d at the attacker.%s Handshakes: %d (%s). Drops: %d (%s). Legitimate: %s.\n",
			r.Name, r.Setup, r.HpingSent, r.GenSent, r.Elapsed.Round(time.Millisecond), r.SynAcks, r.SynAckSource, r.AtAttacker,
			limited, r.Handshakes, r.HandshakeSource, r.Drops, r.DropSource, r.Load)
	}
	if len(rep.synproxyRules) > 0 {
		fmt.Fprintf(&b, "\nSYNPROXY rules in the gateway namespace (removed afterwards):\n\n```\n%s\n```\n", strings.Join(rep.synproxyRules, "\n"))
	}

	fmt.Fprintf(&b, "\n## How to read it\n\n")
	for _, s := range []string{
		"*flood sent/s*: hping3's (all instances summed) and synflood's own packet counts over the flood's wall time.",
		"*SYN-ACKs/s (own counter)*: what the defense says it answered — synwall's `events.syn_answered`, SYNPROXY's `syn_received` (every SYN it takes gets a cookie SYN-ACK), the server's `TcpExtSyncookiesSent`. Without cookies the server has no such counter (—).",
		"*SYN-ACKs/s at attacker*: an iptables counter in the attacker namespace's raw PREROUTING, before the lab's rule that drops them: every SYN-ACK sent to a flood source, whoever sent it, retransmissions included. It covers the no-defense case and checks the own counters.",
		"*handshakes*: completed three-way handshakes during the phase (server `TcpPassiveOpens`, SYNPROXY `cookie_valid`, synwall `events.handshake`); the flood never completes one, so these are the client's.",
		"*machine CPU busy*: non-idle share of both cores from /proc/stat over the flood (the namespaces share one kernel: the generators, the gateway's forwarding and the server all count). *synwall CPU*: the daemon's utime+stime over the flood.",
		"*CPU per SYN-ACK above the drop baseline*: the machine's busy CPU time over the flood less the drop baseline's (same generator, the gateway dropping the spoofed SYNs), divided by the SYN-ACKs that reached the attacker. Meaningful only while the generators leave CPU idle (`-hping 0` and a -rate the machine carries), and only on a machine nothing else uses.",
		"*drops*: the server's `TcpExtListenDrops` (request and accept queue overflows), SYNPROXY's INVALID drop rule, or synwall's kernel queue drops (`queue_dropped` + `user_dropped`).",
		"synwall runs its embedded default policy, which limits SYNs per source to 1000/s and SYN-ACKs to 200k/s: hping3's single source is mostly limited, the spoofed sources are not.",
	} {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	return b.String()
}

// hpingWords describes the hping3 part of the flood.
func hpingWords(n int) string {
	if n <= 1 {
		return "`hping3 -S --flood`"
	}
	return fmt.Sprintf("%d × `hping3 -S --flood` side by side", n)
}
