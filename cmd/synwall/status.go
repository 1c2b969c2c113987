package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/synwall/synwall/internal/daemon"

	"github.com/synwall/synwall/internal/observe"
)

// watchFlag is --watch with an optional interval: a bool flag that also
// takes --watch=2s (and `--watch 2s`, handled after parsing).
type watchFlag struct {
	on bool
	d  time.Duration
}

func (w *watchFlag) String() string {
	if w == nil || !w.on {
		return ""
	}
	return w.d.String()
}
func (w *watchFlag) IsBoolFlag() bool { return true }
func (w *watchFlag) Set(s string) error {
	switch s {
	case "true":
		w.on = true
		return nil
	case "false":
		w.on = false
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 100*time.Millisecond {
		return fmt.Errorf("want an interval of at least 100ms, like 2s")
	}
	w.on, w.d = true, d
	return nil
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", "[--socket PATH] [--json] [--watch [INTERVAL]]", `Shows what the running gateway is doing: its mode, packet, SYN and drop
rates over the last second and the last 10 seconds, the most attacked
services and the busiest source prefixes (IPv4 /24, IPv6 /48; estimated
counts), drops by reason with the estimated number of distinct sources in
the current window, how full the SYN cache and the flow table are, what the
kernel queues dropped, and policy reloads. It asks the daemon over its
control socket (synwall run --control-socket).

--json prints the status document (version 1) for scripts. --watch redraws
every INTERVAL (default 2s) until interrupted.

Exit status 3 when no daemon answers on the socket.`, stderr)
	socket := fs.String("socket", daemon.DefaultControlSocket, "the daemon's control `SOCKET`")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	watch := &watchFlag{d: 2 * time.Second}
	fs.Var(watch, "watch", "redraw every `INTERVAL` (default 2s) until interrupted")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	rest := fs.Args()
	if watch.on && len(rest) > 0 {
		if err := watch.Set(rest[0]); err != nil {
			fmt.Fprintf(stderr, "synwall status: --watch %q: %v\n", rest[0], err)
			return exitUsage
		}
		rest = rest[1:]
	}
	if len(rest) > 0 {
		fs.Usage()
		return exitUsage
	}
	show := func() int {
		doc, err := daemon.FetchStatus(ctx, *socket)
		if err != nil {
			fmt.Fprintln(stderr, "synwall status:", err)
			if errors.Is(err, daemon.ErrNotRunning) {
				return exitSetup
			}
			return exitFailure
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(doc)
			return exitOK
		}
		if watch.on {
			fmt.Fprint(stdout, "\033[H\033[2J") // home, clear
		}
		renderStatus(stdout, doc)
		return exitOK
	}
	if !watch.on {
		return show()
	}
	t := time.NewTicker(watch.d)
	defer t.Stop()
	for {
		if code := show(); code != exitOK {
			return code
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-t.C:
		}
	}
}

// renderStatus writes the human view.
func renderStatus(w io.Writer, s *daemon.Status) {
	fail := "closed"
	if s.Mode.FailOpen {
		fail = "open"
	}
	fmt.Fprintf(w, "synwall %s  up %s  %s\n", s.Synwall, (time.Duration(s.Uptime) * time.Second).Round(time.Second), s.Time.Format(time.DateTime))
	fmt.Fprintf(w, "backend %s, queues %s, fail %s, hooks %s, policy %s, services: %d\n\n",
		s.Mode.Backend, s.Mode.Queues, fail, s.Mode.Hooks, s.Mode.Policy, s.Mode.Services)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	num := func(r *daemon.Rate, f func(*daemon.Rate) float64) string {
		if r == nil {
			return "-"
		}
		return human(f(r))
	}
	fmt.Fprintf(tw, "per second\tlast 1s\tlast 10s\t\n")
	for _, row := range []struct {
		name string
		f    func(*daemon.Rate) float64
	}{
		{"packets", func(r *daemon.Rate) float64 { return r.Packets }},
		{"SYNs answered", func(r *daemon.Rate) float64 { return r.Answered }},
		{"handshakes", func(r *daemon.Rate) float64 { return r.Handshakes }},
	} {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", row.name, num(s.Rate1s, row.f), num(s.Rate10s, row.f))
	}
	classes := map[string]bool{}
	for _, r := range []*daemon.Rate{s.Rate1s, s.Rate10s} {
		if r != nil {
			for c := range r.Drops {
				classes[c] = true
			}
		}
	}
	names := make([]string, 0, len(classes))
	for c := range classes {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		fmt.Fprintf(tw, "drop %s\t%s\t%s\t\n", c, num(s.Rate1s, func(r *daemon.Rate) float64 { return r.Drops[c] }), num(s.Rate10s, func(r *daemon.Rate) float64 { return r.Drops[c] }))
	}
	tw.Flush()

	pct := func(u daemon.TableUse) string {
		if u.Capacity == 0 {
			return fmt.Sprintf("%d", u.Used)
		}
		return fmt.Sprintf("%d/%d (%.0f%%)", u.Used, u.Capacity, 100*float64(u.Used)/float64(u.Capacity))
	}
	fmt.Fprintf(w, "\nSYN cache %s, flows %s, pending segments %s\n", pct(s.Capacity.SynCache), pct(s.Capacity.Flows), pct(s.Capacity.Pending))
	if s.Kernel.Unavailable != "" {
		fmt.Fprintf(w, "kernel queue: %s\n", s.Kernel.Unavailable)
	} else {
		fmt.Fprintf(w, "kernel queue: waiting %d, dropped %d (queue full), %d (socket full); ENOBUFS %d; injection errors %d\n",
			s.Kernel.Waiting, s.Kernel.QueueFull, s.Kernel.SocketFull, s.Queue.ENOBUFS, s.Queue.InjectErrors)
	}
	fmt.Fprintf(w, "policy reloads: %d ok, %d failed\n", s.Reloads.OK, s.Reloads.Failed)
	if st := s.SynStage; st.Mode == "off" || st.Mode == "" {
		fmt.Fprintf(w, "SYN stage: off (%s): SYNs go through NFQUEUE\n", st.Reason)
	} else {
		var dropped uint64
		for _, v := range st.Drops {
			dropped += v
		}
		fmt.Fprintf(w, "SYN stage: %s on %s: %d SYNs answered in the kernel, %d invalid dropped, %d limited, %d passed to NFQUEUE (not SYN)\n",
			st.Mode, strings.Join(st.Interfaces, ","), st.Counters["answered"], dropped,
			st.Counters["syn_limited"]+st.Counters["synack_limited"], st.Counters["not_syn"])
	}

	// Counts and sources of the last complete window (the current one
	// may have just begun); totals since start from the current one.
	win, label := s.Window, "this window"
	if s.LastWindow != nil {
		win, label = *s.LastWindow, "last window"
	}
	totals := map[string]uint64{}
	for _, c := range s.Window.Classes {
		totals[c.Class] = c.Total
	}
	fmt.Fprintf(w, "\n%s (%s): %d SYNs answered from ~%s sources\n", label, win.Length.Round(100*time.Millisecond), win.Answered.Count, win.Answered.Sources)
	if len(s.Window.Classes) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  drop reason\tcount\tsources\ttotal since start\n")
		seen := map[string]bool{}
		for _, c := range win.Classes {
			seen[c.Class] = true
			fmt.Fprintf(tw, "  %s\t%d\t~%s\t%d\n", c.Class, c.Count, c.Sources, totals[c.Class])
		}
		for _, c := range s.Window.Classes {
			if !seen[c.Class] {
				fmt.Fprintf(tw, "  %s\t0\t-\t%d\n", c.Class, c.Total)
			}
		}
		tw.Flush()
	}
	win = s.Window // the heavy hitters: decayed over all windows so far
	tops := func(title string, svcs []observe.Service, pfxs []observe.Prefix) {
		if len(svcs) == 0 && len(pfxs) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  service\tpackets\t\tsource prefix\tpackets\n")
		for i := range max(len(svcs), len(pfxs)) {
			var a, b, c, d string
			if i < len(svcs) {
				a, b = svcs[i].Service.String(), "~"+human(float64(svcs[i].Count))
			}
			if i < len(pfxs) {
				c, d = pfxs[i].Prefix.String(), "~"+human(float64(pfxs[i].Count))
			}
			fmt.Fprintf(tw, "  %s\t%s\t\t%s\t%s\n", a, b, c, d)
		}
		tw.Flush()
	}
	tops("SYNs answered: top services and source prefixes", win.Top.ServicesAnswered, win.Top.PrefixesAnswered)
	tops("drops: top services and source prefixes", win.Top.ServicesDropped, win.Top.PrefixesDropped)
	if p := s.Pcap; p != nil {
		fmt.Fprintf(w, "\npcap %s: %d written, %d over the rate, %d writer behind, %d errors, %d rotations\n",
			p.File, p.Written, p.Limited, p.RingFull, p.WriteErrors, p.Rotations)
	}
}

// human formats a count or rate with k/M suffixes.
func human(v float64) string {
	switch {
	case v >= 10e6:
		return fmt.Sprintf("%.0fM", v/1e6)
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 10e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0")
}
