package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Version is the only policy file version this package reads.
const Version = 1

// decoder walks a YAML document strictly: every mapping key must be known,
// every value must have the expected type and range. It writes what it
// decodes into a Policy that starts with every default filled in, and
// records the line of every field path for the validator's messages.
type decoder struct {
	*builder
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse decodes and validates a policy file; name (usually the path) is used
// in errors. Unknown keys, wrong types, out-of-range values and overlapping
// services are errors naming name, line, field path and the allowed range;
// all errors found are returned, joined.
func Parse(name string, data []byte) (*Policy, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		e := &Error{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = m[2]
		}
		return nil, e
	}
	d := &decoder{&builder{file: name, lines: map[string]int{}}}
	p := defaultPolicy()
	p.Name = name
	if doc.Kind == 0 || len(doc.Content) == 0 {
		d.errf("", "empty policy (want at least version and services)")
		return nil, d.err()
	}
	d.policy(doc.Content[0], p)
	if len(d.errs) > 0 {
		return nil, d.err()
	}
	return d.build(p)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// fields checks that n is a mapping whose keys are all in allowed and
// returns them by name. Unknown and repeated keys are reported.
func (d *decoder) fields(n *yaml.Node, path string, allowed ...string) map[string]*yaml.Node {
	n = resolve(n)
	d.lines[path] = n.Line
	if n.Kind != yaml.MappingNode {
		d.errf(path, "got %s, want a mapping with keys %s", kindName(n), strings.Join(allowed, ", "))
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		kp := join(path, k.Value)
		d.lines[kp] = k.Line
		switch {
		case k.Kind != yaml.ScalarNode:
			d.errf(path, "line %d: keys must be plain names", k.Line)
		case !slices.Contains(allowed, k.Value):
			d.errf(kp, "unknown field (allowed: %s)", strings.Join(allowed, ", "))
		case out[k.Value] != nil:
			d.errf(kp, "repeated field (first at line %d)", out[k.Value].Line)
		default:
			out[k.Value] = v
		}
	}
	return out
}

// scalar checks that n is a scalar and returns its text.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errf(path, "got %s, want %s", kindName(n), want)
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(n *yaml.Node, path string, dst *string) {
	if s, ok := d.scalar(n, path, "a string"); ok {
		if n.Tag != "!!str" {
			d.errf(path, "got %s, want a string", n.Tag[2:])
			return
		}
		*dst = s
	}
}

func (d *decoder) boolean(n *yaml.Node, path string, dst *bool) {
	if s, ok := d.scalar(n, path, "true or false"); ok {
		if n.Tag != "!!bool" {
			d.errf(path, "%q is not a boolean (want true or false)", s)
			return
		}
		*dst = s == "true" || s == "True" || s == "TRUE"
	}
}

// count decodes an integer or size (64Ki, 50k) in lo..hi.
func (d *decoder) count(n *yaml.Node, path string, lo, hi uint64) (uint64, bool) {
	s, ok := d.scalar(n, path, "a number")
	if !ok {
		return 0, false
	}
	if n.Tag != "!!int" && n.Tag != "!!str" {
		d.errf(path, "%q is not a number", s)
		return 0, false
	}
	v, err := ParseCount(s)
	if err != nil {
		d.errf(path, "%v", err)
		return 0, false
	}
	if v < lo || v > hi {
		d.errf(path, "%s out of range (allowed %s..%s)", s, formatCount(lo), formatCount(hi))
		return 0, false
	}
	return v, true
}

func (d *decoder) duration(n *yaml.Node, path string, dst *time.Duration) {
	if s, ok := d.scalar(n, path, "a duration"); ok {
		v, err := ParseDuration(s)
		if err != nil {
			d.errf(path, "%v", err)
			return
		}
		*dst = v
	}
}

func (d *decoder) rate(n *yaml.Node, path string, dst *Rate) {
	if s, ok := d.scalar(n, path, "a rate"); ok {
		v, err := ParseRate(s)
		if err != nil {
			d.errf(path, "%v", err)
			return
		}
		*dst = v
	}
}

// list returns the items of a sequence; a single scalar counts as a list of
// one.
func (d *decoder) list(n *yaml.Node, path string) []*yaml.Node {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []*yaml.Node{n}
	}
	if n.Kind != yaml.SequenceNode {
		d.errf(path, "got %s, want a list", kindName(n))
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = resolve(c)
		d.lines[fmt.Sprintf("%s[%d]", path, i)] = c.Line
	}
	return out
}

func (d *decoder) policy(n *yaml.Node, p *Policy) {
	f := d.fields(n, "", "version", "services", "tables", "cookies", "limits", "allow", "deny", "invalid_flags", "queue")
	if f == nil {
		return
	}
	if v := f["version"]; v == nil {
		d.errf("version", "required (want version: %d)", Version)
	} else if s, ok := d.scalar(v, "version", "1"); ok && s != strconv.Itoa(Version) {
		d.errf("version", "%q is not supported (allowed %d)", s, Version)
	}
	if v := f["services"]; v == nil {
		d.errf("services", "required (a list of guarded services, may be empty)")
	} else if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		if v.Tag == "!!null" {
			v = &yaml.Node{Kind: yaml.SequenceNode, Line: v.Line}
		}
		for i, sn := range d.list(v, "services") {
			s := defaultService()
			d.service(sn, fmt.Sprintf("services[%d]", i), s)
			p.Services = append(p.Services, s)
		}
	} else {
		d.errf("services", "got %s, want a list", kindName(v))
	}
	if v := f["tables"]; v != nil {
		d.tables(v, &p.Tables)
	}
	if v := f["cookies"]; v != nil {
		if c := d.fields(v, "cookies", "period", "key_file"); c != nil {
			if v := c["period"]; v != nil {
				d.duration(v, "cookies.period", &p.Cookies.Period)
				p.Tables.CookiePeriod = p.Cookies.Period
			}
			if v := c["key_file"]; v != nil {
				d.str(v, "cookies.key_file", &p.Cookies.KeyFile)
			}
		}
	}
	if v := f["limits"]; v != nil {
		if l := d.fields(v, "limits", "synack_rate", "synack_burst"); l != nil {
			if v := l["synack_rate"]; v != nil {
				d.rate(v, "limits.synack_rate", &p.Limits.SynAckRate)
			}
			if v := l["synack_burst"]; v != nil {
				if b, ok := d.count(v, "limits.synack_burst", MinBurst, MaxBurst); ok {
					p.Limits.SynAckBurst = uint32(b)
				}
			}
		}
	}
	if v := f["allow"]; v != nil {
		p.Allow = d.prefixes(v, "allow")
	}
	if v := f["deny"]; v != nil {
		p.Deny = d.prefixes(v, "deny")
	}
	if v := f["invalid_flags"]; v != nil {
		if s, ok := d.scalar(v, "invalid_flags", "drop or count"); ok {
			switch s {
			case "drop":
				p.InvalidFlags = InvalidFlagsDrop
			case "count":
				p.InvalidFlags = InvalidFlagsCount
			default:
				d.errf("invalid_flags", "%q is not allowed (allowed drop, count)", s)
			}
		}
	}
	if v := f["queue"]; v != nil {
		d.queue(v, &p.Queue)
	}
}

func (d *decoder) tables(n *yaml.Node, t *Tables) {
	f := d.fields(n, "tables", "cache_buckets", "cache_entries", "flows", "handshake_timeout", "idle_timeout", "linger")
	if f == nil {
		return
	}
	ints := []struct {
		key    string
		dst    *int
		lo, hi uint64
	}{
		{"cache_buckets", &t.CacheBuckets, MinCacheBuckets, MaxCacheBuckets},
		{"cache_entries", &t.CacheEntries, MinCacheEntries, MaxCacheEntries},
		{"flows", &t.Flows, MinFlows, MaxFlows},
	}
	for _, x := range ints {
		if v := f[x.key]; v != nil {
			if c, ok := d.count(v, "tables."+x.key, x.lo, x.hi); ok {
				*x.dst = int(c)
			}
		}
	}
	durs := []struct {
		key string
		dst *time.Duration
	}{{"handshake_timeout", &t.HandshakeTimeout}, {"idle_timeout", &t.IdleTimeout}, {"linger", &t.Linger}}
	for _, x := range durs {
		if v := f[x.key]; v != nil {
			d.duration(v, "tables."+x.key, x.dst)
		}
	}
}

func (d *decoder) queue(n *yaml.Node, q *Queue) {
	f := d.fields(n, "queue", "numbers", "syn_queues", "max_len", "fail")
	if f == nil {
		return
	}
	if v := f["numbers"]; v != nil {
		q.Numbers = nil
		for i, it := range d.list(v, "queue.numbers") {
			r, ok := d.rangeOf(it, fmt.Sprintf("queue.numbers[%d]", i), 0)
			if !ok {
				continue
			}
			if int(r.Hi)-int(r.Lo)+len(q.Numbers) >= MaxQueues {
				d.errf(fmt.Sprintf("queue.numbers[%d]", i), "%s: too many queues (allowed up to %d)", r, MaxQueues)
				continue
			}
			for x := int(r.Lo); x <= int(r.Hi); x++ {
				q.Numbers = append(q.Numbers, uint16(x))
			}
		}
	}
	if v := f["syn_queues"]; v != nil {
		if v.Kind == yaml.ScalarNode && v.Value == "half" {
			q.SYNQueues = SYNQueuesHalf
		} else if c, ok := d.count(v, "queue.syn_queues", 1, MaxQueues-1); ok {
			q.SYNQueues = int(c)
		}
	}
	if v := f["max_len"]; v != nil {
		if c, ok := d.count(v, "queue.max_len", MinQueueMaxLen, MaxQueueML); ok {
			q.MaxLen = uint32(c)
		}
	}
	if v := f["fail"]; v != nil {
		if s, ok := d.scalar(v, "queue.fail", "closed or open"); ok {
			switch s {
			case "closed":
				q.FailOpen = false
			case "open":
				q.FailOpen = true
			default:
				d.errf("queue.fail", "%q is not allowed (allowed closed, open)", s)
			}
		}
	}
}

// rangeOf decodes N or "N-M" with min <= N <= M <= 65535.
func (d *decoder) rangeOf(n *yaml.Node, path string, min uint16) (PortRange, bool) {
	s, ok := d.scalar(n, path, "a number or a range N-M")
	if !ok {
		return PortRange{}, false
	}
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	a, errA := strconv.ParseUint(strings.TrimSpace(lo), 10, 32)
	b, errB := strconv.ParseUint(strings.TrimSpace(hi), 10, 32)
	switch {
	case errA != nil || errB != nil:
		d.errf(path, "%q is not a number or a range N-M", s)
	case a < uint64(min) || b > 65535:
		d.errf(path, "%s out of range (allowed %d..65535)", s, min)
	case a > b:
		d.errf(path, "%s is not a range (want low <= high)", s)
	default:
		return PortRange{uint16(a), uint16(b)}, true
	}
	return PortRange{}, false
}

// prefixes decodes a list of addresses (taken as /32 or /128) and prefixes.
func (d *decoder) prefixes(n *yaml.Node, path string) []netip.Prefix {
	var out []netip.Prefix
	for i, it := range d.list(n, path) {
		ip := fmt.Sprintf("%s[%d]", path, i)
		s, ok := d.scalar(it, ip, "an address or prefix")
		if !ok {
			continue
		}
		var pf netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			pf, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				pf = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			d.errf(ip, "%q is not an IPv4/IPv6 address or prefix", s)
			continue
		}
		out = append(out, pf)
	}
	return out
}

func (d *decoder) service(n *yaml.Node, path string, s *Service) {
	f := d.fields(n, path, "name", "addresses", "ports", "mode", "advertise", "limits")
	if f == nil {
		return
	}
	if v := f["name"]; v != nil {
		d.str(v, path+".name", &s.Name)
	}
	if v := f["addresses"]; v != nil {
		s.Prefixes = d.prefixes(v, path+".addresses")
	}
	if v := f["ports"]; v != nil {
		for i, it := range d.list(v, path+".ports") {
			if r, ok := d.rangeOf(it, fmt.Sprintf("%s.ports[%d]", path, i), 1); ok {
				s.Ports = append(s.Ports, r)
			}
		}
	}
	if v := f["mode"]; v != nil {
		if m, ok := d.scalar(v, path+".mode", "proxy, pass or drop"); ok {
			switch m {
			case "proxy":
				s.Mode = ModeProxy
			case "pass":
				s.Mode = ModePass
			case "drop":
				s.Mode = ModeDrop
			default:
				d.errf(path+".mode", "%q is not allowed (allowed proxy, pass, drop)", m)
			}
		}
	}
	if v := f["advertise"]; v != nil {
		d.advertise(v, path+".advertise", &s.Advertise)
	}
	if v := f["limits"]; v != nil {
		if l := d.fields(v, path+".limits", "syn_per_source"); l != nil {
			if v := l["syn_per_source"]; v != nil {
				d.sourceLimit(v, path+".limits.syn_per_source", &s.Limit)
			}
		}
	}
}

func (d *decoder) advertise(n *yaml.Node, path string, a *Advertise) {
	f := d.fields(n, path, "discover", "mss", "mss6", "wscale", "sack", "timestamps", "ecn", "window")
	if f == nil {
		return
	}
	for _, b := range []struct {
		key string
		dst *bool
	}{{"discover", &a.Discover}, {"sack", &a.SACK}, {"timestamps", &a.Timestamps}, {"ecn", &a.ECN}} {
		if v := f[b.key]; v != nil {
			d.boolean(v, path+"."+b.key, b.dst)
		}
	}
	if v := f["mss"]; v != nil {
		if c, ok := d.count(v, path+".mss", MinMSS4, 65535); ok {
			a.MSS4 = uint16(c)
			if f["mss6"] == nil {
				a.MSS6 = defaultMSS6(a.MSS4)
			}
		}
	}
	if v := f["mss6"]; v != nil {
		if c, ok := d.count(v, path+".mss6", MinMSS6, 65535); ok {
			a.MSS6 = uint16(c)
		}
	}
	if v := f["wscale"]; v != nil {
		if v.Kind == yaml.ScalarNode && v.Value == "none" {
			a.WScale = NoWScale
		} else if c, ok := d.count(v, path+".wscale", 0, MaxWScale); ok {
			a.WScale = int8(c)
		}
	}
	if v := f["window"]; v != nil {
		if c, ok := d.count(v, path+".window", 1, 65535); ok {
			a.Window = uint16(c)
		}
	}
}

func (d *decoder) sourceLimit(n *yaml.Node, path string, l *SourceLimit) {
	if n.Kind == yaml.ScalarNode && n.Value == "none" {
		d.lines[path] = n.Line
		*l = SourceLimit{}
		return
	}
	f := d.fields(n, path, "rate", "burst", "prefix4", "prefix6")
	if f == nil {
		return
	}
	if v := f["rate"]; v != nil {
		d.rate(v, path+".rate", &l.Rate)
		if l.Rate.IsZero() {
			*l = SourceLimit{}
			return
		}
	}
	if v := f["burst"]; v != nil {
		if c, ok := d.count(v, path+".burst", MinBurst, MaxBurst); ok {
			l.Burst = uint32(c)
		}
	}
	if v := f["prefix4"]; v != nil {
		if c, ok := d.count(v, path+".prefix4", MinPrefix4, MaxPrefix4); ok {
			l.Prefix4 = uint8(c)
		}
	}
	if v := f["prefix6"]; v != nil {
		if c, ok := d.count(v, path+".prefix6", MinPrefix6, MaxPrefix6); ok {
			l.Prefix6 = uint8(c)
		}
	}
}
