package main

import (
	"bytes"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synwall/synwall/internal/daemon"
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

// TestPidFileDefault: synwall run writes its PID where synwall reload and
// synwall restart look for it by default, and so do the systemd unit and
// the README; --pid-file "" disables it.
func TestPidFileDefault(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, daemon.DefaultPidFile},
		{[]string{"--pid-file", ""}, ""},
		{[]string{"--pid-file", "/tmp/x.pid"}, "/tmp/x.pid"},
	} {
		var f runFlags
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		f.register(fs, true)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.config(log)
		if err != nil {
			t.Fatalf("config(%q): %v", tc.args, err)
		}
		if cfg.PidFile != tc.want {
			t.Errorf("run %q: PidFile = %q, want %q", tc.args, cfg.PidFile, tc.want)
		}
	}
	for _, cmd := range []string{"run", "reload", "restart"} {
		_, _, stderr := run(cmd, "-h")
		if want := `-pid-file FILE`; !strings.Contains(stderr, want) || !strings.Contains(stderr, `(default "`+daemon.DefaultPidFile+`")`) {
			t.Errorf("synwall %s -h does not show --pid-file with the default %s:\n%s", cmd, daemon.DefaultPidFile, stderr)
		}
	}
	for _, doc := range []string{"../../deploy/systemd/synwall.service", "../../README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), daemon.DefaultPidFile) {
			t.Errorf("%s does not name the pid file %s", doc, daemon.DefaultPidFile)
		}
	}
}

// TestNoLabInBinary: the production binary links none of the lab drivers
// (hping3 floods, HTTP servers, namespace plumbing); cmd/synwall-lab does.
func TestNoLabInBinary(t *testing.T) {
	for _, tc := range []struct {
		pkg     string
		wantLab bool
	}{
		{"github.com/synwall/synwall/cmd/synwall", false},
		{"github.com/synwall/synwall/cmd/synwall-lab", true},
	} {
		out, err := exec.Command("go", "list", "-deps", tc.pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", tc.pkg, err)
		}
		var lab []string
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "github.com/synwall/synwall/deploy/") {
				lab = append(lab, dep)
			}
		}
		if got := len(lab) > 0; got != tc.wantLab {
			t.Errorf("go list -deps %s: deploy packages %q, want linked %v", tc.pkg, lab, tc.wantLab)
		}
	}
}
