package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, exitUsage},
		{[]string{"frobnicate"}, exitUsage},
		{[]string{"help"}, exitOK},
		{[]string{"demo", "-h"}, exitOK},
		{[]string{"lab"}, exitUsage},
		{[]string{"lab", "sideways"}, exitUsage},
		{[]string{"synflood", "-h"}, exitOK},
		// Refused before any packet: outside the benchmarking ranges,
		// unbounded, or of mixed families.
		{[]string{"synflood", "-dst", "192.0.2.1:80", "-rate", "10", "-duration", "1s"}, exitUsage},
		{[]string{"synflood", "-dst", "198.18.3.2:80", "-rate", "10", "-duration", "61s"}, exitUsage},
		{[]string{"synflood", "-dst", "198.18.3.2:80", "-rate", "10"}, exitUsage},
		{[]string{"synflood", "-dst", "198.18.3.2:80", "-sources", "10.0.0.0/8", "-rate", "10", "-duration", "1s"}, exitUsage},
		{[]string{"synflood", "-dst", "198.18.3.2:80", "-sources", "2001:db8:ff::/48", "-rate", "10", "-duration", "1s"}, exitUsage},
		// Fails before any namespace is built: no root needed.
		{[]string{"demo", "--synwall", "/nonexistent/synwall"}, exitSetup},
	} {
		var out, errb bytes.Buffer
		if got := mainArgs(tc.args, &out, &errb); got != tc.want {
			t.Errorf("synwall-lab %q = %d, want %d; stderr %q", tc.args, got, tc.want, errb.String())
		}
	}
}

func TestSynwallPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "synwall")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := synwallPath(bin); err != nil || got != bin {
		t.Errorf("synwallPath(%s) = %q, %v; want it back", bin, got, err)
	}
	// The default: synwall next to this binary (the test binary here).
	self, _ := os.Executable()
	next := filepath.Join(filepath.Dir(self), "synwall")
	if _, err := os.Stat(next); err == nil {
		t.Skipf("%s exists", next)
	}
	if _, err := synwallPath(""); err == nil || !strings.Contains(err.Error(), next) || !strings.Contains(err.Error(), "--synwall") {
		t.Errorf(`synwallPath("") = %v, want an error naming %s and --synwall`, err, next)
	}
}
