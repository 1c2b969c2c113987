package policy

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

//go:embed default.yaml
var defaultYAML []byte

// Default returns the embedded default policy (default.yaml): it
// guards the lab's server network, 198.18.3.0/24 and 2001:db8:3::/64, all
// ports, in proxy mode; every other field has its default (defaults.go).
func Default() (*Policy, error) { return Parse("default", defaultYAML) }

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, data)
}

// Format writes p as a policy file in the input schema with every default
// filled in: Parse of the output yields a policy equal to p.
func (p *Policy) Format(w io.Writer) error {
	bw := bufio.NewWriter(w)
	pr := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	pr("version: %d\n", Version)
	if len(p.Services) == 0 {
		pr("services: []\n")
	} else {
		pr("services:\n")
	}
	for _, s := range p.Services {
		pr("  - name: %s\n", strconv.Quote(s.Name))
		pr("    addresses: %s\n", prefixList(s.Prefixes))
		ports := make([]string, len(s.Ports))
		for i, r := range s.Ports {
			ports[i] = r.String()
			if r.Lo != r.Hi {
				ports[i] = strconv.Quote(ports[i])
			}
		}
		pr("    ports: [%s]\n", strings.Join(ports, ", "))
		pr("    mode: %s\n", s.Mode)
		a := s.Advertise
		pr("    advertise:\n")
		pr("      discover: %t\n", a.Discover)
		pr("      mss: %d\n", a.MSS4)
		pr("      mss6: %d\n", a.MSS6)
		if a.WScale == NoWScale {
			pr("      wscale: none\n")
		} else {
			pr("      wscale: %d\n", a.WScale)
		}
		pr("      sack: %t\n", a.SACK)
		pr("      timestamps: %t\n", a.Timestamps)
		pr("      ecn: %t\n", a.ECN)
		pr("      window: %d\n", a.Window)
		pr("    limits:\n")
		if l := s.Limit; l.Rate.IsZero() {
			pr("      syn_per_source: none\n")
		} else {
			pr("      syn_per_source: {rate: %s, burst: %s, prefix4: %d, prefix6: %d}\n", l.Rate, formatCount(uint64(l.Burst)), l.Prefix4, l.Prefix6)
		}
	}
	t := p.Tables
	pr("tables:\n")
	pr("  cache_buckets: %s\n", formatCount(uint64(t.CacheBuckets)))
	pr("  cache_entries: %d\n", t.CacheEntries)
	pr("  flows: %s\n", formatCount(uint64(t.Flows)))
	pr("  handshake_timeout: %s\n", formatDuration(t.HandshakeTimeout))
	pr("  idle_timeout: %s\n", formatDuration(t.IdleTimeout))
	pr("  linger: %s\n", formatDuration(t.Linger))
	pr("cookies:\n")
	pr("  period: %s\n", formatDuration(p.Cookies.Period))
	if p.Cookies.KeyFile != "" {
		pr("  key_file: %s\n", strconv.Quote(p.Cookies.KeyFile))
	}
	pr("limits:\n")
	pr("  synack_rate: %s\n", p.Limits.SynAckRate)
	pr("  synack_burst: %s\n", formatCount(uint64(p.Limits.SynAckBurst)))
	pr("allow: %s\n", prefixList(p.Allow))
	pr("deny: %s\n", prefixList(p.Deny))
	pr("invalid_flags: %s\n", p.InvalidFlags)
	pr("queue:\n")
	nums := make([]string, len(p.Queue.Numbers))
	for i, n := range p.Queue.Numbers {
		nums[i] = strconv.Itoa(int(n))
	}
	pr("  numbers: [%s]\n", strings.Join(nums, ", "))
	if p.Queue.SYNQueues > 0 {
		pr("  syn_queues: %d\n", p.Queue.SYNQueues)
	}
	pr("  max_len: %s\n", formatCount(uint64(p.Queue.MaxLen)))
	if p.Queue.FailOpen {
		pr("  fail: open\n")
	} else {
		pr("  fail: closed\n")
	}
	return bw.Flush()
}

// prefixList writes prefixes as a YAML flow list, quoted (IPv6 has colons).
func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Quote(p.String())
	}
	return "[" + strings.Join(s, ", ") + "]"
}
