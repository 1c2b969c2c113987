package lab

// End-to-end tests. They need root (network namespaces, iptables) and the
// tools ip, iptables, hping3 and curl; without privileges they skip, and
// without a tool they skip too, except in CI (CI=true) where that fails.
//
// Expected duration of the whole package with -race on a 2-core machine:
// about 4 minutes when everything passes, at most about 7 when the
// daemon's data path stalls (every transfer is bounded: curl 20 s, a bulk
// case 15 s, the option matrix stops after 3 failed cases). The main data
// tests run twice, with the flows carried by the kernel (conntrack
// hand-off) and translated by synwall (synwallModes); the floods of
// TestFloodLegitimateLoad, the option matrix and the graceful restarts
// dominate.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	synwallBin      string // built in TestMain
	labBin          string // cmd/synwall-lab, built next to synwallBin
	synwallBuildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "synwall-lab-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	synwallBin, labBin = filepath.Join(dir, "synwall"), filepath.Join(dir, "synwall-lab")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	for _, b := range [][2]string{{synwallBin, "cmd/synwall"}, {labBin, "cmd/synwall-lab"}} {
		out, err := exec.CommandContext(ctx, "go", "build", "-o", b[0], "github.com/synwall/synwall/"+b[1]).CombinedOutput()
		if err != nil {
			synwallBuildErr = errors.Join(synwallBuildErr, fmt.Errorf("go build %s: %v\n%s", b[1], err, out))
		}
	}
	cancel()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needTools skips (or, in CI, fails) when a program is missing.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	if err := Require(names...); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: the tools must be installed)", err)
		}
		t.Skipf("%v", err)
	}
}

// needSynwall fails the test when the daemon did not build.
func needSynwall(t *testing.T) string {
	t.Helper()
	if synwallBuildErr != nil {
		t.Fatal(synwallBuildErr)
	}
	return synwallBin
}

// newLab builds a lab with names unique to this test and removes it at the
// end. Without the privilege to build namespaces the test skips.
func newLab(t *testing.T) *Lab {
	t.Helper()
	needTools(t, "ip", "iptables", "ip6tables")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Up(ctx, Config{})
	if errors.Is(err, ErrPermission) {
		t.Skipf("needs root to build network namespaces: %v", err)
	}
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
		for _, ns := range l.Namespaces() {
			if _, err := os.Stat(filepath.Join(netnsDir, ns)); err == nil {
				t.Errorf("namespace %s left after Down", ns)
			}
		}
	})
	return l
}

// startSynwall starts the daemon in l's gateway and logs its output at the
// end of a failed test.
func startSynwall(t *testing.T, l *Lab, cfg SynwallConfig) *Synwall {
	t.Helper()
	cfg.Binary = needSynwall(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sw, err := l.StartSynwall(ctx, cfg)
	if err != nil {
		t.Fatalf("StartSynwall: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("synwall (pid %d) output:\n%s", sw.PID(), sw.Stderr())
		}
	})
	return sw
}

// statsAfter waits until the daemon has written its stats file again (it
// does every second) and returns the new counters.
func statsAfter(t *testing.T, sw *Synwall) Stats {
	t.Helper()
	fi0, _ := os.Stat(sw.StatsFile)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		fi, err := os.Stat(sw.StatsFile)
		if err == nil && (fi0 == nil || !os.SameFile(fi0, fi) || fi.ModTime() != fi0.ModTime()) {
			break
		}
	}
	time.Sleep(1100 * time.Millisecond) // one more period, so that everything counted is in
	st, err := sw.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

func shortOut(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}
