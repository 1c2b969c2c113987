package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = mainArgs(args, &o, &e)
	return code, o.String(), e.String()
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nservices:\n  - name: web\n    addresses: [198.18.3.2/32]\n    ports: [80]\n    mode: prixy\n"), 0o644)
	code, _, stderr := run("check", bad)
	if code != exitFailure || !strings.Contains(stderr, "bad.yaml:6:") || !strings.Contains(stderr, "mode") {
		t.Errorf("check bad.yaml = %d, stderr %q; want 1 and an error naming bad.yaml:6 and the mode", code, stderr)
	}
	code, stdout, stderr := run("check")
	if code != exitOK || !strings.Contains(stdout, "198.18.3.0/24") || !strings.Contains(stdout, "cache_buckets:") {
		t.Errorf("check (default) = %d, stdout %q, stderr %q; want 0 and the effective default", code, stdout, stderr)
	}
	// The effective policy is itself a valid policy file.
	eff := filepath.Join(dir, "eff.yaml")
	os.WriteFile(eff, []byte(stdout), 0o644)
	if code, _, stderr := run("check", eff); code != exitOK {
		t.Errorf("check of the effective default = %d, %s", code, stderr)
	}
}

func TestRules(t *testing.T) {
	code, stdout, stderr := run("rules", "--hook", "both", "--queues", "2-4")
	if code != exitOK {
		t.Fatalf("rules = %d, %s", code, stderr)
	}
	for _, want := range []string{"SYNWALL-FWD", "SYNWALL-IN", "SYNWALL-OUT", "--queue-balance 3:4", "--tcp-flags FIN,SYN,RST,ACK SYN -m comment --comment synwall -j NFQUEUE --queue-num 2", "198.18.3.0/24", "2001:db8:3::/64", "table inet synwall", `--comment synwall`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("rules output lacks %q", want)
		}
	}
	if code, _, _ := run("rules", "--hook", "sideways"); code != exitUsage {
		t.Errorf("rules --hook sideways = %d, want %d", code, exitUsage)
	}
	if code, _, _ := run("rules", "--queues", "5-2"); code != exitUsage {
		t.Errorf("rules --queues 5-2 = %d, want %d", code, exitUsage)
	}
}

func TestUsage(t *testing.T) {
	if code, _, _ := run("frobnicate"); code != exitUsage {
		t.Errorf("unknown command = %d, want %d", code, exitUsage)
	}
	if code, stdout, _ := run("version"); code != exitOK || !strings.HasPrefix(stdout, "synwall ") {
		t.Errorf("version = %d %q", code, stdout)
	}
}
