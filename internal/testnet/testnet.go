// Package testnet holds what the privileged tests of the kernel-facing
// packages (queue, firewall) share: running a command with its output in
// the error, and the project's rule for tests that need privileges: skip
// with a hint when the kernel refuses (EPERM), fail otherwise; a missing
// tool skips on a developer's machine and fails in CI (CI=true), where
// .ci/run installs every tool.
package testnet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// Run runs a command and returns its output in the error.
func Run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// SkipIfNoPrivilege does nothing for a nil err, skips t when err says the
// kernel refused for lack of privilege (or, outside CI, a tool is
// missing), and fails t otherwise.
func SkipIfNoPrivilege(t TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, unix.EPERM) || strings.Contains(err.Error(), "Operation not permitted") ||
		strings.Contains(err.Error(), "Permission denied") {
		t.Skipf("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN): %v", err)
		return
	}
	if errors.Is(err, exec.ErrNotFound) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("a tool is missing in CI (.ci/run installs iproute2 and iptables): %v", err)
			return
		}
		t.Skipf("needs iproute2 and iptables: %v", err)
		return
	}
	t.Fatal(err)
}
