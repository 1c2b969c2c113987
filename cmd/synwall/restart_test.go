package main

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/daemon"
)

// TestCmdRestart: synwall restart signals the PID in the pid file with
// SIGUSR2 and returns once the daemon rewrote its pid file (ready again).
// The test process plays the daemon.
func TestCmdRestart(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "synwall.pid")
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := os.WriteFile(pidFile, pid, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	os.Chtimes(pidFile, old, old)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, daemon.RestartSignal)
	defer signal.Stop(sig)
	go func() {
		<-sig
		time.Sleep(50 * time.Millisecond)
		os.WriteFile(pidFile, pid, 0o644)
	}()
	var stdout, stderr bytes.Buffer
	if code := cmdRestart(context.Background(), []string{"--pid-file", pidFile, "--wait", "10s"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("cmdRestart = %d, want %d; stderr %q", code, exitOK, stderr.String())
	}
	if !strings.Contains(stdout.String(), "synwall restarted (PID "+strconv.Itoa(os.Getpid())+")") {
		t.Errorf("stdout = %q, want the restart reported", stdout.String())
	}

	// No reply in time: a failure naming the wait.
	os.Chtimes(pidFile, old, old)
	go func() { <-sig }()
	stderr.Reset()
	if code := cmdRestart(context.Background(), []string{"--pid-file", pidFile, "--wait", "200ms"}, &stdout, &stderr); code != exitFailure || !strings.Contains(stderr.String(), "not ready again") {
		t.Errorf("cmdRestart without a ready daemon = %d, %q; want %d and a message", code, stderr.String(), exitFailure)
	}
	for _, tc := range []struct{ name, content string }{
		{"missing", ""},
		{"garbage", "not a pid\n"},
		{"pid 1", "1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if tc.content != "" {
				os.WriteFile(p, []byte(tc.content), 0o644)
			}
			stderr.Reset()
			if code := cmdRestart(context.Background(), []string{"--pid-file", p}, &stdout, &stderr); code != exitFailure {
				t.Errorf("cmdRestart(%s pid file) = %d, want %d", tc.name, code, exitFailure)
			}
		})
	}
}
