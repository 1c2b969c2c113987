package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDaemonPID: a pid file naming a process that is not synwall (a stale
// file whose PID was reused) or no process at all is refused; nothing is
// signalled.
func TestDaemonPID(t *testing.T) {
	dir := t.TempDir()
	write := func(pid int) string {
		path := filepath.Join(dir, "pid")
		if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// PID 1 is refused outright; the test binary (synwall.test) passes.
	if _, err := daemonPID(write(1)); err == nil {
		t.Errorf("daemonPID(pid 1) = nil error, want refused")
	}
	if pid, err := daemonPID(write(os.Getpid())); err != nil || pid != os.Getpid() {
		t.Errorf("daemonPID(own pid) = %d, %v; want %d (a synwall process)", pid, err, os.Getpid())
	}
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Skipf("no sleep(1): %v", err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	if _, err := daemonPID(write(sleep.Process.Pid)); err == nil || !strings.Contains(err.Error(), "not synwall") {
		t.Errorf("daemonPID(a sleep process) = %v, want refused as not synwall", err)
	}
}
