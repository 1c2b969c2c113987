package observe

import (
	"context"
	"log/slog"
	"strconv"
	"time"
)

// String formats an estimate for a log line: the number, or ">N" when the
// bitmap is saturated.
func (e Estimate) String() string {
	if e.Saturated {
		return ">" + strconv.FormatUint(e.Value, 10)
	}
	return strconv.FormatUint(e.Value, 10)
}

// Log writes the report as at most one line for SYNs answered and one line
// per drop class that saw packets:
//
//	msg="dropped packets" reason=syn_fin count=1200000 sources=5000 window=10s
//
// sources is the estimated number of distinct source addresses.
func (r WindowReport) Log(log *slog.Logger) {
	win := r.Length.Round(time.Millisecond)
	if r.Answered.Count > 0 {
		args := []any{"count", r.Answered.Count, "sources", r.Answered.Sources.String(), "window", win}
		if len(r.Top.ServicesAnswered) > 0 {
			args = append(args, "top_service", r.Top.ServicesAnswered[0].Service.String())
		}
		if len(r.Top.PrefixesAnswered) > 0 {
			args = append(args, "top_prefix", r.Top.PrefixesAnswered[0].Prefix.String())
		}
		log.Info("syns answered", args...)
	}
	for _, c := range r.Classes {
		if c.Count == 0 {
			continue
		}
		log.Info("dropped packets", "reason", c.Class, "count", c.Count, "sources", c.Sources.String(), "window", win)
	}
}

// Summarize rotates the observer's window every interval and logs each
// report until ctx ends. A nil log only rotates.
func (o *Observer) Summarize(ctx context.Context, interval time.Duration, now func() time.Time, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r := o.Rotate(now())
			if log != nil {
				r.Log(log)
			}
		}
	}
}
