package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// run runs a command and returns its output in the error.
func run(t *testing.T, args ...string) error {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// skipIfNoPrivilege skips on EPERM or a missing tool and fails otherwise.
func skipIfNoPrivilege(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, unix.EPERM) || strings.Contains(err.Error(), "Operation not permitted") ||
		strings.Contains(err.Error(), "Permission denied") {
		t.Skipf("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN): %v", err)
	}
	if errors.Is(err, exec.ErrNotFound) {
		t.Skipf("needs iproute2 and iptables: %v", err)
	}
	t.Fatal(err)
}

// labRules guards one IPv4 and one IPv6 server address, ports 7000-7002.
func labRules() Rules {
	return Rules{
		Services: []Service{
			{Prefix: netip.MustParsePrefix("198.18.7.2/32"), Ports: PortRange{7000, 7002}},
			{Prefix: netip.MustParsePrefix("2001:db8:7::2/128"), Ports: PortRange{7000, 7002}},
		},
		Hooks: []Hook{HookInput},
	}
}
