// Package synproxy sets up netfilter's SYNPROXY target in the gateway
// namespace of a lab (deploy/lab) as its documentation says, and reads its
// counters, for the benchmark programs that compare defenses.
package synproxy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/synwall/synwall/deploy/lab"
)

// Rules are the rules of the netfilter documentation for a forwarding
// gateway, for the lab server's HTTP port: table, chain, then the match and
// target. The server's SYNs are not tracked (raw PREROUTING CT --notrack),
// INVALID and UNTRACKED packets go to SYNPROXY, and INVALID ones left are
// dropped.
func Rules() [][]string {
	srv, port := lab.ServerV4.String(), strconv.Itoa(lab.HTTPPort)
	return [][]string{
		{"-t", "raw", "PREROUTING", "-p", "tcp", "-m", "tcp", "--syn", "-d", srv, "--dport", port, "-j", "CT", "--notrack"},
		{"-t", "filter", "FORWARD", "-p", "tcp", "-m", "tcp", "-d", srv, "--dport", port,
			"-m", "conntrack", "--ctstate", "INVALID,UNTRACKED",
			"-j", "SYNPROXY", "--sack-perm", "--timestamp", "--wscale", "7", "--mss", "1460"},
		{"-t", "filter", "FORWARD", "-p", "tcp", "-m", "tcp", "-d", srv, "--dport", port,
			"-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"},
	}
}

// Setup names the configuration for reports.
const Setup = "gateway SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460; nf_conntrack_tcp_loose=0"

// RuleArgs turns a rule of Rules into iptables arguments with op ("-A" or
// "-D") before the chain.
func RuleArgs(op string, r []string) []string {
	a := []string{"-w", "10", r[0], r[1], op, r[2]}
	return append(a, r[3:]...)
}

const loose = "net.netfilter.nf_conntrack_tcp_loose"

// Install adds the rules in the lab's gateway and sets
// nf_conntrack_tcp_loose=0. It returns what undoes both (also after ctx
// ends) and the commands it ran, for a report. On error it undoes what it
// did.
func Install(ctx context.Context, l *lab.Lab) (undo func() error, lines []string, err error) {
	var added [][]string
	remove := func() error {
		var errs []error
		// Not tied to ctx: the rules come out also after Ctrl-C.
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i := len(added) - 1; i >= 0; i-- {
			if _, err := l.Exec(c, l.Gateway, "iptables", RuleArgs("-D", added[i])...); err != nil {
				errs = append(errs, err)
			}
		}
		added = nil
		return errors.Join(errs...)
	}
	for _, r := range Rules() {
		if _, err := l.Exec(ctx, l.Gateway, "iptables", RuleArgs("-A", r)...); err != nil {
			return nil, nil, errors.Join(err, remove())
		}
		added = append(added, r)
		lines = append(lines, "iptables "+strings.Join(RuleArgs("-A", r)[2:], " "))
	}
	old, err := lab.Sysctl(l.Gateway, loose)
	if err != nil {
		return nil, nil, errors.Join(err, remove())
	}
	if err := lab.SetSysctl(l.Gateway, loose, "0"); err != nil {
		return nil, nil, errors.Join(err, remove())
	}
	lines = append(lines, "sysctl "+loose+"=0")
	return func() error {
		err := lab.SetSysctl(l.Gateway, loose, old)
		return errors.Join(remove(), err)
	}, lines, nil
}

// Stat is /proc/net/stat/synproxy summed over CPUs.
type Stat struct {
	SynReceived, CookieInvalid, CookieValid, CookieRetrans, ConnReopened uint64
}

// Read reads the gateway namespace's /proc/net/stat/synproxy.
func Read(ctx context.Context, l *lab.Lab) (Stat, error) {
	text, err := l.Exec(ctx, l.Gateway, "cat", "/proc/net/stat/synproxy")
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(text)
}

// ParseStat reads /proc/net/stat/synproxy: a header line, then one line
// per CPU of hex columns entries, syn_received, cookie_invalid,
// cookie_valid, cookie_retrans, conn_reopened.
func ParseStat(text string) (Stat, error) {
	var s Stat
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) < 2 {
		return s, fmt.Errorf("synproxy stat: %d lines", len(lines))
	}
	head := strings.Fields(lines[0])
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	fields := []struct {
		name string
		dst  *uint64
	}{
		{"syn_received", &s.SynReceived}, {"cookie_invalid", &s.CookieInvalid},
		{"cookie_valid", &s.CookieValid}, {"cookie_retrans", &s.CookieRetrans},
		{"conn_reopened", &s.ConnReopened},
	}
	for _, f := range fields {
		if _, ok := col[f.name]; !ok {
			return s, fmt.Errorf("synproxy stat: no column %s in %q", f.name, lines[0])
		}
	}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != len(head) {
			return s, fmt.Errorf("synproxy stat: %q has %d columns, want %d", line, len(f), len(head))
		}
		for _, c := range fields {
			v, err := strconv.ParseUint(f[col[c.name]], 16, 64)
			if err != nil {
				return s, fmt.Errorf("synproxy stat: %s in %q: %w", c.name, line, err)
			}
			*c.dst += v
		}
	}
	return s, nil
}
