package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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

func main() {
	var (
		dst      = flag.String("dst", "", "destination `ADDR:PORT` ([ADDR]:PORT for IPv6), inside 198.18.0.0/15 or 2001:db8::/32 (required)")
		sources  = flag.String("sources", "", "source `PREFIX`, inside 198.18.0.0/15 or 2001:db8::/32, of the destination's family (default 198.19.0.0/16 or 2001:db8:ff::/48)")
		rate     = flag.Int("rate", 0, fmt.Sprintf("packets per second, 1..%d (required)", MaxRate))
		duration = flag.Duration("duration", 0, fmt.Sprintf("how long to send, at most %v (required)", MaxDuration))
		count    = flag.Int("count", 0, fmt.Sprintf("packets to send at most, up to %d; 0 = rate × duration", MaxCount))
		distinct = flag.Uint64("distinct", 0, "draw sources from exactly `N` distinct (address, port) pairs of -sources, each once before any repeats; 0 = random")
		seed     = flag.Uint64("seed", 0, "seed of the random sources, ports and ISNs; 0 picks one from the clock")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		fail(2, fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	var c Config
	var err error
	if c.Dst, err = netip.ParseAddrPort(*dst); err != nil {
		fail(2, fmt.Errorf("-dst %q: %w", *dst, err))
	}
	if *sources == "" {
		*sources = "198.19.0.0/16"
		if c.Dst.Addr().Is6() {
			*sources = "2001:db8:ff::/48"
		}
	}
	if c.Sources, err = netip.ParsePrefix(*sources); err != nil {
		fail(2, fmt.Errorf("-sources %q: %w", *sources, err))
	}
	c.Rate, c.Duration, c.Count, c.Distinct, c.Seed = *rate, *duration, *count, *distinct, *seed
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c, err = c.Validate(); err != nil {
		fail(2, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := Run(ctx, c)
	if err != nil {
		fail(1, err)
	}
	fmt.Printf("synflood: sent %d packets in %.3fs: %.0f pps (rate %d, send errors %d)\n",
		res.Sent, res.Elapsed.Seconds(), res.PPS(), c.Rate, res.Errors)
	if res.Err != nil {
		fmt.Fprintf(os.Stderr, "synflood: first send error: %v\n", res.Err)
	}
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "synflood:", err)
	os.Exit(code)
}

// Run sends c.Count SYNs at c.Rate, for c.Duration at most, or until ctx
// ends. c must have passed Validate.
func Run(ctx context.Context, c Config) (Result, error) {
	b, err := NewBuilder(c.Sources, c.Dst, c.Seed)
	if err != nil {
		return Result{}, err
	}
	if err := b.SetDistinct(c.Distinct); err != nil {
		return Result{}, err
	}
	s, err := newRawSender(c.Dst.Addr(), b.Len())
	if err != nil {
		return Result{}, err
	}
	defer s.close()

	var res Result
	start := time.Now()
	deadline := start.Add(c.Duration)
	batch := batchFor(c.Rate)
	pace := newBucket(float64(c.Rate), batch, start)
	for res.Sent < c.Count {
		if ctx.Err() != nil {
			break
		}
		n := min(batch, c.Count-res.Sent)
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		if wait := pace.take(n, now); wait > 0 {
			if now.Add(wait).After(deadline) {
				break
			}
			time.Sleep(wait)
			continue
		}
		for i := range n {
			b.Fill(s.bufs[i][:])
		}
		k, err := s.send(n)
		res.Sent += k
		if err != nil {
			res.Errors++
			if res.Err == nil {
				res.Err = err
			}
			if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) {
				res.Elapsed = time.Since(start)
				return res, fmt.Errorf("sendmmsg after %d packets: %w", res.Sent, err)
			}
			pace.refund(n - k)
			time.Sleep(100 * time.Microsecond) // let the device queue drain
		}
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// bucket is a token bucket of packets: rate tokens a second, at most burst
// of them saved up.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

// batchFor is the batch for a rate: about a millisecond's worth of
// packets, 1 to BatchSize.
func batchFor(rate int) int { return min(max(rate/1000, 1), BatchSize) }

func newBucket(rate float64, batch int, now time.Time) *bucket {
	// Ten milliseconds' worth, and at least two batches, so that a sleep
	// that runs long on a busy machine does not cost the rate.
	burst := max(rate/100, float64(2*batch))
	return &bucket{rate: rate, burst: burst, tokens: float64(batch), last: now}
}

// take spends n tokens and returns 0, or returns how long to wait until
// there are n.
func (b *bucket) take(n int, now time.Time) time.Duration {
	b.tokens = min(b.burst, b.tokens+b.rate*now.Sub(b.last).Seconds())
	b.last = now
	if b.tokens >= float64(n) {
		b.tokens -= float64(n)
		return 0
	}
	return time.Duration((float64(n) - b.tokens) / b.rate * float64(time.Second))
}

// refund gives back tokens of packets that were not sent.
func (b *bucket) refund(n int) { b.tokens = min(b.burst, b.tokens+float64(n)) }
