package lab

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SynproxyRule is one firewall rule of the kernel SYNPROXY set-up: the
// program (iptables or ip6tables), then table, chain, match and target.
type SynproxyRule struct {
	Cmd  string // "iptables" or "ip6tables"
	Rule []string
}

// Args is the rule's command line with op ("-A" or "-D") before the chain.
func (r SynproxyRule) Args(op string) []string {
	a := []string{"-w", "10", r.Rule[0], r.Rule[1], op, r.Rule[2]}
	return append(a, r.Rule[3:]...)
}

func (r SynproxyRule) String() string {
	return r.Cmd + " " + strings.Join(r.Args("-A")[2:], " ")
}

// SynproxyRules are the rules of the netfilter documentation for a
// forwarding gateway, for the lab server's HTTP port, IPv4 then IPv6: the
// server's SYNs are not tracked (raw PREROUTING CT --notrack), INVALID and
// UNTRACKED packets go to SYNPROXY, and INVALID ones left are dropped. The
// MSS it announces is the one the lab's links carry (1460, 1440 for IPv6).
func SynproxyRules() []SynproxyRule {
	port := strconv.Itoa(HTTPPort)
	var rules []SynproxyRule
	for _, f := range []struct {
		cmd string
		srv string
		mss string
	}{{"iptables", ServerV4.String(), "1460"}, {"ip6tables", ServerV6.String(), "1440"}} {
		rules = append(rules,
			SynproxyRule{f.cmd, []string{"-t", "raw", "PREROUTING", "-p", "tcp", "-m", "tcp", "--syn", "-d", f.srv, "--dport", port, "-j", "CT", "--notrack"}},
			SynproxyRule{f.cmd, []string{"-t", "filter", "FORWARD", "-p", "tcp", "-m", "tcp", "-d", f.srv, "--dport", port,
				"-m", "conntrack", "--ctstate", "INVALID,UNTRACKED",
				"-j", "SYNPROXY", "--sack-perm", "--timestamp", "--wscale", "7", "--mss", f.mss}},
			SynproxyRule{f.cmd, []string{"-t", "filter", "FORWARD", "-p", "tcp", "-m", "tcp", "-d", f.srv, "--dport", port,
				"-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"}},
		)
	}
	return rules
}

// SynproxySetup names the configuration for reports.
const SynproxySetup = "gateway SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460 (1440 IPv6); nf_conntrack_tcp_loose=0"

const tcpLoose = "net.netfilter.nf_conntrack_tcp_loose"

// InstallSynproxy adds SynproxyRules in the gateway and sets
// nf_conntrack_tcp_loose=0 there. It returns what undoes both (also after
// ctx ends) and the commands it ran, for a report. On error it undoes what
// it did.
func (l *Lab) InstallSynproxy(ctx context.Context) (undo func() error, lines []string, err error) {
	var added []SynproxyRule
	remove := func() error {
		var errs []error
		// Not tied to ctx: the rules come out also after Ctrl-C.
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i := len(added) - 1; i >= 0; i-- {
			if _, err := l.Exec(c, l.Gateway, added[i].Cmd, added[i].Args("-D")...); err != nil {
				errs = append(errs, err)
			}
		}
		added = nil
		return errors.Join(errs...)
	}
	for _, r := range SynproxyRules() {
		if _, err := l.Exec(ctx, l.Gateway, r.Cmd, r.Args("-A")...); err != nil {
			return nil, nil, errors.Join(err, remove())
		}
		added = append(added, r)
		lines = append(lines, r.String())
	}
	old, err := Sysctl(l.Gateway, tcpLoose)
	if err != nil {
		return nil, nil, errors.Join(err, remove())
	}
	if err := SetSysctl(l.Gateway, tcpLoose, "0"); err != nil {
		return nil, nil, errors.Join(err, remove())
	}
	lines = append(lines, "sysctl "+tcpLoose+"=0")
	return func() error {
		err := SetSysctl(l.Gateway, tcpLoose, old)
		return errors.Join(remove(), err)
	}, lines, nil
}

// SynproxyStat is /proc/net/stat/synproxy summed over CPUs.
type SynproxyStat struct {
	SynReceived, CookieInvalid, CookieValid, CookieRetrans, ConnReopened uint64
}

// ReadSynproxy reads the gateway namespace's /proc/net/stat/synproxy.
func (l *Lab) ReadSynproxy(ctx context.Context) (SynproxyStat, error) {
	text, err := l.Exec(ctx, l.Gateway, "cat", "/proc/net/stat/synproxy")
	if err != nil {
		return SynproxyStat{}, err
	}
	return ParseSynproxyStat(text)
}

// ParseSynproxyStat reads /proc/net/stat/synproxy: a header line, then one
// line per CPU of hex columns entries, syn_received, cookie_invalid,
// cookie_valid, cookie_retrans, conn_reopened.
func ParseSynproxyStat(text string) (SynproxyStat, error) {
	var s SynproxyStat
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
