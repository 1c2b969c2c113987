package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnitVerifies runs systemd-analyze verify on
// deploy/systemd/synwall.service, with the binary path pointed at the
// synwall this test run built. It needs no privileges; it skips where
// systemd-analyze is missing.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed; skipping the unit check")
	}
	unit, err := os.ReadFile("../systemd/synwall.service")
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	if !strings.Contains(text, "/usr/local/bin/synwall ") {
		t.Fatalf("unit does not start /usr/local/bin/synwall:\n%s", text)
	}
	text = strings.ReplaceAll(text, "/usr/local/bin/synwall ", needSynwall(t)+" ")
	path := filepath.Join(t.TempDir(), "synwall.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
