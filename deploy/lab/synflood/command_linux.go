package synflood

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// Command is the generator's command line, shared by bench/synflood and
// `synwall-lab synflood`: it parses args (the flags below), runs the
// bounded flood until it is done or ctx ends, prints the summary line to
// stdout and returns the exit status (0 done, 1 failed, 2 bad command
// line). name prefixes messages and the usage.
func Command(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		dst      = fs.String("dst", "", "destination `ADDR:PORT` ([ADDR]:PORT for IPv6), inside 198.18.0.0/15 or 2001:db8::/32 (required)")
		sources  = fs.String("sources", "", "source `PREFIX`, inside 198.18.0.0/15 or 2001:db8::/32, of the destination's family (default 198.19.0.0/16 or 2001:db8:ff::/48)")
		rate     = fs.Int("rate", 0, fmt.Sprintf("packets per second, 1..%d (required)", MaxRate))
		duration = fs.Duration("duration", 0, fmt.Sprintf("how long to send, at most %v (required)", MaxDuration))
		count    = fs.Int("count", 0, fmt.Sprintf("packets to send at most, up to %d; 0 = rate × duration", MaxCount))
		distinct = fs.Uint64("distinct", 0, "draw sources from exactly `N` distinct (address, port) pairs of -sources, each once before any repeats; 0 = random")
		seed     = fs.Uint64("seed", 0, "seed of the random sources, ports and ISNs; 0 picks one from the clock")
	)
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return code
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		return fail(2, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	c, err := ParseConfig(*dst, *sources, *rate, *duration, *count, *distinct, *seed)
	if err != nil {
		return fail(2, err)
	}
	res, err := Run(ctx, c)
	if err != nil {
		return fail(1, err)
	}
	fmt.Fprintf(stdout, "synflood: sent %d packets in %.3fs: %.0f pps (rate %d, send errors %d)\n",
		res.Sent, res.Elapsed.Seconds(), res.PPS(), c.Rate, res.Errors)
	if res.Err != nil {
		fmt.Fprintf(stderr, "%s: first send error: %v\n", name, res.Err)
	}
	return 0
}

// ParseConfig builds a validated Config from the command line's values:
// an empty sources takes DefaultSources of dst's family, seed 0 one from
// the clock.
func ParseConfig(dst, sources string, rate int, duration time.Duration, count int, distinct, seed uint64) (Config, error) {
	var c Config
	var err error
	if c.Dst, err = netip.ParseAddrPort(dst); err != nil {
		return c, fmt.Errorf("-dst %q: %w", dst, err)
	}
	if sources == "" {
		c.Sources = DefaultSources(c.Dst.Addr())
	} else if c.Sources, err = netip.ParsePrefix(sources); err != nil {
		return c, fmt.Errorf("-sources %q: %w", sources, err)
	}
	c.Rate, c.Duration, c.Count, c.Distinct, c.Seed = rate, duration, count, distinct, seed
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	return c.Validate()
}
