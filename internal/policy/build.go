package policy

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// builder validates a Policy assembled from a file or from Go values and
// builds its lookup index. Errors are collected, not returned at the first.
type builder struct {
	file  string
	lines map[string]int // field path -> line, when read from a file
	errs  []error
}

// line returns the line of path or of its closest ancestor that has one.
func (b *builder) line(path string) int {
	for path != "" {
		if l, ok := b.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (b *builder) errf(path, format string, args ...any) {
	b.errs = append(b.errs, &Error{File: b.file, Line: b.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (b *builder) err() error { return errors.Join(b.errs...) }

// New validates services built in Go and returns a Policy that guards them.
// The services are copied (the caller's values are not changed); ID is set to
// the index. Zero fields are filled with defaults: Tables fields, Ports (from
// PortLo..PortHi), Advertise.MSS4 (1460), Advertise.MSS6 (MSS4-20),
// Advertise.Window (65535) and an empty Name ("service<ID>"). A zero
// Advertise.WScale offers scale 0 and a zero Limit means no per-source limit.
// Everything else (cookies, global limits, queue, invalid flags) gets its
// default, as in a file that leaves them out.
func New(services []*Service, t Tables) (*Policy, error) {
	p := defaultPolicy()
	p.Tables = t
	fillTables(&p.Tables)
	p.Cookies.Period = p.Tables.CookiePeriod
	for i, s := range services {
		if s == nil {
			return nil, &Error{Path: fmt.Sprintf("services[%d]", i), Msg: "nil service"}
		}
		c := *s
		c.Prefixes = slices.Clone(s.Prefixes)
		c.Ports = slices.Clone(s.Ports)
		if len(c.Ports) == 0 {
			c.Ports = []PortRange{{c.PortLo, c.PortHi}}
		}
		if c.Name == "" {
			c.Name = fmt.Sprintf("service%d", i)
		}
		a := &c.Advertise
		if a.MSS4 == 0 {
			a.MSS4 = DefaultMSS4
		}
		if a.MSS6 == 0 {
			a.MSS6 = defaultMSS6(a.MSS4)
		}
		if a.Window == 0 {
			a.Window = DefaultWindow
		}
		p.Services = append(p.Services, &c)
	}
	b := &builder{}
	return b.build(p)
}

func (b *builder) intRange(path string, v, lo, hi int) {
	if v < lo || v > hi {
		b.errf(path, "%d out of range (allowed %s..%s)", v, formatCount(uint64(lo)), formatCount(uint64(hi)))
	}
}

func (b *builder) durRange(path string, v, lo, hi time.Duration) {
	if v < lo || v > hi {
		b.errf(path, "%s out of range (allowed %s..%s)", formatDuration(v), formatDuration(lo), formatDuration(hi))
	}
}

func (b *builder) rateRange(path string, r Rate, allowNone bool) {
	if r.IsZero() {
		if !allowNone {
			b.errf(path, "a rate is required")
		}
		return
	}
	if r.Per <= 0 || r.Count == 0 {
		b.errf(path, "%s is not a rate (want e.g. 100/s, 5k/s, 1000/m)", r)
		return
	}
	if ps := r.PerSecond(); ps > MaxRatePerSecond {
		b.errf(path, "%s out of range (allowed up to %s)", r, PerSecond(MaxRatePerSecond))
	}
}

// build validates p in place (p is the builder's own copy) and indexes it.
func (b *builder) build(p *Policy) (*Policy, error) {
	t := &p.Tables
	if t.CacheBuckets&(t.CacheBuckets-1) != 0 || t.CacheBuckets < MinCacheBuckets || t.CacheBuckets > MaxCacheBuckets {
		b.errf("tables.cache_buckets", "%d is not a power of two in range (allowed 1..1Mi)", t.CacheBuckets)
	}
	b.intRange("tables.cache_entries", t.CacheEntries, MinCacheEntries, MaxCacheEntries)
	b.intRange("tables.flows", t.Flows, MinFlows, MaxFlows)
	b.durRange("tables.handshake_timeout", t.HandshakeTimeout, MinHandshakeTimeout, MaxHandshakeTimeout)
	b.durRange("tables.idle_timeout", t.IdleTimeout, MinIdleTimeout, MaxIdleTimeout)
	b.durRange("tables.linger", t.Linger, MinLinger, MaxLinger)
	if p.Cookies.Period == 0 {
		p.Cookies.Period = t.CookiePeriod
	}
	if t.CookiePeriod != p.Cookies.Period {
		b.errf("cookies.period", "%s differs from tables cookie period %s", formatDuration(p.Cookies.Period), formatDuration(t.CookiePeriod))
	}
	b.durRange("cookies.period", p.Cookies.Period, MinCookiePeriod, MaxCookiePeriod)
	if f := p.Cookies.KeyFile; f != "" {
		fi, err := os.Stat(f)
		switch {
		case err != nil:
			b.errf("cookies.key_file", "%v", err)
		case !fi.Mode().IsRegular():
			b.errf("cookies.key_file", "%s is not a regular file", f)
		case fi.Mode().Perm()&0o077 != 0:
			b.errf("cookies.key_file", "%s is accessible by group or others (mode %04o; want 0600 or stricter)", f, fi.Mode().Perm())
		}
	}
	b.rateRange("limits.synack_rate", p.Limits.SynAckRate, true)
	if !p.Limits.SynAckRate.IsZero() {
		b.intRange("limits.synack_burst", int(p.Limits.SynAckBurst), MinBurst, MaxBurst)
	}
	if p.InvalidFlags != InvalidFlagsDrop && p.InvalidFlags != InvalidFlagsCount {
		b.errf("invalid_flags", "invalid value %d (allowed drop, count)", p.InvalidFlags)
	}
	q := &p.Queue
	if len(q.Numbers) == 0 {
		b.errf("queue.numbers", "at least one queue number is required")
	}
	if len(q.Numbers) > MaxQueues {
		b.errf("queue.numbers", "%d queues out of range (allowed 1..%d)", len(q.Numbers), MaxQueues)
	}
	q.Numbers = slices.Clone(q.Numbers)
	slices.Sort(q.Numbers)
	if len(slices.Compact(slices.Clone(q.Numbers))) != len(q.Numbers) {
		b.errf("queue.numbers", "queue numbers repeat")
	}
	switch n := len(q.Numbers); {
	case q.SYNQueues == SYNQueuesHalf || n == 0:
	case n == 1:
		b.errf("queue.syn_queues", "%d: SYN queues of their own need at least two queue numbers (have one; use half or leave it out)", q.SYNQueues)
	case q.SYNQueues < 1 || q.SYNQueues >= n:
		b.errf("queue.syn_queues", "%d out of range (allowed 1..%d with %d queues, or half)", q.SYNQueues, n-1, n)
	}
	q.SYNQueues = ResolveSYNQueues(q.SYNQueues, len(q.Numbers))
	b.intRange("queue.max_len", int(q.MaxLen), MinQueueMaxLen, MaxQueueML)

	p.Allow = b.prefixList("allow", p.Allow, &p.allow)
	p.Deny = b.prefixList("deny", p.Deny, &p.deny)

	if len(p.Services) > MaxServices {
		b.errf("services", "%d services out of range (allowed up to %d)", len(p.Services), MaxServices)
	}
	names := map[string]int{}
	for i, s := range p.Services {
		b.service(fmt.Sprintf("services[%d]", i), i, s, names)
	}
	if len(b.errs) == 0 {
		b.overlaps(p)
	}
	if len(b.errs) > 0 {
		return nil, b.err()
	}
	p.index()
	return p, nil
}

func (b *builder) prefixList(path string, list []netip.Prefix, x *prefixIndex) []netip.Prefix {
	list = slices.Clone(list)
	for i, pf := range list {
		ip := fmt.Sprintf("%s[%d]", path, i)
		if !b.prefix(ip, pf) {
			continue
		}
		if !x.add(pf, int32(i)) {
			b.errf(ip, "%s is listed twice", pf)
		}
	}
	return list
}

// prefix checks one address prefix.
func (b *builder) prefix(path string, pf netip.Prefix) bool {
	switch {
	case !pf.IsValid():
		b.errf(path, "invalid prefix %s", pf)
	case pf.Addr().Is4In6():
		b.errf(path, "%s is an IPv4-mapped IPv6 prefix; write it as IPv4", pf)
	case pf.Addr().Zone() != "":
		b.errf(path, "%s has a zone", pf)
	case pf.Masked() != pf:
		b.errf(path, "%s has bits set after the prefix length (did you mean %s?)", pf, pf.Masked())
	default:
		return true
	}
	return false
}

func (b *builder) service(path string, i int, s *Service, names map[string]int) {
	s.ID = i
	switch {
	case s.Name == "":
		b.errf(path+".name", "a name is required")
	case len(s.Name) > 64:
		b.errf(path+".name", "%q is longer than 64 characters", s.Name)
	default:
		if j, dup := names[s.Name]; dup {
			b.errf(path+".name", "%q is also the name of services[%d]%s", s.Name, j, b.at(fmt.Sprintf("services[%d]", j)))
		}
		names[s.Name] = i
	}
	if s.Mode != ModeProxy && s.Mode != ModePass && s.Mode != ModeDrop {
		b.errf(path+".mode", "invalid mode %d (allowed proxy, pass, drop)", s.Mode)
	}
	if len(s.Prefixes) == 0 {
		b.errf(path+".addresses", "at least one address or prefix is required")
	}
	s.Prefixes = slices.Clone(s.Prefixes)
	for j, pf := range s.Prefixes {
		b.prefix(fmt.Sprintf("%s.addresses[%d]", path, j), pf)
	}
	if len(s.Ports) == 0 {
		b.errf(path+".ports", "at least one port or port range is required")
	}
	s.Ports = slices.Clone(s.Ports)
	ok := true
	for j, r := range s.Ports {
		if r.Lo == 0 || r.Lo > r.Hi {
			b.errf(fmt.Sprintf("%s.ports[%d]", path, j), "%d-%d is not a port range (allowed 1..65535, low <= high)", r.Lo, r.Hi)
			ok = false
		}
	}
	if ok && len(s.Ports) > 0 {
		// Ranges of one service may touch or overlap: merge them.
		slices.SortFunc(s.Ports, func(a, b PortRange) int { return cmp.Compare(a.Lo, b.Lo) })
		m := s.Ports[:1]
		for _, r := range s.Ports[1:] {
			last := &m[len(m)-1]
			if uint32(r.Lo) <= uint32(last.Hi)+1 {
				last.Hi = max(last.Hi, r.Hi)
			} else {
				m = append(m, r)
			}
		}
		s.Ports = m
		s.PortLo, s.PortHi = m[0].Lo, m[len(m)-1].Hi
	}
	a := &s.Advertise
	b.intRange(path+".advertise.mss", int(a.MSS4), MinMSS4, 65535)
	b.intRange(path+".advertise.mss6", int(a.MSS6), MinMSS6, 65535)
	if a.WScale < NoWScale || a.WScale > MaxWScale {
		b.errf(path+".advertise.wscale", "%d out of range (allowed 0..14 or none)", a.WScale)
	}
	b.intRange(path+".advertise.window", int(a.Window), 1, 65535)
	l := &s.Limit
	lp := path + ".limits.syn_per_source"
	b.rateRange(lp+".rate", l.Rate, true)
	if !l.Rate.IsZero() {
		b.intRange(lp+".burst", int(l.Burst), MinBurst, MaxBurst)
		b.intRange(lp+".prefix4", int(l.Prefix4), MinPrefix4, MaxPrefix4)
		b.intRange(lp+".prefix6", int(l.Prefix6), MinPrefix6, MaxPrefix6)
	}
}

// at returns " (file:line)" for path, or "".
func (b *builder) at(path string) string {
	if w := where(b.file, b.line(path)); w != "" {
		return " (" + w + ")"
	}
	return ""
}

// span is one (prefix, port range) pair of one service.
type span struct {
	pf     netip.Prefix
	r      PortRange
	svc, j int // service index, prefix index within the service
}

// overlaps reports every pair of services (or prefixes of one service) that
// guard a common address and port. Prefixes either nest or are disjoint, so
// after sorting by start address (shorter first) the prefixes containing a
// span are exactly those left on a stack of enclosing spans.
func (b *builder) overlaps(p *Policy) {
	var spans []span
	for i, s := range p.Services {
		for j, pf := range s.Prefixes {
			for _, r := range s.Ports {
				spans = append(spans, span{pf, r, i, j})
			}
		}
	}
	slices.SortFunc(spans, func(x, y span) int {
		if c := x.pf.Addr().Compare(y.pf.Addr()); c != 0 {
			return c
		}
		if c := cmp.Compare(x.pf.Bits(), y.pf.Bits()); c != 0 {
			return c
		}
		return cmp.Compare(x.r.Lo, y.r.Lo)
	})
	type pair struct{ a, b, ja, jb int }
	seen := map[pair]bool{}
	var stack []span
	for _, sp := range spans {
		for len(stack) > 0 {
			top := stack[len(stack)-1].pf
			if top.Addr().BitLen() == sp.pf.Addr().BitLen() && top.Bits() <= sp.pf.Bits() && top.Contains(sp.pf.Addr()) {
				break
			}
			stack = stack[:len(stack)-1]
		}
		for _, o := range stack {
			if !o.r.Overlaps(sp.r) {
				continue
			}
			a, c := o, sp
			if a.svc > c.svc || (a.svc == c.svc && a.j > c.j) {
				a, c = c, a
			}
			k := pair{a.svc, c.svc, a.j, c.j}
			if seen[k] {
				continue
			}
			seen[k] = true
			pa := fmt.Sprintf("services[%d]", a.svc)
			pc := fmt.Sprintf("services[%d]", c.svc)
			lo, hi := max(a.r.Lo, c.r.Lo), min(a.r.Hi, c.r.Hi)
			if a.svc == c.svc {
				b.errf(fmt.Sprintf("%s.addresses[%d]", pc, c.j), "%s overlaps %s%s of the same service", c.pf, a.pf, b.at(fmt.Sprintf("%s.addresses[%d]", pa, a.j)))
				continue
			}
			b.errf(pc, "service %q overlaps service %q%s: %s and %s share ports %s",
				p.Services[c.svc].Name, p.Services[a.svc].Name, b.at(pa), c.pf, a.pf, PortRange{lo, hi})
		}
		stack = append(stack, sp)
	}
}

// String formats r as "lo-hi", or "lo" when lo == hi.
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// index builds the lookup structures of a validated p.
func (p *Policy) index() {
	p.services = prefixIndex{}
	p.ports = nil
	for _, s := range p.Services {
		for _, pf := range s.Prefixes {
			v := p.services.get(pf)
			if v < 0 {
				v = int32(len(p.ports))
				p.ports = append(p.ports, nil)
				p.services.add(pf, v)
			}
			for _, r := range s.Ports {
				p.ports[v] = append(p.ports[v], portEntry{r, s})
			}
		}
	}
	for _, list := range p.ports {
		slices.SortFunc(list, func(a, b portEntry) int { return cmp.Compare(a.r.Lo, b.r.Lo) })
	}
	seed := rand.Uint64()
	p.services.freeze(seed)
	p.allow.freeze(seed)
	p.deny.freeze(seed)
}
