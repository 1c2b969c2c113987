package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/synwall/synwall/bench/internal/host"
)

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
