package synflood

import (
	"fmt"
	"math"
	"net/netip"
	"time"
)

// Bounds of every run.
const (
	MaxDuration = 60 * time.Second
	MaxCount    = 100_000_000
	MaxRate     = 10_000_000
)

// Config is one run of the generator.
type Config struct {
	Dst      netip.AddrPort
	Sources  netip.Prefix
	Rate     int           // packets per second, 1..MaxRate
	Duration time.Duration // 0 < Duration <= MaxDuration
	Count    int           // 1..MaxCount; 0 means Rate × Duration (capped)
	// Distinct, if not 0, draws the sources from exactly this many
	// distinct (address, port) pairs of Sources (Builder.SetDistinct).
	Distinct uint64
	Seed     uint64
}

// Validate checks c and returns it with Count filled in.
func (c Config) Validate() (Config, error) {
	if err := ValidateDestination(c.Dst); err != nil {
		return c, err
	}
	if err := ValidateSources(c.Sources); err != nil {
		return c, err
	}
	if c.Rate < 1 || c.Rate > MaxRate {
		return c, fmt.Errorf("rate %d not in [1, %d] packets per second", c.Rate, MaxRate)
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		return c, fmt.Errorf("duration %v not in (0, %v]", c.Duration, MaxDuration)
	}
	if c.Count < 0 || c.Count > MaxCount {
		return c, fmt.Errorf("count %d not in [1, %d] (0: rate × duration)", c.Count, MaxCount)
	}
	if c.Sources.Addr().Is4() != c.Dst.Addr().Is4() {
		return c, fmt.Errorf("sources %v, destination %v: %w", c.Sources, c.Dst, errFamily)
	}
	if m := MaxDistinct(c.Sources); c.Distinct > m {
		return c, fmt.Errorf("distinct %d: %w (%d in %v)", c.Distinct, errDistinct, m, c.Sources)
	}
	if c.Count == 0 {
		c.Count = int(min(math.Ceil(float64(c.Rate)*c.Duration.Seconds()), MaxCount))
	}
	return c, nil
}

// Result is what a run did.
type Result struct {
	Sent    int
	Errors  int // failed sendmmsg calls (ENOBUFS and the like)
	Elapsed time.Duration
	Err     error // the first send error, if any
}

// PPS is the achieved rate.
func (r Result) PPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// Default source prefixes: those the lab (deploy/lab) routes to its
// attacker namespace.
var (
	DefaultSources4 = netip.MustParsePrefix("198.19.0.0/16")
	DefaultSources6 = netip.MustParsePrefix("2001:db8:ff::/48")
)

// DefaultSources is the default source prefix of dst's family.
func DefaultSources(dst netip.Addr) netip.Prefix {
	if dst.Is6() {
		return DefaultSources6
	}
	return DefaultSources4
}
