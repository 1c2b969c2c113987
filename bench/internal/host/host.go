// Package host reads the facts about the machine that the benchmark
// programs print beside their results.
package host

import (
	"os"
	"strings"
)

// CPUModel is the first "model name" of /proc/cpuinfo, or "unknown".
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// Kernel is the running kernel's release, or "unknown".
func Kernel() string { return ReadTrim("/proc/sys/kernel/osrelease") }

// ReadTrim returns the contents of path without surrounding space, or
// "unknown" when it cannot be read.
func ReadTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
