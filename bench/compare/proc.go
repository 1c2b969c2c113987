package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/synwall/synwall/bench/internal/host"
)

// procCPU is the user+system CPU time of process pid, all threads.
func procCPU(pid int) (time.Duration, error) {
	u, s, err := host.ProcCPU(pid)
	return u + s, err
}

// procStatusKB reads a "kB" field such as VmRSS or VmHWM of
// /proc/<pid>/status.
func procStatusKB(pid int, field string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != field {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: %q", pid, line)
		}
		return strconv.ParseUint(f[0], 10, 64)
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// parseProcNet reads the two-line blocks of /proc/net/netstat and
// /proc/net/snmp ("TcpExt: names" then "TcpExt: values") into
// "TcpExtSyncookiesSent"-style keys, as nstat names them.
func parseProcNet(text string) (map[string]uint64, error) {
	m := map[string]uint64{}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		hp, hrest, ok1 := strings.Cut(lines[i], ":")
		vp, vrest, ok2 := strings.Cut(lines[i+1], ":")
		if !ok1 || !ok2 || hp != vp {
			return nil, fmt.Errorf("proc net: lines %q and %q do not pair", lines[i], lines[i+1])
		}
		names, vals := strings.Fields(hrest), strings.Fields(vrest)
		if len(names) != len(vals) {
			return nil, fmt.Errorf("proc net: %s: %d names, %d values", hp, len(names), len(vals))
		}
		for j, n := range names {
			v, err := strconv.ParseInt(vals[j], 10, 64) // MaxConn is -1
			if err != nil {
				return nil, fmt.Errorf("proc net: %s%s=%q: %w", hp, n, vals[j], err)
			}
			if v >= 0 {
				m[hp+n] = uint64(v)
			}
		}
	}
	return m, nil
}

// synproxyStat is /proc/net/stat/synproxy summed over CPUs.
type synproxyStat struct {
	SynReceived, CookieInvalid, CookieValid, CookieRetrans, ConnReopened uint64
}

// parseSynproxy reads /proc/net/stat/synproxy: a header line, then one line
// per CPU of hex columns entries, syn_received, cookie_invalid,
// cookie_valid, cookie_retrans, conn_reopened.
func parseSynproxy(text string) (synproxyStat, error) {
	var s synproxyStat
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) < 2 {
		return s, fmt.Errorf("synproxy stat: %d lines", len(lines))
	}
	head := strings.Fields(lines[0])
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, want := range []string{"syn_received", "cookie_invalid", "cookie_valid", "cookie_retrans", "conn_reopened"} {
		if _, ok := col[want]; !ok {
			return s, fmt.Errorf("synproxy stat: no column %s in %q", want, lines[0])
		}
	}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != len(head) {
			return s, fmt.Errorf("synproxy stat: %q has %d columns, want %d", line, len(f), len(head))
		}
		get := func(name string) (uint64, error) {
			return strconv.ParseUint(f[col[name]], 16, 64)
		}
		for _, c := range []struct {
			name string
			dst  *uint64
		}{
			{"syn_received", &s.SynReceived}, {"cookie_invalid", &s.CookieInvalid},
			{"cookie_valid", &s.CookieValid}, {"cookie_retrans", &s.CookieRetrans},
			{"conn_reopened", &s.ConnReopened},
		} {
			v, err := get(c.name)
			if err != nil {
				return s, fmt.Errorf("synproxy stat: %s in %q: %w", c.name, line, err)
			}
			*c.dst += v
		}
	}
	return s, nil
}
