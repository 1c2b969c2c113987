package main

import (
	"fmt"
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
func procStatusKB(pid int, field string) (uint64, error) { return host.ProcStatusKB(pid, field) }

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
