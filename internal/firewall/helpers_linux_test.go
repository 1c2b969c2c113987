package firewall

import (
	"net/netip"
	"testing"

	"github.com/synwall/synwall/internal/testnet"
)

// run runs a command and returns its output in the error.
func run(t *testing.T, args ...string) error {
	t.Helper()
	return testnet.Run(args...)
}

// skipIfNoPrivilege: see testnet.SkipIfNoPrivilege.
func skipIfNoPrivilege(t *testing.T, err error) {
	t.Helper()
	testnet.SkipIfNoPrivilege(t, err)
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
