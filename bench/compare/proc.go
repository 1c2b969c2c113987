package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the tick counts in /proc/<pid>/stat and /proc/stat.
const userHZ = 100

// procCPU is the user+system CPU time of process pid, all threads
// (/proc/<pid>/stat fields 14 and 15, proc(5)).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * (time.Second / userHZ), nil
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

// cpuTimes is the "cpu" line of /proc/stat, in ticks.
type cpuTimes struct {
	busy, total uint64
}

func readCPUTimes() (cpuTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 9 || fs[0] != "cpu" {
			continue
		}
		var c cpuTimes
		for i, s := range fs[1:9] { // user nice system idle iowait irq softirq steal
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("/proc/stat: %q: %w", sc.Text(), err)
			}
			c.total += v
			if i != 3 && i != 4 {
				c.busy += v
			}
		}
		return c, nil
	}
	return cpuTimes{}, fmt.Errorf("/proc/stat: no cpu line")
}

// busyShare is the fraction of all CPU time between a and b that was not
// idle (1.0 = every core busy).
func busyShare(a, b cpuTimes) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.busy-min(a.busy, b.busy)) / float64(b.total-a.total)
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
