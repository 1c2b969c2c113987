package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/synwall/synwall/bench/internal/host"
)

// userHZ is the unit of the tick counts in /proc/<pid>/stat and /proc/stat
// (USER_HZ, 100 on every Linux architecture that exports it to user space).
const userHZ = 100

// procCPU returns the user and system CPU time of process pid, all its
// threads together (/proc/<pid>/stat fields 14 and 15, proc(5)).
func procCPU(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
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

// procExe is the resolved path of the program pid runs.
func procExe(pid int) (string, error) {
	return os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
}

// procChildren lists the children of every thread of pid.
func procChildren(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids
}

// findProgram returns pid itself if it runs the program at path (`ip netns
// exec` execs the command in place), or else the child that does, and how
// it was found.
func findProgram(pid int, path string) (int, string, error) {
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		return 0, "", err
	}
	if exe, err := procExe(pid); err == nil && exe == want {
		return pid, "exec'd in place by ip netns exec (same PID)", nil
	}
	for _, k := range procChildren(pid) {
		if exe, err := procExe(k); err == nil && exe == want {
			return k, "child of ip netns exec", nil
		}
	}
	exe, _ := procExe(pid)
	return 0, "", fmt.Errorf("neither PID %d (%s) nor its children run %s", pid, exe, want)
}

// cpuTimes is the first line of /proc/stat: every CPU of the machine
// together, in ticks.
type cpuTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
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
		var v [8]uint64
		for i := range v {
			v[i], err = strconv.ParseUint(fs[i+1], 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("/proc/stat: %q: %w", sc.Text(), err)
			}
		}
		return cpuTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}, nil
	}
	return cpuTimes{}, fmt.Errorf("/proc/stat: no cpu line")
}

// share is the machine's CPU time between a and b split by kind, each as a
// fraction of all the CPU time that passed.
type share struct {
	User, System, SoftIRQ, Idle float64
}

func cpuShare(a, b cpuTimes) share {
	d := func(x, y uint64) float64 { return float64(y - min(x, y)) }
	user := d(a.User, b.User) + d(a.Nice, b.Nice)
	sys := d(a.System, b.System)
	soft := d(a.SoftIRQ, b.SoftIRQ) + d(a.IRQ, b.IRQ)
	idle := d(a.Idle, b.Idle) + d(a.IOWait, b.IOWait)
	total := user + sys + soft + idle + d(a.Steal, b.Steal)
	if total == 0 {
		return share{}
	}
	return share{user / total, sys / total, soft / total, idle / total}
}

func (s share) String() string {
	return fmt.Sprintf("usr %.0f%% sys %.0f%% softirq %.0f%% idle %.0f%%", 100*s.User, 100*s.System, 100*s.SoftIRQ, 100*s.Idle)
}

// machine describes the host.
type machine struct {
	NProc   int
	CPU     string
	Kernel  string
	Go      string
	Commit  string
	LoadAvg string
}

func loadAvg() string {
	f := strings.Fields(host.ReadTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
