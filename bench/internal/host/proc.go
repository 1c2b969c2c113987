package host

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the tick counts in /proc/<pid>/stat and /proc/stat
// (USER_HZ, 100 on every Linux architecture that exports it to user space).
const userHZ = 100

// ProcCPU returns the user and system CPU time of process pid, all its
// threads together (/proc/<pid>/stat fields 14 and 15, proc(5)).
func ProcCPU(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseProcStat(pid, b)
}

func parseProcStat(pid int, b []byte) (user, sys time.Duration, err error) {
	// The command name (field 2) may contain spaces and parentheses: the
	// fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	// f[0] is field 3 (state): field 14 is f[11], field 15 is f[12].
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	tick := time.Second / userHZ
	return time.Duration(ut) * tick, time.Duration(st) * tick, nil
}

// CPUTimes is the first line of /proc/stat: every CPU of the machine
// together, in ticks.
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// ReadCPUTimes reads /proc/stat.
func ReadCPUTimes() (CPUTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return CPUTimes{}, err
	}
	defer f.Close()
	return parseCPUTimes(f)
}

func parseCPUTimes(r io.Reader) (CPUTimes, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 9 || fs[0] != "cpu" {
			continue
		}
		var v [8]uint64
		for i := range v {
			var err error
			if v[i], err = strconv.ParseUint(fs[i+1], 10, 64); err != nil {
				return CPUTimes{}, fmt.Errorf("/proc/stat: %q: %w", sc.Text(), err)
			}
		}
		return CPUTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}, nil
	}
	return CPUTimes{}, fmt.Errorf("/proc/stat: no cpu line")
}

// Share is the machine's CPU time between two readings split by kind, each
// as a fraction of all the CPU time that passed.
type Share struct {
	User, System, SoftIRQ, Idle float64
}

// CPUShare splits the CPU time that passed from a to b.
func CPUShare(a, b CPUTimes) Share {
	d := func(x, y uint64) float64 { return float64(y - min(x, y)) }
	user := d(a.User, b.User) + d(a.Nice, b.Nice)
	sys := d(a.System, b.System)
	soft := d(a.SoftIRQ, b.SoftIRQ) + d(a.IRQ, b.IRQ)
	idle := d(a.Idle, b.Idle) + d(a.IOWait, b.IOWait)
	total := user + sys + soft + idle + d(a.Steal, b.Steal)
	if total == 0 {
		return Share{}
	}
	return Share{user / total, sys / total, soft / total, idle / total}
}

// Busy is the share that was not idle (1.0: every core busy); 0 when no
// time passed.
func (s Share) Busy() float64 {
	if s == (Share{}) {
		return 0
	}
	return 1 - s.Idle
}

func (s Share) String() string {
	return fmt.Sprintf("usr %.0f%% sys %.0f%% softirq %.0f%% idle %.0f%%", 100*s.User, 100*s.System, 100*s.SoftIRQ, 100*s.Idle)
}

// ProcStatusKB reads a "kB" field such as VmRSS or VmHWM of
// /proc/<pid>/status (proc(5)).
func ProcStatusKB(pid int, field string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(pid, b, field)
}

func parseStatusKB(pid int, b []byte, field string) (uint64, error) {
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
