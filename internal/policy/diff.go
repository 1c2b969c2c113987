package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Diff describes what changed from old to new, one line per change, for
// logs. Services are matched by name. Changes that need a restart (see
// NeedsRestart) end in "(needs restart)". A nil old means everything is new.
func Diff(old, new *Policy) []string {
	var out []string
	add := func(restart bool, field string, a, b any) {
		as, bs := fmt.Sprint(a), fmt.Sprint(b)
		if as == bs {
			return
		}
		line := fmt.Sprintf("%s: %s -> %s", field, as, bs)
		if restart {
			line += " (needs restart)"
		}
		out = append(out, line)
	}
	if old == nil {
		old = &Policy{}
	}
	ot, nt := old.Tables, new.Tables
	add(true, "tables.cache_buckets", ot.CacheBuckets, nt.CacheBuckets)
	add(true, "tables.cache_entries", ot.CacheEntries, nt.CacheEntries)
	add(true, "tables.flows", ot.Flows, nt.Flows)
	add(false, "tables.handshake_timeout", formatDuration(ot.HandshakeTimeout), formatDuration(nt.HandshakeTimeout))
	add(false, "tables.idle_timeout", formatDuration(ot.IdleTimeout), formatDuration(nt.IdleTimeout))
	add(false, "tables.linger", formatDuration(ot.Linger), formatDuration(nt.Linger))
	add(false, "cookies.period", formatDuration(old.Cookies.Period), formatDuration(new.Cookies.Period))
	add(false, "cookies.key_file", old.Cookies.KeyFile, new.Cookies.KeyFile)
	add(false, "limits.synack_rate", old.Limits.SynAckRate, new.Limits.SynAckRate)
	add(false, "limits.synack_burst", old.Limits.SynAckBurst, new.Limits.SynAckBurst)
	add(false, "allow", old.Allow, new.Allow)
	add(false, "deny", old.Deny, new.Deny)
	add(false, "invalid_flags", old.InvalidFlags, new.InvalidFlags)
	add(true, "queue.numbers", old.Queue.Numbers, new.Queue.Numbers)
	add(true, "queue.syn_queues", old.Queue.SYNQueues, new.Queue.SYNQueues)
	add(true, "queue.max_len", old.Queue.MaxLen, new.Queue.MaxLen)
	add(true, "queue.fail_open", old.Queue.FailOpen, new.Queue.FailOpen)

	byName := func(p *Policy) map[string]*Service {
		m := map[string]*Service{}
		for _, s := range p.Services {
			m[s.Name] = s
		}
		return m
	}
	om, nm := byName(old), byName(new)
	for _, s := range old.Services {
		if nm[s.Name] == nil {
			out = append(out, fmt.Sprintf("service %q removed", s.Name))
		}
	}
	for _, s := range new.Services {
		o := om[s.Name]
		if o == nil {
			out = append(out, fmt.Sprintf("service %q added", s.Name))
			continue
		}
		f := func(field string, a, b any) { add(false, fmt.Sprintf("service %q %s", s.Name, field), a, b) }
		f("addresses", o.Prefixes, s.Prefixes)
		f("ports", portsString(o.Ports), portsString(s.Ports))
		f("mode", o.Mode, s.Mode)
		f("advertise", fmt.Sprintf("%+v", o.Advertise), fmt.Sprintf("%+v", s.Advertise))
		f("limits.syn_per_source", limitString(o.Limit), limitString(s.Limit))
	}
	return out
}

// NeedsRestart returns the changes from old to new that a running gateway
// cannot apply, because they size its fixed tables or its queues:
// tables.cache_buckets, tables.cache_entries, tables.flows and queue.*.
// Everything else takes effect when the new policy is swapped in.
func NeedsRestart(old, new *Policy) []string {
	return slices.DeleteFunc(Diff(old, new), func(s string) bool { return !strings.HasSuffix(s, "(needs restart)") })
}

func portsString(rs []PortRange) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

func limitString(l SourceLimit) string {
	if l.Rate.IsZero() {
		return "none"
	}
	return fmt.Sprintf("%s burst %d /%d /%d", l.Rate, l.Burst, l.Prefix4, l.Prefix6)
}
