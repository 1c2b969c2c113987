package synflood

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

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
