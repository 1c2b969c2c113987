// Command synwall-lab drives the synwall binary in a lab of network
// namespaces: `synwall-lab demo` floods a server with and without synwall
// and prints the result (what `make demo` runs), `synwall-lab lab up|down`
// builds or removes the lab by hand, `synwall-lab synflood` is the lab's
// bounded spoofed-SYN generator (what the demo runs in the attacker
// namespace). It is a binary of its own so that the
// lab's drivers (hping3 floods, HTTP servers, namespace plumbing in
// deploy/lab) are not linked into the production synwall.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/synwall/synwall/deploy/lab"
	"github.com/synwall/synwall/deploy/lab/synflood"
)

// cmdSynflood is bench/synflood's command line: the same flags and bounds.
func cmdSynflood(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return synflood.Command(ctx, "synwall-lab synflood", args, stdout, stderr)
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg lab.DemoConfig
	fs := newFlags("demo", "[flags]", `Builds a lab of four network namespaces (client, attacker, gateway, server;
addresses from 198.18.0.0/15 and 2001:db8::/32) with an HTTP server without
SYN cookies, and puts each defense in turn in the gateway: a rule that drops
the flood (the baseline), no defense, kernel SYNPROXY, "synwall run" on
NFQUEUE alone and synwall with its BPF SYN stage (where the binary has
--syn-stage). For each it floods the server with spoofed SYNs from random
sources of 198.19.0.0/16 ("synwall-lab synflood" in the attacker namespace)
at a fixed rate, counts the SYN-ACKs and the machine's CPU, then adds a
bounded hping3 --flood while the client makes short HTTP connections. Prints
CPU per SYN-ACK above the baseline and the legitimate success of each, then
removes the lab (also on error or Ctrl-C). About 100 s. Needs root.`, stderr)
	fs.IntVar(&cfg.Rate, "rate", 50_000, "spoofed SYNs per second of the generator")
	fs.DurationVar(&cfg.Measure, "measure", 3*time.Second, "length of a generator-only run (CPU per SYN-ACK)")
	fs.IntVar(&cfg.Repeat, "repeat", 2, "generator-only runs per defense; the least busy counts")
	fs.DurationVar(&cfg.Flood, "flood", 8*time.Second, "length of the generator + hping3 run per defense (legitimate success)")
	fs.IntVar(&cfg.Connections, "connections", 200, "legitimate connections per defense")
	fs.StringVar(&cfg.Stage, "stage", "tc", "--syn-stage of the BPF row")
	fs.StringVar(&cfg.Run.Backend, "backend", "", "queue backend of the gateway: raw or nfq (default raw)")
	fs.StringVar(&cfg.Run.Policy, "policy", "", "policy `FILE` for the gateway (default: the embedded default)")
	synwall := synwallFlag(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	bin, err := synwallPath(*synwall)
	if err != nil {
		fmt.Fprintln(stderr, "synwall-lab demo:", err)
		return exitSetup
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "synwall-lab demo:", err)
		return exitSetup
	}
	cfg.Synwall = bin
	cfg.Generator = []string{self, "synflood"}
	if err := lab.Demo(ctx, cfg, stdout); err != nil {
		fmt.Fprintln(stderr, "synwall-lab demo:", err)
		return exitFailure
	}
	return exitOK
}

func cmdLab(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("lab", "up|down [flags]", `up builds the demo's lab of network namespaces, starts its servers (HTTP on
port 80, a bulk sink on 9000, iperf3 on 5201) and keeps them running until
Ctrl-C, then removes the lab. Run "synwall run" inside the gateway namespace
(ip netns exec PREFIX-gw synwall run) and clients inside PREFIX-cli meanwhile.
down removes the namespaces of a lab that was left behind.`, stderr)
	prefix := fs.String("prefix", "swlab", "namespace name `prefix` (namespaces PREFIX-cli, -atk, -gw, -srv)")
	if len(args) == 0 {
		fs.Usage()
		return exitUsage
	}
	verb := args[0]
	if code := parseFlags(fs, args[1:]); code >= 0 {
		return code
	}
	switch verb {
	case "down":
		if err := lab.Remove(*prefix); err != nil {
			fmt.Fprintln(stderr, "synwall-lab lab down:", err)
			return exitFailure
		}
		return exitOK
	case "up":
	default:
		fs.Usage()
		return exitUsage
	}
	l, err := lab.Up(ctx, lab.Config{Prefix: *prefix})
	if err != nil {
		fmt.Fprintln(stderr, "synwall-lab lab up:", err)
		return exitSetup
	}
	defer l.Down()
	if _, err := l.StartServers(lab.ServerConfig{}); err != nil {
		fmt.Fprintln(stderr, "synwall-lab lab up:", err)
		return exitFailure
	}
	if err := l.StartIperf(ctx); err != nil {
		fmt.Fprintln(stderr, "synwall-lab lab up: iperf3 server not started:", err)
	}
	fmt.Fprintf(stdout, `lab %[1]s is up; Ctrl-C removes it.
  namespaces: %[2]s (client %[6]v), %[3]s (attacker), %[4]s (gateway), %[5]s (server %[7]v, %[8]v)
  protect:    ip netns exec %[4]s synwall run
  fetch:      ip netns exec %[2]s curl http://%[7]v/small
`, l.Prefix, l.Client, l.Attacker, l.Gateway, l.Server, lab.ClientV4, lab.ServerV4, lab.ServerV6)
	<-ctx.Done()
	return exitOK
}
