package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Load describes legitimate traffic from the client namespace: N short
// HTTP/1.1 connections, each a TCP connect, one GET and the whole response.
type Load struct {
	Addr        netip.AddrPort // the HTTP server, e.g. ServerV4:80
	Path        string         // default "/small"
	N           int            // connections to make (> 0)
	Concurrency int            // at most this many at once (default 10)
	Timeout     time.Duration  // per connection, connect to last byte (default 5 s)
	// Spread, if set, paces the starts: attempt i starts no earlier than
	// i*Spread/N after the first.
	Spread time.Duration
}

// LoadResult is what Connect measured.
type LoadResult struct {
	Attempts, OK, Failed int
	Errors               map[string]int // failure kind → count
	// Connect time (SYN sent to handshake complete) over the connections
	// that connected, total time (connect to last byte of the response)
	// over the successful ones.
	ConnectP50, ConnectP99, ConnectMax time.Duration
	TotalP50, TotalP99                 time.Duration
	Elapsed                            time.Duration
}

// SuccessRate is OK / Attempts (0 without attempts).
func (r LoadResult) SuccessRate() float64 {
	if r.Attempts == 0 {
		return 0
	}
	return float64(r.OK) / float64(r.Attempts)
}

func (r LoadResult) String() string {
	s := fmt.Sprintf("%d/%d ok (%.1f%%), connect p50 %v p99 %v max %v, total p50 %v p99 %v, in %v",
		r.OK, r.Attempts, 100*r.SuccessRate(), Round(r.ConnectP50), Round(r.ConnectP99), Round(r.ConnectMax),
		Round(r.TotalP50), Round(r.TotalP99), Round(r.Elapsed))
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%d", k, r.Errors[k])
		}
		s += "; failures:" + b.String()
	}
	return s
}

// Round shortens d for reports: milliseconds from a second up, 10 µs from a
// millisecond up, microseconds below.
func Round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, or 0 when it is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100 + 0.999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

type attempt struct {
	connected      bool
	connect, total time.Duration
	err            string // failure kind, "" on success
}

// Connect runs load from the client namespace and reports what happened.
// Connections that ctx ends before they start are not attempted; ctx ending
// aborts the ones in flight (counted as failed).
func (l *Lab) Connect(ctx context.Context, ld Load) (LoadResult, error) {
	if !ld.Addr.IsValid() || ld.N <= 0 {
		return LoadResult{}, fmt.Errorf("lab: Connect: need an address and N > 0, have %v and %d", ld.Addr, ld.N)
	}
	if ld.Path == "" {
		ld.Path = "/small"
	}
	if ld.Concurrency <= 0 {
		ld.Concurrency = 10
	}
	if ld.Timeout <= 0 {
		ld.Timeout = 5 * time.Second
	}
	want := -1 // body length to check; -1 unknown
	if ld.Path == "/small" {
		want = len(SmallBody)
	}

	jobs := make(chan int)
	results := make(chan attempt, ld.N)
	start := time.Now()
	var wg sync.WaitGroup
	var joinErr error
	var joinOnce sync.Once
	workers := min(ld.Concurrency, ld.N)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every socket of this worker is created on its own thread,
			// which joins the client namespace once.
			err := InNetns(l.Client, func() error {
				for range jobs {
					results <- l.oneRequest(ctx, ld, want)
				}
				return nil
			})
			if err != nil {
				joinOnce.Do(func() { joinErr = err })
				for range jobs { // keep the feeder from blocking
				}
			}
		}()
	}
feed:
	for i := range ld.N {
		if ld.Spread > 0 {
			at := start.Add(time.Duration(int64(ld.Spread) * int64(i) / int64(ld.N)))
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					break feed
				}
			}
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(results)
	if joinErr != nil {
		return LoadResult{}, joinErr
	}

	res := LoadResult{Errors: make(map[string]int), Elapsed: time.Since(start)}
	var conns, totals []time.Duration
	for a := range results {
		res.Attempts++
		if a.connected {
			conns = append(conns, a.connect)
		}
		if a.err != "" {
			res.Failed++
			res.Errors[a.err]++
			continue
		}
		res.OK++
		totals = append(totals, a.total)
	}
	slices.Sort(conns)
	slices.Sort(totals)
	res.ConnectP50, res.ConnectP99 = percentile(conns, 50), percentile(conns, 99)
	res.TotalP50, res.TotalP99 = percentile(totals, 50), percentile(totals, 99)
	if len(conns) > 0 {
		res.ConnectMax = conns[len(conns)-1]
	}
	return res, nil
}

// oneRequest runs on a thread in the client namespace.
func (l *Lab) oneRequest(ctx context.Context, ld Load, want int) attempt {
	ctx, cancel := context.WithTimeout(ctx, ld.Timeout)
	defer cancel()
	t0 := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", ld.Addr.String())
	if err != nil {
		return attempt{err: "connect: " + errKind(err)}
	}
	defer c.Close()
	a := attempt{connected: true, connect: time.Since(t0)}
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	host := ld.Addr.Addr().String()
	if ld.Addr.Addr().Is6() {
		host = "[" + host + "]"
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: synwall-lab\r\nConnection: close\r\n\r\n", ld.Path, host); err != nil {
		a.err = "write: " + errKind(err)
		return a
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		a.err = "response: " + errKind(err)
		return a
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		a.err = "body: " + errKind(err)
	case resp.StatusCode != http.StatusOK:
		a.err = fmt.Sprintf("status %d", resp.StatusCode)
	case want >= 0 && n != int64(want):
		a.err = "short body"
	}
	a.total = time.Since(t0)
	return a
}

// errKind names a network error briefly, for counting.
func errKind(err error) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &errno):
		return errno.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "other"
}
