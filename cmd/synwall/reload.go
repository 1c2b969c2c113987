package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/synwall/synwall/internal/daemon"
)

func cmdReload(_ context.Context, args []string, _, stderr io.Writer) int {
	fs := newFlags("reload", "[--pid-file FILE]", `Asks the running gateway to re-read its policy file by sending it SIGHUP.
The gateway validates the new policy first; an invalid one is refused (see
its log) and the running policy stays. Check a file beforehand with
"synwall check FILE".`, stderr)
	pidFile := fs.String("pid-file", daemon.DefaultPidFile, "the `FILE` given to synwall run --pid-file")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	pid, err := daemonPID(*pidFile)
	if err != nil {
		fmt.Fprintln(stderr, "synwall reload:", err)
		return exitFailure
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		fmt.Fprintf(stderr, "synwall reload: signalling PID %d: %v\n", pid, err)
		return exitFailure
	}
	return exitOK
}

// daemonPID reads the PID in pidFile and checks that it is a synwall
// process, so that a stale pid file whose PID was reused never gets a
// signal meant for synwall (SIGUSR2 would end most other programs).
func daemonPID(pidFile string) (int, error) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, fmt.Errorf("%v (is synwall run --pid-file %s running?)", err, pidFile)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("%s does not hold a PID", pidFile)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return 0, fmt.Errorf("PID %d from %s is not running (a stale pid file?)", pid, pidFile)
	}
	if name := strings.TrimSpace(string(comm)); !strings.HasPrefix(name, "synwall") {
		return 0, fmt.Errorf("PID %d from %s is %q, not synwall (a stale pid file?); nothing signalled", pid, pidFile, name)
	}
	return pid, nil
}
