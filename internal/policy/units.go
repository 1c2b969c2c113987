package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rate is Count events per Per (written 100/s, 5k/s, 1000/m, 60/h). The
// zero Rate means "no limit" where a limit is optional.
type Rate struct {
	Count uint64
	Per   time.Duration // time.Second, time.Minute or time.Hour
}

// PerSecond returns the rate Count per second.
func PerSecond(count uint64) Rate { return Rate{count, time.Second} }

// IsZero reports whether r is the zero Rate (no limit).
func (r Rate) IsZero() bool { return r == Rate{} }

// PerSecond returns r in events per second (0 for the zero Rate).
func (r Rate) PerSecond() float64 {
	if r.Per <= 0 {
		return 0
	}
	return float64(r.Count) * float64(time.Second) / float64(r.Per)
}

// String formats r as written in a policy file, "none" for the zero Rate.
func (r Rate) String() string {
	if r.IsZero() {
		return "none"
	}
	unit := ""
	switch r.Per {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	default:
		return fmt.Sprintf("%d/%s", r.Count, r.Per)
	}
	return formatCount(r.Count) + "/" + unit
}

// formatCount writes n with a k/M/G (powers of 1000) or Ki/Mi/Gi (powers
// of 1024) suffix when that is exact and n >= 1000.
func formatCount(n uint64) string {
	if n >= 10000 {
		for _, s := range []struct {
			suf string
			m   uint64
		}{{"Gi", 1 << 30}, {"G", 1e9}, {"Mi", 1 << 20}, {"M", 1e6}, {"Ki", 1 << 10}, {"k", 1e3}} {
			if n%s.m == 0 {
				return strconv.FormatUint(n/s.m, 10) + s.suf
			}
		}
	}
	return strconv.FormatUint(n, 10)
}

// ParseCount parses a count or size: 4096, 64Ki, 1Mi, 50k, 2M (k, M, G are
// powers of 1000; Ki, Mi, Gi powers of 1024).
func ParseCount(s string) (uint64, error) {
	m := uint64(1)
	num := s
	for _, x := range []struct {
		suf string
		m   uint64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}} {
		if strings.HasSuffix(s, x.suf) {
			num, m = strings.TrimSuffix(s, x.suf), x.m
			break
		}
	}
	if num == "" || num[0] < '0' || num[0] > '9' {
		return 0, fmt.Errorf("%q is not a count (want e.g. 4096, 64Ki, 1Mi, 50k)", s)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a count (want e.g. 4096, 64Ki, 1Mi, 50k)", s)
	}
	if n > (1<<63)/m {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * m, nil
}

// ParseRate parses a rate: 100/s, 5k/s, 1000/m, 60/h, or none (zero Rate).
func ParseRate(s string) (Rate, error) {
	if s == "none" {
		return Rate{}, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q is not a rate (want e.g. 100/s, 5k/s, 1000/m or none)", s)
	}
	var per time.Duration
	switch unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return Rate{}, fmt.Errorf("%q is not a rate: unit %q (allowed /s, /m, /h)", s, unit)
	}
	n, err := ParseCount(num)
	if err != nil {
		return Rate{}, fmt.Errorf("%q is not a rate (want e.g. 100/s, 5k/s, 1000/m or none)", s)
	}
	if n == 0 {
		return Rate{}, fmt.Errorf("%q is not a rate: zero (write none for no limit)", s)
	}
	return Rate{n, per}, nil
}

// ParseDuration parses a duration as time.ParseDuration does (30s, 2m,
// 1h30m, 500ms), refusing negative values.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (want e.g. 500ms, 30s, 2m, 1h)", s)
	}
	return d, nil
}

// formatDuration writes d in its largest exact unit: 10m, 30s, 1h, 1500ms.
func formatDuration(d time.Duration) string {
	for _, u := range []struct {
		suf string
		d   time.Duration
	}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}, {"us", time.Microsecond}} {
		if d != 0 && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.suf
		}
	}
	return d.String()
}
