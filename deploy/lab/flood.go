package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Bounds of every flood.
const (
	MaxFloodDuration = 60 * time.Second
	// floodRateCap bounds the count of a flood given only a duration: more
	// than one hping3 sends on these machines.
	floodRateCap = 500_000
	// floodBackstop is how long after Duration timeout(1) interrupts
	// hping3 if the context did not.
	floodBackstop = 2 * time.Second
)

// Flood is one bounded hping3 run in the attacker namespace.
type Flood struct {
	Target netip.Addr // an IPv4 address in LabPrefix4 (hping3 speaks IPv4 only)
	Port   uint16
	// Flags are hping3 flag options: "-S", "-A", "-F", "-R", "-P", "-U",
	// "-X", "-Y"; none sends a packet without flags.
	Flags []string
	// Duration is the hard bound of the run (timeout(1)), 0 < Duration <=
	// MaxFloodDuration.
	Duration time.Duration
	// Count is hping3 -c; 0 derives a cap from Duration.
	Count int
	// Interval is hping3 -i ("u100" = every 100 µs); empty floods at full
	// rate (--flood).
	Interval string
}

// FloodResult is what hping3 reported.
type FloodResult struct {
	Sent    int // packets transmitted, from hping3's statistics
	Elapsed time.Duration
	Output  string
}

// PPS is the achieved send rate.
func (r FloodResult) PPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

var allowedFlags = map[string]bool{
	"-S": true, "-A": true, "-F": true, "-R": true, "-P": true, "-U": true, "-X": true, "-Y": true,
}

var intervalRE = regexp.MustCompile(`^u?[0-9]{1,7}$`)

// args validates f and returns the command line (timeout, hping3 and its
// arguments).
func (f Flood) args() ([]string, error) {
	if !f.Target.Is4() || !LabPrefix4.Contains(f.Target) {
		return nil, fmt.Errorf("lab: flood target %v is not an IPv4 address in %v", f.Target, LabPrefix4)
	}
	if f.Duration <= 0 || f.Duration > MaxFloodDuration {
		return nil, fmt.Errorf("lab: flood duration %v not in (0, %v]", f.Duration, MaxFloodDuration)
	}
	if f.Count < 0 {
		return nil, fmt.Errorf("lab: flood count %d < 0", f.Count)
	}
	count := f.Count
	if count == 0 {
		count = int(f.Duration.Seconds()*floodRateCap) + 1
	}
	if f.Interval != "" && !intervalRE.MatchString(f.Interval) {
		return nil, fmt.Errorf("lab: flood interval %q, want like \"u100\" or \"1\"", f.Interval)
	}
	// The caller's context stops the flood after Duration (SIGINT, so that
	// hping3 prints its statistics); timeout(1) is the backstop a little
	// later. Were both due at the same moment, timeout could take our
	// SIGINT as its first signal and its own timer as the second, and
	// answer that with SIGKILL.
	secs := strconv.FormatFloat((f.Duration + floodBackstop).Seconds(), 'f', 3, 64)
	args := []string{"timeout", "-s", "INT", "-k", "3", secs, "hping3", "-q", "-n"}
	for _, fl := range f.Flags {
		if !allowedFlags[fl] {
			return nil, fmt.Errorf("lab: flood flag %q not allowed", fl)
		}
		args = append(args, fl)
	}
	args = append(args, "-p", strconv.Itoa(int(f.Port)), "-c", strconv.Itoa(count))
	if f.Interval == "" {
		args = append(args, "--flood")
	} else {
		args = append(args, "-i", f.Interval)
	}
	return append(args, f.Target.String()), nil
}

var sentRE = regexp.MustCompile(`(\d+) packets transmitted`)

// parseSent reads hping3's "N packets transmitted".
func parseSent(out string) (int, error) {
	m := sentRE.FindStringSubmatch(out)
	if m == nil {
		return 0, errors.New("lab: no \"packets transmitted\" in hping3 output")
	}
	return strconv.Atoi(m[1])
}

// Flood runs one bounded hping3 in the attacker namespace and waits for it.
// Cancelling ctx stops it early (it is interrupted, then killed).
func (l *Lab) Flood(ctx context.Context, f Flood) (FloodResult, error) {
	if err := Require("hping3", "timeout"); err != nil {
		return FloodResult{}, err
	}
	args, err := f.args()
	if err != nil {
		return FloodResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.Duration)
	defer cancel()
	cmd := l.Cmd(ctx, l.Attacker, args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return FloodResult{}, fmt.Errorf("lab: start hping3: %w", err)
	}
	stop := func() error {
		cancel()
		return nil
	}
	unregister, err := l.onDown(stop)
	if err != nil {
		cancel()
	}
	defer unregister()
	err = cmd.Wait()
	res := FloodResult{Elapsed: time.Since(t0), Output: out.String()}
	var ee *exec.ExitError
	// hping3 exits 1 when nothing answered, and Wait reports the context's
	// error when we interrupted it: what counts is its statistics.
	if err != nil && !errors.As(err, &ee) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return res, fmt.Errorf("lab: hping3: %w: %s", err, strings.TrimSpace(res.Output))
	}
	n, perr := parseSent(res.Output)
	if perr != nil {
		return res, fmt.Errorf("lab: hping3 %s: %v (%v): %s", strings.Join(args, " "), perr, err, strings.TrimSpace(res.Output))
	}
	res.Sent = n
	return res, nil
}
