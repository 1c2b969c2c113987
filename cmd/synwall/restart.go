package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/synwall/synwall/internal/daemon"
)

// cmdRestart sends the restart signal and waits for the daemon to be ready
// again (it rewrites its pid file when ready).
func cmdRestart(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("restart", "[--pid-file FILE] [--wait DURATION]", `Asks the running gateway for a graceful restart by sending it SIGUSR2: it
verdicts every packet it has read, saves its cookie keys and flows to its
--state-dir, keeps its firewall rules, and re-executes the synwall binary
now on disk with the same arguments and PID. The new process restores the
flows (proxied connections go on), accepts the SYN-ACKs sent before, and
replaces the rules. With the raw backend and --handoff (the defaults) the
bound queue sockets pass to the new process: the queues never unbind and
packets wait in the kernel queue for the pause. Otherwise the queues are
unbound meanwhile and the fail mode applies: fail-closed drops guarded
packets (TCP retransmits them), fail-open passes them unexamined. Use it
after an upgrade or for a change that "synwall reload" cannot apply;
"systemctl kill -s USR2 --kill-whom=main
synwall" does the same under systemd.`, stderr)
	pidFile := fs.String("pid-file", daemon.DefaultPidFile, "the `FILE` given to synwall run --pid-file")
	wait := fs.Duration("wait", 60*time.Second, "how long to wait for the daemon to be ready again; 0 returns at once")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	pid, err := daemonPID(*pidFile)
	if err != nil {
		fmt.Fprintln(stderr, "synwall restart:", err)
		return exitFailure
	}
	before, _ := os.Stat(*pidFile)
	t0 := time.Now()
	if err := syscall.Kill(pid, daemon.RestartSignal); err != nil {
		fmt.Fprintf(stderr, "synwall restart: signalling PID %d: %v\n", pid, err)
		return exitFailure
	}
	if *wait <= 0 {
		return exitOK
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(*wait)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return exitFailure
		case <-deadline.C:
			fmt.Fprintf(stderr, "synwall restart: PID %d not ready again after %v; see its log\n", pid, *wait)
			return exitFailure
		case <-tick.C:
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			fmt.Fprintf(stderr, "synwall restart: PID %d exited; see its log\n", pid)
			return exitFailure
		}
		if fi, err := os.Stat(*pidFile); err == nil && (before == nil || !fi.ModTime().Equal(before.ModTime())) {
			fmt.Fprintf(stdout, "synwall restarted (PID %d) in %v\n", pid, time.Since(t0).Round(time.Millisecond))
			return exitOK
		}
	}
}
