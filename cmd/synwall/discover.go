package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/synwall/synwall/internal/daemon"
	"github.com/synwall/synwall/internal/firewall"

	"github.com/synwall/synwall/internal/probe"

	"github.com/synwall/synwall/internal/policy"
)

func cmdDiscover(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("discover", "[--policy FILE]", `Probes the backend of every service with advertise.discover: connects to
it (the first address of the service, at its lowest port) with a marked
socket, reads what the server's SYN-ACK negotiated (MSS, window scale, SACK,
timestamps, ECN, window) and resets the connection. Prints each probe and the
advertise values that result. Changes nothing.
Exit status 0 when every probe succeeded, 1 when one failed.`, stderr)
	path := fs.String("policy", "", "policy `FILE` (YAML); the embedded default when empty")
	mark := fs.Uint("mark", firewall.DefaultMark, "firewall `mark` of the probe sockets (exempted by synwall's rules)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "synwall discover: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	p, err := daemon.LoadPolicy(*path)
	if err != nil {
		fmt.Fprintf(stderr, "synwall discover: %v\n", err)
		return exitSetup
	}
	np, failed := probe.Discoverer{Mark: uint32(*mark), Log: slog.New(slog.NewTextHandler(stdout, nil))}.Discover(ctx, p)
	n := 0
	for _, s := range np.Services {
		if !s.Advertise.Discover {
			continue
		}
		n++
		a := s.Advertise
		ws := fmt.Sprint(a.WScale)
		if a.WScale == policy.NoWScale {
			ws = "none"
		}
		fmt.Fprintf(stdout, "service %q: mss %d, mss6 %d, wscale %s, sack %t, timestamps %t, ecn %t, window %d\n",
			s.Name, a.MSS4, a.MSS6, ws, a.SACK, a.Timestamps, a.ECN, a.Window)
	}
	if n == 0 {
		fmt.Fprintln(stdout, "no service has advertise.discover set")
	}
	if failed > 0 {
		return exitFailure
	}
	return exitOK
}
