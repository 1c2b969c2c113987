package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// defaultPidFile is where `synwall run --pid-file` is expected by default
// (the systemd unit uses it too).
const defaultPidFile = "/run/synwall/synwall.pid"

func cmdReload(_ context.Context, args []string, _, stderr io.Writer) int {
	fs := newFlags("reload", "[--pid-file FILE]", `Asks the running gateway to re-read its policy file by sending it SIGHUP.
The gateway validates the new policy first; an invalid one is refused (see
its log) and the running policy stays. Check a file beforehand with
"synwall check FILE".`, stderr)
	pidFile := fs.String("pid-file", defaultPidFile, "the `FILE` given to synwall run --pid-file")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	b, err := os.ReadFile(*pidFile)
	if err != nil {
		fmt.Fprintf(stderr, "synwall reload: %v (is synwall run --pid-file %s running?)\n", err, *pidFile)
		return exitFailure
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		fmt.Fprintf(stderr, "synwall reload: %s does not hold a PID\n", *pidFile)
		return exitFailure
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		fmt.Fprintf(stderr, "synwall reload: signalling PID %d: %v\n", pid, err)
		return exitFailure
	}
	return exitOK
}
